"""Flagging capacity: if each township follows up the top share of its units by risk every as-of
month, how many of next period's red units does it reach (hit rate), how precise is the list, and
how much better than random is it (PAI = hit rate / share flagged). Pure functions over a ``meta``
frame aligned with the tiers and risk scores (docs/metrics.md)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sanling.models.metrics import RED, check_nonempty, check_scores, check_tiers

_CAPACITY_COLUMNS = ("as_of", "township")


def _flag_top(meta: pd.DataFrame, y: np.ndarray, risk: np.ndarray, capacities: Sequence[float]):
    """Validate inputs; return y, capacities, group code, rank by risk within its group, group sizes."""
    if not isinstance(meta, pd.DataFrame):
        raise ValueError(f"meta must be a DataFrame, got {type(meta).__name__}")
    missing = [c for c in _CAPACITY_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"meta lacks column(s) {', '.join(missing)}")
    y = check_tiers(y, "y", len(meta))
    risk = check_scores(risk, len(meta), "risk")
    check_nonempty(len(meta), "capacity_table")
    caps = np.asarray(capacities, dtype=np.float64)
    if caps.ndim != 1 or caps.size == 0 or np.any(~np.isfinite(caps)) or np.any((caps <= 0) | (caps > 1)):
        raise ValueError(f"capacities must be shares in (0, 1], got {capacities!r}")

    group = meta.groupby(list(_CAPACITY_COLUMNS), sort=False, observed=True).ngroup().to_numpy()
    # Deterministic ties: higher risk first, then unit_id (or row position when there is none).
    tiebreak = (
        pd.factorize(meta["unit_id"].astype(str), sort=True)[0]
        if "unit_id" in meta.columns
        else np.arange(len(meta))
    )
    order = np.lexsort((tiebreak, -risk, group))
    sizes = np.bincount(group)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    rank = np.empty(len(meta), dtype=np.int64)
    rank[order] = np.arange(len(meta)) - starts[group[order]]
    return y, caps, group, rank, sizes


def _quota(capacity: float, sizes: np.ndarray) -> np.ndarray:
    # round before ceil: 0.1 * 30 is 3.0000000000000004 in floating point, which must stay 3
    return np.ceil(np.round(capacity * sizes, 9)).astype(np.int64)


def _capacity_row(flagged: np.ndarray, red: np.ndarray) -> dict[str, float]:
    n, n_flagged, n_red = flagged.size, int(flagged.sum()), int(red.sum())
    caught = int(np.sum(flagged & red))
    share = n_flagged / n if n else float("nan")
    hit_rate = caught / n_red if n_red else float("nan")
    return {
        "n_rows": n,
        "n_flagged": n_flagged,
        "share_flagged": share,
        "n_red": n_red,
        "red_caught": caught,
        "hit_rate": hit_rate,
        "precision": caught / n_flagged if n_flagged else float("nan"),
        "pai": hit_rate / share if share and n_red else float("nan"),
    }


def capacity_table(
    meta: pd.DataFrame,
    y: np.ndarray,
    risk: np.ndarray,
    capacities: Sequence[float] = (0.05, 0.10, 0.20),
) -> pd.DataFrame:
    """Red units caught when each township may follow up only a share of its units per as-of date.

    Takes ``meta`` with columns ``as_of`` and ``township`` (``unit_id`` used to break ties), the
    observed tiers ``y`` (n,), a ``risk`` score (n,) — higher is riskier — and the capacities.
    For each as-of date and township with n units, the top ⌈c·n⌉ units by risk are flagged (ties:
    lower unit_id first). Pooled over all groups, one row per capacity with columns
    ``capacity, n_rows, n_flagged, share_flagged, n_red, red_caught, hit_rate, precision, pai``:
    ``hit_rate`` = red rows flagged / red rows, ``precision`` = red rows flagged / flagged rows,
    ``pai`` = hit_rate / share_flagged (predictive accuracy index: 1 = no better than flagging at
    random). Undefined ratios (no red row) are NaN.
    """
    y, caps, group, rank, sizes = _flag_top(meta, y, risk, capacities)
    red = y == RED
    rows = []
    for c in caps:  # a handful of capacities; the work inside is vectorised
        flagged = rank < _quota(float(c), sizes)[group]
        rows.append({"capacity": float(c), **_capacity_row(flagged, red)})
    return pd.DataFrame(rows)


def capacity_by_township(
    meta: pd.DataFrame, y: np.ndarray, risk: np.ndarray, capacity: float = 0.10
) -> pd.DataFrame:
    """The :func:`capacity_table` figures for one capacity, broken down by township (pooled over dates).

    Returns one row per township (sorted by name) with the columns of :func:`capacity_table`
    except ``capacity``.
    """
    y, caps, group, rank, sizes = _flag_top(meta, y, risk, (capacity,))
    flagged = rank < _quota(float(caps[0]), sizes)[group]
    red = y == RED
    town_codes, towns = pd.factorize(meta["township"].astype(str), sort=True)
    n_towns = len(towns)
    n_rows = np.bincount(town_codes, minlength=n_towns)
    n_flagged = np.bincount(town_codes, weights=flagged, minlength=n_towns).astype(np.int64)
    n_red = np.bincount(town_codes, weights=red, minlength=n_towns).astype(np.int64)
    caught = np.bincount(town_codes, weights=flagged & red, minlength=n_towns).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = n_flagged / n_rows
        hit_rate = np.where(n_red > 0, caught / np.maximum(n_red, 1), np.nan)
        precision = np.where(n_flagged > 0, caught / np.maximum(n_flagged, 1), np.nan)
        pai = np.where((n_red > 0) & (share > 0), hit_rate / share, np.nan)
    return pd.DataFrame(
        {
            "township": np.asarray(towns, dtype=object),
            "n_rows": n_rows,
            "n_flagged": n_flagged,
            "share_flagged": share,
            "n_red": n_red,
            "red_caught": caught,
            "hit_rate": hit_rate,
            "precision": precision,
            "pai": pai,
        }
    )
