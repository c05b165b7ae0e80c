"""Per-township hit rate and PAI of the backtest, for ``metrics.json`` (``summary.townships``) and
``GET /v1/model``: how many of next month's red units each township would have caught by visiting
the top 10 % of its units by P(red). A township is (county, township): same-named townships of
different counties stay apart. Pure: arrays in, records out."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sanling.models.capacity import capacity_by_township
from sanling.models.metrics import RED

CAPACITY = 0.10
_SEP = "\x1f"  # joins county and township into one key no name contains


def township_capacity(
    meta: pd.DataFrame, y: np.ndarray, proba: np.ndarray, capacity: float = CAPACITY
) -> list[dict]:
    """One record per (county, township): ``county, township, capacity, n_rows, n_red, red_caught,
    hit_rate, pai`` (``None`` where undefined: no red row). ``meta``: unit_id, as_of, county, township."""
    keyed = meta[["unit_id", "as_of"]].copy()
    keyed["township"] = meta["county"].astype(str) + _SEP + meta["township"].astype(str)
    table = capacity_by_township(keyed, y, np.asarray(proba)[:, RED], capacity)

    def num(v):
        return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)

    out = []
    for r in table.itertuples(index=False):
        county, town = str(r.township).split(_SEP, 1)
        out.append(
            {
                "county": county,
                "township": town,
                "capacity": capacity,
                "n_rows": int(r.n_rows),
                "n_red": int(r.n_red),
                "red_caught": int(r.red_caught),
                "hit_rate": num(r.hit_rate),
                "pai": num(r.pai),
            }
        )
    return out
