"""Reporting effort: grid workers who walk their grid more record more of the small things — minor
hazards (一般隐患) found and rectified within days — without the unit being any riskier.

With ``WorldParams.reporting_effort`` = e > 0, a unit whose grid workers per 1,000 people lie z
standard deviations above its unit type's mean (z > 0 only) records on top of its events
Poisson(e·z) extra minor hazards a month. They are drawn after the generating process from a stream
of their own and never enter its state (no backlog, no escalation, no neighbour effect), so every
other event of the world is the same as without them. The oracle stays exact: these hazards can only
turn a blue month yellow (the default yellow rule counts hazards; no orange or red rule does), so
P(blue) is multiplied by exp(−e·z) and the difference moves to P(yellow); P(orange) and P(red) are
untouched. A model that reads recorded counts as risk will over-warn high-effort units, and the
backtest's residual by reporting intensity (docs/metrics.md) shows it against the oracle.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sanling.pipeline.simulate.geography import Registry
from sanling.pipeline.simulate.params import START, C
from sanling.pipeline.simulate.process import Simulation

# Minor hazards found by a grid walk are rectified within days: 1 + Poisson(2) days.
RECTIFY_MEAN_DAYS = 2.0
# The extra stream's generator is seeded from the world's seed and this tag, so the events of the
# world itself are drawn exactly as without reporting effort.
STREAM_TAG = 20261130


def effort_z(reg: Registry) -> np.ndarray:
    """(U,) grid workers per 1,000 people as standard deviations above the unit type's mean, 0 below it."""
    x, t = reg.grid_per_1000, reg.type_idx
    z = np.zeros_like(x, dtype=np.float64)
    for k in np.unique(t):  # three types, not units
        m = t == k
        sd = x[m].std()
        z[m] = (x[m] - x[m].mean()) / sd if sd > 0 else 0.0
    return np.clip(z, 0.0, 3.0)


def with_reporting_effort(
    sim: Simulation, reg: Registry, effort: float, months: int, seed: int
) -> Simulation:
    """The simulation with the extra recorded minor hazards of reporting ``effort`` (extra hazards a
    month per SD of grid workers per 1,000) and the oracle adjusted to them; unchanged when 0."""
    if effort <= 0:
        return sim
    rate = effort * effort_z(reg)  # (U,) extra recorded hazards a month
    rng = np.random.default_rng([seed, STREAM_TAG])
    counts = rng.poisson(np.broadcast_to(rate, (months, len(rate))))  # (months, U)
    month, unit = np.nonzero(counts)
    reps = counts[month, unit]
    month, unit = np.repeat(month, reps), np.repeat(unit, reps)
    n = len(unit)
    start = START + month.astype("timedelta64[M]")
    length = (
        (start + np.timedelta64(1, "M")).astype("datetime64[D]") - start.astype("datetime64[D]")
    ).astype(int)
    extra = {
        "unit": unit,
        "category": np.full(n, C["hazard"], dtype=sim.category.dtype),
        "month": month.astype(sim.month.dtype),
        "day": 1 + np.floor(rng.random(n) * length).astype(np.int64),
        "duration": 1 + rng.poisson(RECTIFY_MEAN_DAYS, n).astype(np.int64),
        "escalated": np.zeros(n, dtype=bool),
        "casualties": np.zeros(n, dtype=sim.casualties.dtype),
        "major": np.zeros(n, dtype=bool),
    }
    merged = {k: np.concatenate([getattr(sim, k), v]) for k, v in extra.items()}
    return dataclasses.replace(sim, truth=adjust_truth(sim.truth, rate), **merged)


def adjust_truth(truth: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """The oracle (T−1, U, 4) with Poisson(``rate``) extra yellow-only events in every outcome month:
    P(blue) × exp(−rate), the rest of the old P(blue) added to P(yellow)."""
    out = truth.copy()
    keep = np.exp(-np.asarray(rate, dtype=np.float64))[None, :]
    moved = out[:, :, 0] * (1.0 - keep)
    out[:, :, 0] -= moved
    out[:, :, 1] += moved
    return out
