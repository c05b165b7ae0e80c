"""From probabilities to a decision: the tier shown to township staff and the 0–100 risk score.

A decision is always top-down over the cumulative probabilities, as the outcome rules are: red if
P(red) ≥ t_red, else orange if P(≥orange) ≥ t_orange, else yellow if P(≥yellow) ≥ t_yellow, else
blue. The policies differ in where the thresholds come from (``policy.kind``):

``capacity`` (default)
    The share of units a county can act on per month in each tier (``policy.capacity``: red 8 %,
    orange the next 12 %, yellow the next 25 %). The thresholds are the matching quantiles of the
    model's own probabilities on the validation months it was calibrated on — fitted on each
    deployment's own data, so about that share of units is flagged each month.
``peer_multiple``
    A multiple of the mean probability (``policy.multiples``: red when P(red) ≥ 3 × the mean P(red)
    of the validation months, …) — "three times as likely as a typical unit".
``thresholds``
    Fixed probabilities (``policy.thresholds``).
``expected_cost``
    The tier with the least expected cost under ``policy.cost_matrix[true][decided]``.
``argmax``
    The most probable tier (for comparison only; it almost never says red, because red is rare).

The fitted thresholds are computed once, at training time (:func:`fit_thresholds`), and saved with
the model, so a single unit scored on its own gets the same tier it gets in the monthly list.

``risk_score`` = 100 · P(tier ≥ orange): the quantity the reasons explain (its calibrated log-odds),
so a list sorted by risk score and the reasons next to it speak of the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sanling.core.config import PolicyParams

LEVELS: tuple[str, ...] = ("yellow", "orange", "red")


def cumulative(proba: np.ndarray) -> np.ndarray:
    """(n, 4) tier probabilities → (n, 3) P(≥yellow), P(≥orange), P(red)."""
    return np.cumsum(proba[:, ::-1], axis=1)[:, ::-1][:, 1:]


def _check(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 4:
        raise ValueError(f"probabilities must have shape (n, 4), got {proba.shape}")
    return proba


def fit_thresholds(proba: np.ndarray, policy: PolicyParams) -> dict[str, float]:
    """Cumulative thresholds of a ``capacity`` or ``peer_multiple`` policy from validation rows.

    Takes ``proba`` (n, 4), the model's probabilities on the months it was calibrated on, and returns
    ``{"yellow": t, "orange": t, "red": t}``. ``capacity``: from the top down, the threshold that
    puts the configured share of rows in each tier — red the top ``capacity.red`` by P(red), orange
    the next ``capacity.orange`` by P(≥orange) among the rest, then yellow (∞: a tier with no
    capacity is never decided). ``peer_multiple``: ``multiple × mean`` of each cumulative probability.
    Other kinds return ``policy.thresholds`` unchanged.
    """
    ge = cumulative(_check(proba))
    if policy.kind == "capacity":
        out, free = {}, np.ones(len(ge), dtype=bool)
        for j in (2, 1, 0):  # red first, then orange among the rest, then yellow: the top-down decision
            quota = round(policy.capacity.get(LEVELS[j], 0.0) * len(ge))
            pool = np.sort(ge[free, j])[::-1]
            if quota <= 0 or pool.size == 0:
                out[LEVELS[j]] = float(np.inf)
                continue
            t = float(pool[min(quota, pool.size) - 1])
            out[LEVELS[j]] = t
            free &= ge[:, j] < t
        return {k: out[k] for k in LEVELS}
    if policy.kind == "peer_multiple":
        return {
            name: float(policy.multiples.get(name, 1.0) * ge[:, j].mean()) for j, name in enumerate(LEVELS)
        }
    return dict(policy.thresholds)


def decide(
    proba: np.ndarray, policy: PolicyParams, thresholds: Mapping[str, float] | None = None
) -> np.ndarray:
    """Decided tiers (n,) int 0..3 from (n, 4) probabilities.

    ``thresholds``: the fitted thresholds of a ``capacity`` or ``peer_multiple`` policy (saved with
    the model); without them those policies fall back to ``policy.thresholds``.
    """
    proba = _check(proba)
    if policy.kind == "argmax":
        return proba.argmax(axis=1)
    if policy.kind == "expected_cost":
        cost = np.asarray(policy.cost_matrix, dtype=float)  # [true, decided]
        return (proba @ cost).argmin(axis=1)
    t = dict(policy.thresholds) if policy.kind == "thresholds" or thresholds is None else dict(thresholds)
    ge = cumulative(proba)
    out = np.zeros(len(proba), dtype=np.int64)
    out[ge[:, 0] >= t.get("yellow", 0.5)] = 1
    out[ge[:, 1] >= t.get("orange", 0.5)] = 2
    out[ge[:, 2] >= t.get("red", 0.5)] = 3
    return out


def risk_score(proba: np.ndarray) -> np.ndarray:
    """0–100, increasing with risk: 100 · P(tier ≥ orange), rounded to 0.1."""
    return np.round(100.0 * cumulative(np.asarray(proba, dtype=float))[:, 1], 1)


def decided_share(decided: np.ndarray) -> dict[str, float]:
    """Share of rows decided in each tier, ``{"blue": …, "yellow": …, "orange": …, "red": …}``."""
    d = np.asarray(decided, dtype=np.int64)
    shares = np.bincount(d, minlength=4) / max(len(d), 1)
    return {name: float(s) for name, s in zip(("blue", "yellow", "orange", "red"), shares, strict=True)}
