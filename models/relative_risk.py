"""Relative risk: a unit's probability over the mean of its peers — the same unit type in the same
county, the same as-of month — for P(red) and P(tier ≥ orange). 2.4 reads "2.4 times its peers".

Computed where scores are made (batch scoring and ``POST /v1/score``), over every unit of the month,
so a single unit scored alone still compares against its whole peer group. Pure: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

RED = 3
ORANGE = 2
PEER_KEYS: tuple[str, ...] = ("as_of", "county", "unit_type")


def peer_mean_probabilities(
    meta: pd.DataFrame, proba: np.ndarray, keys: Sequence[str] = PEER_KEYS
) -> np.ndarray:
    """(n, 2) the peers' mean P(red) and P(≥ orange), row-aligned with ``meta`` (which needs ``keys``).

    The unit itself is part of its peer group (the group mean is what a clerk compares with)."""
    proba = np.asarray(proba, dtype=np.float64)
    p = pd.DataFrame({"red": proba[:, RED], "orange_or_worse": proba[:, ORANGE:].sum(axis=1)})
    for k in keys:
        p[k] = meta[k].astype(str).to_numpy()
    return p.groupby(list(keys), sort=False)[["red", "orange_or_worse"]].transform("mean").to_numpy()


def relative_risk(proba: np.ndarray, peer_means: np.ndarray) -> list[dict[str, float | None]]:
    """Per row ``{"red": r, "orange_or_worse": r}``: the unit's probability over its peers' mean,
    rounded to 0.01; ``None`` where the peers' mean is 0."""
    proba = np.asarray(proba, dtype=np.float64)
    own = np.stack([proba[:, RED], proba[:, ORANGE:].sum(axis=1)], axis=1)
    peer = np.asarray(peer_means, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(peer > 0, own / peer, np.nan)
    return [
        {
            "red": None if not np.isfinite(a) else round(float(a), 2),
            "orange_or_worse": None if not np.isfinite(b) else round(float(b), 2),
        }
        for a, b in ratio
    ]
