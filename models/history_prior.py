"""A unit's persistent level of risk from its own record: the share of its past months that met each
tier's rule, shrunk toward its unit type's rate (a Beta–binomial posterior mean).

``TierModel`` stacks the log-odds of these shares with the boosters' margins: the boosters see the
same shares as features, but a tree cannot shrink a noisy share by how many months stand behind it,
and most of what a model can gain over the best simple method is a better estimate of each unit's
persistent level (``docs/model.md``). Pure functions over a feature frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sanling.core.months import month_number

# The feature columns holding the share of months whose own events met each rule (features.registry,
# family "history"), in the order of the cumulative levels ≥yellow, ≥orange, red.
SHARE_COLUMNS: tuple[str, ...] = ("tier_share_yellow_all", "tier_share_orange_all", "tier_share_red_all")
LEVELS: tuple[int, ...] = (1, 2, 3)


# Every column the prior reads: the shares, the month (months of history) and the unit type.
RECORD_COLUMNS: tuple[str, ...] = (*SHARE_COLUMNS, "as_of", "unit_type")


def has_history(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` carries the share columns and the meta columns the prior needs."""
    return all(c in frame.columns for c in RECORD_COLUMNS)


def type_rates(unit_type: Sequence[str], y: np.ndarray) -> dict[str, np.ndarray]:
    """Per unit type (and ``""`` for all), the (3,) rates of tier ≥ yellow, ≥ orange, red in ``y``."""
    y = np.asarray(y, dtype=np.int64)
    types = np.asarray(unit_type, dtype=object).astype(str)
    out = {"": np.array([(y >= k).mean() for k in LEVELS])}
    for t in np.unique(types):
        yt = y[types == t]
        out[t] = np.array([(yt >= k).mean() for k in LEVELS])
    return out


def months_of_history(as_of: Sequence[str], start: int) -> np.ndarray:
    """Months from ``start`` (a month number) to each as-of month, inclusive, at least 1."""
    labels = pd.Series(np.asarray(as_of, dtype=object)).astype(str)
    m = labels.map({a: month_number(a) for a in labels.unique()}).to_numpy(dtype=np.int64)
    return np.maximum(m - start + 1, 1).astype(float)


def smoothed_shares(
    frame: pd.DataFrame, start: int, rates: dict[str, np.ndarray], weight: float
) -> np.ndarray:
    """(n, 3) posterior mean of each cumulative level's monthly rate:
    ``(share · T + weight · type_rate) / (T + weight)`` with T the months of history."""
    shares = frame[list(SHARE_COLUMNS)].to_numpy(dtype=float)
    shares = np.nan_to_num(shares, nan=0.0)
    T = months_of_history(frame["as_of"].to_numpy(), start)[:, None]
    prior = np.array([rates.get(str(t), rates[""]) for t in frame["unit_type"].to_numpy()])
    return (shares * T + weight * prior) / (T + weight)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))
