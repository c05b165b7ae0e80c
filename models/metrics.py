"""Evaluation metrics for four-tier forecasts (docs/metrics.md) and for flagging capacity.

Everything here is a pure function over numpy arrays (or a ``meta`` DataFrame aligned with them).
Conventions shared by every function:

* tiers are the integers 0 blue, 1 yellow, 2 orange, 3 red (:data:`sanling.core.vocabulary.TIERS`);
* ``y`` is the observed tier per row, int ``(n,)``;
* ``proba`` is the forecast probability matrix ``(n, 4)``, rows summing to 1;
* ``decided`` is the tier the policy decided per row, int ``(n,)``.

Bad shapes or values raise :class:`ValueError` with a one-line message naming the argument; the
caller (``models.evaluate``) turns that into a :class:`sanling.core.errors.SanlingError` if it comes
from the user's data. A metric that is undefined on the given rows (no red row, a single class)
returns the value documented in its docstring instead of raising, so one empty fold never aborts
a backtest. Skill, the oracle shares and their standard errors are in :mod:`sanling.models.skill`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sanling.core.vocabulary import TIERS

N_TIERS = len(TIERS)
YELLOW = TIERS.index("yellow")
ORANGE = TIERS.index("orange")
RED = TIERS.index("red")

TIER_METRIC_KEYS: tuple[str, ...] = (
    "rps",
    "log_loss",
    "qwk",
    "macro_f1",
    "red_recall",
    "red_precision",
    "red_pr_auc",
    "ece",
    "ece_yellow",
    "ece_red",
)
# Direction of each metric: True when larger is better (the report highlights the best per column).
HIGHER_IS_BETTER: dict[str, bool] = {
    "rps": False,
    "log_loss": False,
    "qwk": True,
    "macro_f1": True,
    "red_recall": True,
    "red_precision": True,
    "red_pr_auc": True,
    "ece": False,
    "ece_yellow": False,
    "ece_red": False,
}

_LOG_LOSS_EPS = 1e-15
# Calibrated probabilities from float32 boosters drift from an exact row sum of 1 by ~1e-7.
_ROW_SUM_TOL = 1e-4


# ---------------------------------------------------------------- validation


def check_tiers(y: object, name: str, n: int | None = None) -> np.ndarray:
    """Validate observed or decided tiers: int (n,) in 0–3; return them as int64."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n,), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n}")
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.number) and bool(np.all(np.mod(arr, 1) == 0))
    )
    if arr.size and not integral:
        raise ValueError(f"{name} must hold integer tiers 0–{N_TIERS - 1}, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= N_TIERS):
        raise ValueError(f"{name} must hold tiers 0–{N_TIERS - 1}, found values {arr.min()}..{arr.max()}")
    return arr


def check_proba(proba: object, n: int, name: str = "proba") -> np.ndarray:
    """Validate a probability matrix: finite (n, 4) in [0, 1], rows summing to 1; return float64."""
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_TIERS:
        raise ValueError(f"{name} must have shape (n, {N_TIERS}), got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows, expected {n} (one per observed tier)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite probabilities")
    if arr.size and (arr.min() < -1e-9 or arr.max() > 1 + 1e-9):
        raise ValueError(f"{name} holds probabilities outside [0, 1]")
    sums = arr.sum(axis=1)
    if arr.size and np.max(np.abs(sums - 1.0)) > _ROW_SUM_TOL:
        bad = int(np.argmax(np.abs(sums - 1.0)))
        raise ValueError(f"{name} rows must sum to 1; row {bad} sums to {sums[bad]:.6g}")
    return arr


def check_scores(p: object, n: int, name: str) -> np.ndarray:
    """``p`` as n finite float64 scores, or a ValueError naming ``name``."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def check_nonempty(n: int, what: str) -> None:
    """A ValueError naming ``what`` when there are no rows to evaluate."""
    if n == 0:
        raise ValueError(f"{what}: no rows to evaluate")


# ---------------------------------------------------------------- scores per row


def rps_per_row(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Ranked probability score of each row.

    Takes ``y`` (n,) observed tiers and ``proba`` (n, 4); returns float (n,) with
    ``sum_{k=1..3} (F_k − O_k)² / 3``, where ``F_k`` is the forecast probability of the first k
    tiers and ``O_k`` is 1 when the observed tier is among them. 0 is a perfect forecast, 1 the
    worst (all mass on blue when red happened, or the reverse).
    """
    y = check_tiers(y, "y")
    proba = check_proba(proba, y.shape[0])
    forecast_cum = np.cumsum(proba[:, : N_TIERS - 1], axis=1)
    observed_cum = (y[:, None] <= np.arange(N_TIERS - 1)[None, :]).astype(np.float64)
    return np.sum((forecast_cum - observed_cum) ** 2, axis=1) / (N_TIERS - 1)


def confusion(y: np.ndarray, decided: np.ndarray) -> np.ndarray:
    """Confusion counts (4, 4): rows are observed tiers, columns decided tiers."""
    y = check_tiers(y, "y")
    decided = check_tiers(decided, "decided", y.shape[0])
    return np.bincount(y * N_TIERS + decided, minlength=N_TIERS * N_TIERS).reshape(N_TIERS, N_TIERS)


# ---------------------------------------------------------------- single metrics


def rps(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean ranked probability score over rows (see :func:`rps_per_row`)."""
    per_row = rps_per_row(y, proba)
    check_nonempty(per_row.shape[0], "rps")
    return float(per_row.mean())


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Multiclass log loss: mean of ``−log p[y]``, with p clipped to [1e-15, 1] (no renormalising)."""
    y = check_tiers(y, "y")
    proba = check_proba(proba, y.shape[0])
    check_nonempty(y.shape[0], "log_loss")
    p_obs = np.clip(proba[np.arange(y.shape[0]), y], _LOG_LOSS_EPS, 1.0)
    return float(-np.mean(np.log(p_obs)))


def quadratic_weighted_kappa(y: np.ndarray, decided: np.ndarray) -> float:
    """Cohen's kappa of decided vs observed tiers with quadratic weights ``(i − j)² / 9``.

    Returns 1 for perfect agreement, 0 for chance-level agreement, negative below chance. When it
    is undefined (both ``y`` and ``decided`` hold one and the same tier, so chance agreement is
    already perfect) it returns 0.0 — no skill can be shown on such rows.
    """
    counts = confusion(y, decided).astype(np.float64)
    n = counts.sum()
    check_nonempty(int(n), "qwk")
    idx = np.arange(N_TIERS)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (N_TIERS - 1) ** 2
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / n
    denom = float(np.sum(weights * expected))
    if denom == 0.0:
        return 0.0
    return float(1.0 - np.sum(weights * counts) / denom)


def macro_f1(y: np.ndarray, decided: np.ndarray) -> float:
    """Unweighted mean F1 over the tiers present in ``y`` or ``decided``.

    A tier absent from both is ignored; a tier present in one but never correctly decided scores
    0 — the semantics of ``sklearn.metrics.f1_score(y, decided, average="macro", zero_division=0)``.
    """
    counts = confusion(y, decided)
    check_nonempty(int(counts.sum()), "macro_f1")
    tp = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1) + counts.sum(axis=0)  # true + predicted per tier
    present = support > 0
    return float(np.mean(2 * tp[present] / support[present]))


def red_recall_precision(y: np.ndarray, decided: np.ndarray) -> tuple[float, float]:
    """Recall and precision of ``decided == red`` against ``y == red``.

    Recall is 0.0 when no row is observed red; precision is 0.0 when no row is decided red.
    """
    y = check_tiers(y, "y")
    decided = check_tiers(decided, "decided", y.shape[0])
    obs, dec = y == RED, decided == RED
    tp = int(np.sum(obs & dec))
    n_obs, n_dec = int(obs.sum()), int(dec.sum())
    return (tp / n_obs if n_obs else 0.0), (tp / n_dec if n_dec else 0.0)


def _as_binary(y_binary: np.ndarray) -> np.ndarray:
    """``y_binary`` as a 1-D array of 0/1 outcomes; ValueError naming what is wrong otherwise."""
    y_b = np.asarray(y_binary)
    if y_b.ndim != 1:
        raise ValueError(f"y_binary must be 1-D (n,), got shape {y_b.shape}")
    if y_b.size and not np.all(np.isin(y_b, (0, 1))):
        raise ValueError("y_binary must hold only 0 and 1")
    return y_b


def precision_recall_curve(y_binary: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct score threshold, from the highest score down.

    Takes ``y_binary`` (n,) 0/1 and ``score`` (n,); returns ``(precision, recall)``, both (t,),
    one point per distinct score (tied rows enter together). Empty arrays when no row is positive.
    """
    y_b = _as_binary(y_binary)
    score = check_scores(score, y_b.shape[0], "score")
    n_pos = int(y_b.sum())
    if n_pos == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(-score, kind="stable")
    s_sorted, y_sorted = score[order], y_b[order].astype(np.float64)
    # last index of each run of equal scores: the threshold admits the whole run at once
    ends = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.shape[0] - 1]
    tps = np.cumsum(y_sorted)[ends]
    flagged = ends + 1.0
    return tps / flagged, tps / n_pos


def average_precision(y_binary: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision–recall curve as a step sum, ``Σ (R_t − R_{t−1}) P_t``.

    Equals ``sklearn.metrics.average_precision_score``. Returns 0.0 when no row is positive.
    """
    precision, recall = precision_recall_curve(y_binary, score)
    if precision.size == 0:
        return 0.0
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def reliability_table(y_binary: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Calibration of a binary probability in equal-width bins over [0, 1].

    Takes ``y_binary`` (n,) 0/1 outcomes, ``p`` (n,) forecast probabilities in [0, 1], ``bins``.
    Returns one row per bin with columns ``bin, lo, hi, n, mean_predicted, observed_rate, gap``
    (``gap = |mean_predicted − observed_rate|``; NaN for empty bins). p = 1 falls in the last bin.
    """
    y_b = _as_binary(y_binary)
    p = check_scores(p, y_b.shape[0], "p")
    if p.size and (p.min() < -1e-9 or p.max() > 1 + 1e-9):
        raise ValueError("p must hold probabilities in [0, 1]")
    if not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    idx = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=p, minlength=bins)
    sum_y = np.bincount(idx, weights=y_b.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(n > 0, sum_p / n, np.nan)
        rate = np.where(n > 0, sum_y / n, np.nan)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(bins),
            "lo": edges[:-1],
            "hi": edges[1:],
            "n": n,
            "mean_predicted": mean_p,
            "observed_rate": rate,
            "gap": np.abs(mean_p - rate),
        }
    )


def expected_calibration_error(y_binary: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: ``Σ_b (n_b / n) · |mean p_b − observed rate_b|`` over equal-width bins (empty bins skipped)."""
    table = reliability_table(y_binary, p, bins)
    n = table["n"].to_numpy()
    check_nonempty(int(n.sum()), "ece")
    filled = n > 0
    return float(np.sum(n[filled] * table["gap"].to_numpy()[filled]) / n.sum())


def p_at_least(proba: np.ndarray, tier: int) -> np.ndarray:
    """P(tier ≥ ``tier``) per row: the sum of the probability columns from ``tier`` up."""
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_TIERS:
        raise ValueError(f"proba must have shape (n, {N_TIERS}), got {arr.shape}")
    return arr[:, tier:].sum(axis=1)


# ---------------------------------------------------------------- the metrics.json block


def tier_metrics(y: np.ndarray, proba: np.ndarray, decided: np.ndarray) -> dict:
    """The metrics of one model in ``metrics.json`` (docs/metrics.md).

    Takes ``y`` (n,) observed tiers, ``proba`` (n, 4) forecast probabilities and ``decided`` (n,)
    policy tiers; returns the keys of :data:`TIER_METRIC_KEYS` as Python floats —
    ``rps``, ``log_loss``, ``qwk`` (decided vs observed), ``macro_f1`` (decided vs observed),
    ``red_recall``, ``red_precision`` (decided == red vs observed red; 0 when undefined),
    ``red_pr_auc`` (average precision of P(red); 0 without an observed red), ``ece`` (of
    P(tier ≥ orange) against 1[y ≥ orange], 10 equal-width bins), ``ece_yellow`` and ``ece_red``
    (the same for P(tier ≥ yellow) and P(red)) — and ``decided_share``, the share of rows the policy
    put in each tier (``{"blue": …, "yellow": …, "orange": …, "red": …}``).

    >>> y = np.array([0, 3]); proba = np.eye(4)[y]
    >>> tier_metrics(y, proba, y)["rps"]
    0.0
    """
    y = check_tiers(y, "y")
    n = y.shape[0]
    check_nonempty(n, "tier_metrics")
    proba = check_proba(proba, n)
    decided = check_tiers(decided, "decided", n)
    recall, precision = red_recall_precision(y, decided)
    return {
        "rps": rps(y, proba),
        "log_loss": log_loss(y, proba),
        "qwk": quadratic_weighted_kappa(y, decided),
        "macro_f1": macro_f1(y, decided),
        "red_recall": recall,
        "red_precision": precision,
        "red_pr_auc": average_precision((y == RED).astype(np.int8), proba[:, RED]),
        "ece": expected_calibration_error((y >= ORANGE).astype(np.int8), p_at_least(proba, ORANGE)),
        "ece_yellow": expected_calibration_error((y >= YELLOW).astype(np.int8), p_at_least(proba, YELLOW)),
        "ece_red": expected_calibration_error((y == RED).astype(np.int8), proba[:, RED]),
        "decided_share": class_share(decided),
    }


def class_share(tiers: np.ndarray) -> dict[str, float]:
    """Share of rows in each tier, keyed by tier name; 0 for every tier when there is no row."""
    tiers = check_tiers(tiers, "tiers")
    shares = np.bincount(tiers, minlength=N_TIERS) / max(tiers.shape[0], 1)
    return {tier: float(s) for tier, s in zip(TIERS, shares, strict=True)}


def calibration_by_group(
    meta: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    columns: Sequence[str] = ("unit_type", "county"),
    min_rows: int = 200,
) -> dict[str, dict[str, float]]:
    """ECE of P(tier ≥ orange) within each group of each column of ``meta`` (rows aligned with ``y``).

    Returns ``{column: {group: ece}}``; groups under ``min_rows`` rows are pooled as ``other``.
    """
    y = check_tiers(y, "y", len(meta))
    proba = check_proba(proba, len(meta))
    outcome, p = (y >= ORANGE).astype(np.int8), p_at_least(proba, ORANGE)
    out: dict[str, dict[str, float]] = {}
    for col in columns:
        if col not in meta.columns:
            continue
        names, codes, counts = np.unique(
            meta[col].astype(str).to_numpy(), return_inverse=True, return_counts=True
        )
        groups = {
            str(name): expected_calibration_error(outcome[codes == i], p[codes == i])
            for i, name in enumerate(names)
            if counts[i] >= min_rows
        }
        small = counts[codes] < min_rows
        if small.any():
            groups["other"] = expected_calibration_error(outcome[small], p[small])
        out[col] = groups
    return out


def class_balance(y: np.ndarray) -> dict[str, float]:
    """Share of rows in each tier, keyed by tier name (the ``class_balance`` of metrics.json)."""
    y = check_tiers(y, "y")
    check_nonempty(y.shape[0], "class_balance")
    return class_share(y)
