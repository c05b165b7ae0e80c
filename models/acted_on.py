"""Warnings that were acted on: the backtest's metrics apart for rows whose unit had a 双排查 visit
in the forecast window and for rows without (``summary.acted_on``, CONTRACT §4).

A red warning followed by a visit and a quiet month is not simply a false alarm: the visit may have
prevented the incident. Splitting the rows lets a reader see whether the "misses" concentrate where
staff went (docs/metrics.md explains how to read it). Visits are never a model feature — the model
would learn "visited → safe" — they only split the evaluation. Pure: frames and arrays in, dicts out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.core.months import NO_MONTH, datetimes_to_month_numbers, month_number
from sanling.models.metrics import tier_metrics


def visited_in_window(meta: pd.DataFrame, visits: pd.DataFrame | None, horizon_months: int) -> np.ndarray:
    """(n,) bool: the row's unit had a visit in its forecast window (the ``horizon_months`` months
    after ``as_of``). ``meta``: unit_id, as_of (YYYY-MM); ``visits``: unit_id, visited_at (dates)."""
    n = len(meta)
    if n == 0 or visits is None or len(visits) == 0:
        return np.zeros(n, dtype=bool)
    codes, _uniques = pd.factorize(
        pd.concat([meta["unit_id"].astype(str), visits["unit_id"].astype(str)], ignore_index=True)
    )
    row_unit, visit_unit = codes[:n].astype(np.int64), codes[n:].astype(np.int64)
    visit_month = datetimes_to_month_numbers(pd.to_datetime(visits["visited_at"]).to_numpy("datetime64[ns]"))
    known = visit_month != NO_MONTH
    span = 12 * 10_000  # month numbers stay below year 10000
    visited = np.unique(visit_unit[known] * span + visit_month[known])
    start = np.array([month_number(a) for a in meta["as_of"].astype(str)], dtype=np.int64) + 1
    hit = np.zeros(n, dtype=bool)
    for k in range(horizon_months):  # a handful of months, each one vectorised membership test
        hit |= np.isin(row_unit * span + start + k, visited)
    return hit


def acted_on_metrics(
    y: np.ndarray, predictions: dict[str, tuple[np.ndarray, np.ndarray]], visited: np.ndarray
) -> dict:
    """``{"visited": {...}, "not_visited": {...}}``: each with ``n_rows`` and, per model, the tier
    metrics on those rows (``None`` for a part without rows)."""
    out = {}
    for name, mask in (("visited", visited), ("not_visited", ~visited)):
        idx = np.flatnonzero(mask)
        part: dict = {"n_rows": len(idx), "red_share": float(np.mean(y[idx] == 3)) if len(idx) else None}
        part["models"] = (
            {k: tier_metrics(y[idx], p[idx], d[idx]) for k, (p, d) in predictions.items()} if len(idx) else {}
        )
        out[name] = part
    return out
