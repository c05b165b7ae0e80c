"""The oracle: exact next-month tier probabilities under the default tier rules.

Within a month every category is a Poisson count given the state at the end of the previous month,
and each event is independently escalated / has casualties / is still open at month end. Thinning a
Poisson stream gives independent Poisson counts, so the cumulative tier probabilities are products
of Poisson probabilities (derivation in docs/simulator.md).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from sanling.pipeline.simulate.params import C


def open_at_month_end(
    month_days: int,
    p_never: np.ndarray,
    p_slow: np.ndarray,
    fast_mean: float,
    slow_median: float,
    slow_sigma: float,
) -> np.ndarray:
    """P(a dispute occurring on a uniform day of a ``month_days``-day month is still open at its end).

    Resolution takes D ≥ 1 days (resolved on date day + D); D = 1 + floor(X) with X exponential
    (fast), lognormal (slow), or never. Open at the end iff day + D > L, so the probability is
    (1/L) Σ_{j=0}^{L-1} P(D > j), and P(D > j) = P(X ≥ j). Returns one value per unit."""
    j = np.arange(month_days, dtype=np.float64)
    surv_fast = np.exp(-j / fast_mean)
    with np.errstate(divide="ignore"):
        surv_slow = 1.0 - ndtr((np.log(j) - np.log(slow_median)) / slow_sigma)
    surv_slow[0] = 1.0
    s_fast, s_slow = surv_fast.mean(), surv_slow.mean()
    return p_never + p_slow * s_slow + (1.0 - p_never - p_slow) * s_fast


def tier_probabilities(
    lam: np.ndarray,
    escalation: np.ndarray,
    q_accident: np.ndarray,
    q_fire: np.ndarray,
    open_share: np.ndarray,
) -> np.ndarray:
    """Next-month P(blue, yellow, orange, red) for every unit.

    Takes the month's Poisson rates ``lam`` (units × categories, order of ``params.CATS``), the
    per-unit thinning probabilities (petition escalated, accident / fire with casualties, dispute
    still open at month end) and returns a (units × 4) array whose rows sum to 1.

    red    = criminal ≥ 1 or escalated petition ≥ 1 or casualties ≥ 1
    ≤orange ⇔ no criminal, no escalated petition, no accident or fire with casualties
    ≤yellow ⇔ no criminal, petition, public-security case, accident or fire, and ≤ 1 open dispute
    blue   ⇔ additionally no dispute and no hazard at all
    """
    d, pet, ps, cr = (
        lam[:, C["dispute"]],
        lam[:, C["petition"]],
        lam[:, C["public_security"]],
        lam[:, C["criminal"]],
    )
    acc, fire, hz = lam[:, C["safety_accident"]], lam[:, C["fire"]], lam[:, C["hazard"]]
    le_orange = np.exp(-(cr + pet * escalation + acc * q_accident + fire * q_fire))
    open_rate = d * open_share
    le_yellow = np.exp(-(cr + pet + ps + acc + fire) - open_rate) * (1.0 + open_rate)
    blue = np.exp(-(cr + pet + ps + acc + fire + d + hz))
    return np.stack([blue, le_yellow - blue, le_orange - le_yellow, 1.0 - le_orange], axis=1)
