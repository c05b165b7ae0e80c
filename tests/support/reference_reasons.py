"""The reasons as ``models/explain.py`` computed them before issue 14 vectorised the choice: row by
row, every group rendered, then the first ``top`` kept. The reference the batch path is checked against."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models.explain import render


def explain_rows_row_by_row(contrib, values, peers, specs, *, top=5, min_abs=0.01):
    groups = sorted({s.group for s in specs})
    gi = {g: i for i, g in enumerate(groups)}
    member = np.array([gi[s.group] for s in specs])
    n, f = contrib.shape
    onehot = np.zeros((f, len(groups)))
    onehot[np.arange(f), member] = 1.0
    group_sum = contrib @ onehot
    best = {+1: np.empty((n, len(groups)), dtype=np.int64), -1: np.empty((n, len(groups)), dtype=np.int64)}
    for g in range(len(groups)):
        cols = np.flatnonzero(member == g)
        best[+1][:, g] = cols[np.argmax(contrib[:, cols], axis=1)]
        best[-1][:, g] = cols[np.argmin(contrib[:, cols], axis=1)]
    numeric = np.array([pd.api.types.is_numeric_dtype(values.iloc[:, j]) for j in range(f)])
    num_vals = np.full((n, f), np.nan)
    num_vals[:, numeric] = values.iloc[:, np.flatnonzero(numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
    peer_vals = peers.to_numpy(dtype=np.float64, na_value=np.nan)
    text_cols = {
        j: values.iloc[:, j].astype("string").to_numpy(dtype=object, na_value=None)
        for j in np.flatnonzero(~numeric)
    }
    rounded = np.round(group_sum, 3)
    order = np.argsort(-group_sum, axis=1)
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
