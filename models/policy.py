"""From probabilities to a decision: the tier shown to township staff and the 0–100 risk score.

``thresholds`` (default): red if P(red) ≥ t_red, else orange if P(≥orange) ≥ t_orange, else
yellow if P(≥yellow) ≥ t_yellow, else blue — cumulative probabilities, checked from the top, as
the outcome rules are. ``expected_cost``: the tier with the least expected cost under
``cost_matrix[true][decided]``. ``argmax``: the most probable tier (for comparison only; it almost
never says red, because red is rare).

``risk_score`` = 100 · P(tier ≥ orange): the quantity the reasons explain (its calibrated log-odds),
so a list sorted by risk score and the reasons next to it speak of the same thing.
"""

from __future__ import annotations

import numpy as np

from sanling.core.config import PolicyParams


def cumulative(proba: np.ndarray) -> np.ndarray:
    """(n, 4) tier probabilities → (n, 3) P(≥yellow), P(≥orange), P(red)."""
    return np.cumsum(proba[:, ::-1], axis=1)[:, ::-1][:, 1:]


def decide(proba: np.ndarray, policy: PolicyParams) -> np.ndarray:
    """Decided tiers (n,) int 0..3 from (n, 4) probabilities."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 4:
        raise ValueError(f"probabilities must have shape (n, 4), got {proba.shape}")
    if policy.kind == "argmax":
        return proba.argmax(axis=1)
    if policy.kind == "expected_cost":
        cost = np.asarray(policy.cost_matrix, dtype=float)  # [true, decided]
        return (proba @ cost).argmin(axis=1)
    ge = cumulative(proba)
    t = policy.thresholds
    out = np.zeros(len(proba), dtype=np.int64)
    out[ge[:, 0] >= t.get("yellow", 0.5)] = 1
    out[ge[:, 1] >= t.get("orange", 0.5)] = 2
    out[ge[:, 2] >= t.get("red", 0.5)] = 3
    return out


def risk_score(proba: np.ndarray) -> np.ndarray:
    """0–100, increasing with risk: 100 · P(tier ≥ orange), rounded to 0.1."""
    return np.round(100.0 * cumulative(np.asarray(proba, dtype=float))[:, 1], 1)


def tune_thresholds(y: np.ndarray, proba: np.ndarray, *, red_recall: float = 0.6) -> dict[str, float]:
    """Thresholds chosen on validation rows: for each cumulative level the largest threshold
    that still catches ``red_recall`` of red outcomes (red) or maximises F1 (orange, yellow).

    Used to choose the documented defaults, never on a test fold.
    """
    ge = cumulative(proba)
    out: dict[str, float] = {}
    for j, name in enumerate(("yellow", "orange", "red")):
        truth = y >= j + 1
        grid = np.unique(np.round(ge[:, j], 3))
        if name == "red":
            ok = [t for t in grid if truth.sum() and (ge[truth, j] >= t).mean() >= red_recall]
            out[name] = float(max(ok)) if ok else 0.5
        else:

            def f1(t: float, col: int = j, tr: np.ndarray = truth) -> float:
                flag = ge[:, col] >= t
                tp = (flag & tr).sum()
                return 2 * tp / max(flag.sum() + tr.sum(), 1)

            out[name] = float(max(grid, key=f1))
    return out
