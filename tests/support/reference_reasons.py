"""The reasons as ``models/explain.py`` computed them before issue 14 vectorised the choice: row by
row, every group rendered, then the first ``top`` kept, read from the same ``group_tables``. The
reference the batch path's choice of reasons is checked against."""

from __future__ import annotations

import numpy as np

from sanling.models.explain import group_tables, render


def explain_rows_row_by_row(contrib, values, peers, specs, *, top=5, min_abs=0.01):
    t = group_tables(contrib, values, peers, specs)
    n, group_sum, best, order, rounded = len(contrib), t.group_sum, t.best, t.order, t.rounded
    numeric, num_vals, peer_vals, text_cols = t.numeric, t.num_vals, t.peer_vals, t.text_cols
    up_ok, down_ok = group_sum >= min_abs, group_sum <= -min_abs

    def reason(r, g, sign):
        j = best[sign][r, g]
        spec = specs[j]
        if numeric[j]:
            v = num_vals[r, j]
            value = None if np.isnan(v) else (int(v) if v.is_integer() else round(float(v), 3))
        else:
            value = text_cols[j][r]
        if value is None:
            return None
        return {
            "feature": spec.name,
            "group": spec.group,
            "group_zh": spec.group_zh,
            "value": value,
            "contribution": float(rounded[r, g]),
            "text_zh": render(spec, value, peer_vals[r, j]),
        }

    reasons, protective = [], []
    for r in range(n):
        o = order[r]
        up = (reason(r, g, +1) for g in o if up_ok[r, g])
        down = (reason(r, g, -1) for g in o[::-1] if down_ok[r, g])
        reasons.append([x for x in up if x is not None][:top])
        protective.append([x for x in down if x is not None][:top])
    return reasons, protective
