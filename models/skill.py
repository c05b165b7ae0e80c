"""Skill against references, the share of the best-baseline→oracle gap a model recovers, and their
standard errors (CONTRACT §4 ``summary``).

Rows of a backtest repeat the same units month after month and share each month's shocks, so a
standard error that treats rows — or months alone — as independent is too small. The errors here
are two-way cluster-robust (Cameron, Gelbach & Miller 2011): the variance of a mean is
V_units + V_months − V_rows, each the sandwich variance with that clustering; it is never taken
below the larger of the two one-way variances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from sanling.models.metrics import rps_per_row

BASELINES: tuple[str, ...] = ("persistence", "historical_rate", "logistic")


def _check_rps_value(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite, non-negative RPS, got {value!r}")
    return value


def skill(rps_model: float, rps_reference: float) -> float:
    """Skill score ``1 − rps_model / rps_reference``; NaN when the reference RPS is 0 (undefined).

    1 is perfect, 0 no better than the reference, negative worse than it.
    """
    rps_model = _check_rps_value(rps_model, "rps_model")
    rps_reference = _check_rps_value(rps_reference, "rps_reference")
    return 1.0 - rps_model / rps_reference if rps_reference > 0 else float("nan")


def oracle_share(rps_reference: float, rps_model: float, rps_oracle: float) -> float:
    """Share of the oracle's improvement over a reference that the model captures.

    ``(rps_reference − rps_model) / (rps_reference − rps_oracle)``: 1 means as good as the true
    probabilities, 0 no better than the reference. NaN when the oracle is no better than the
    reference (denominator ≤ 0). With the best baseline as reference this is ``oracle_gap_share``;
    with persistence, ``oracle_share``.
    """
    rps_reference = _check_rps_value(rps_reference, "rps_reference")
    rps_model = _check_rps_value(rps_model, "rps_model")
    rps_oracle = _check_rps_value(rps_oracle, "rps_oracle")
    denom = rps_reference - rps_oracle
    return (rps_reference - rps_model) / denom if denom > 0 else float("nan")


def best_baseline(
    models: Mapping[str, Mapping[str, float]], baselines: Sequence[str] = BASELINES
) -> str | None:
    """The name of the baseline with the lowest RPS among ``models`` (metrics.json ``models``)."""
    present = [b for b in baselines if b in models]
    return min(present, key=lambda b: models[b]["rps"]) if present else None


def _codes(values: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return np.unique(arr.astype(str), return_inverse=True)[1]


def _cluster_variance(centred: np.ndarray, codes: np.ndarray) -> float:
    n, g = centred.shape[0], int(codes.max()) + 1
    if g < 2:
        return float("nan")
    sums = np.bincount(codes, weights=centred, minlength=g)
    return float(g / (g - 1) * np.sum(sums**2) / n**2)


def twoway_se(values: np.ndarray, units: object, months: object) -> float:
    """Standard error of ``mean(values)`` clustered by unit and by month (NaN with < 2 of either)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    u, m = _codes(units, n, "units"), _codes(months, n, "months")
    centred = values - values.mean()
    v_u, v_m = _cluster_variance(centred, u), _cluster_variance(centred, m)
    if math.isnan(v_u) or math.isnan(v_m):
        return float("nan")
    v = v_u + v_m - _cluster_variance(centred, np.arange(n))
    return float(np.sqrt(max(v, v_u, v_m)))


def _ratio_with_se(num: np.ndarray, den: np.ndarray, units: object, months: object) -> tuple[float, float]:
    """``mean(num) / mean(den)`` and its two-way standard error (delta method)."""
    mean_den = float(den.mean())
    if mean_den <= 0:
        return float("nan"), float("nan")
    ratio = float(num.mean()) / mean_den
    return ratio, twoway_se((num - ratio * den) / mean_den, units, months)


def paired_rps_difference(
    y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, units: object, months: object
) -> tuple[float, float]:
    """Mean RPS difference ``rps(a) − rps(b)`` on the same rows and its two-way standard error.

    Takes ``y`` (n,), two probability matrices (n, 4), the unit and the as-of month of each row.
    Returns ``(mean_diff, se)``; negative = a is better.
    """
    diff = rps_per_row(y, proba_a) - rps_per_row(y, proba_b)
    if diff.shape[0] == 0:
        raise ValueError("paired_rps_difference needs at least one row")
    return float(diff.mean()), twoway_se(diff, units, months)


def skill_with_se(
    y: np.ndarray, proba_model: np.ndarray, proba_reference: np.ndarray, units: object, months: object
) -> tuple[float, float]:
    """RPS skill of a model against a reference, ``1 − mean rps_model / mean rps_reference``, with
    its two-way standard error; both NaN when the reference is perfect."""
    r_model, r_ref = rps_per_row(y, proba_model), rps_per_row(y, proba_reference)
    if r_model.shape[0] == 0:
        raise ValueError("skill_with_se needs at least one row")
    return _ratio_with_se(r_ref - r_model, r_ref, units, months)


def oracle_share_with_se(
    y: np.ndarray,
    proba_reference: np.ndarray,
    proba_model: np.ndarray,
    proba_oracle: np.ndarray,
    units: object,
    months: object,
) -> tuple[float, float]:
    """:func:`oracle_share` of the pooled RPS values with its two-way standard error.

    Takes ``y`` (n,), the reference's, the model's and the oracle's probabilities (n, 4), and the
    unit and as-of month of each row. Returns ``(share, se)``; a share above 1 by more than about
    two standard errors points to a leak or a mis-aligned oracle. Both NaN when the oracle is no
    better than the reference on these rows.
    """
    r_ref = rps_per_row(y, proba_reference)
    r_model, r_oracle = rps_per_row(y, proba_model), rps_per_row(y, proba_oracle)
    if r_ref.shape[0] == 0:
        raise ValueError("oracle_share_with_se needs at least one row")
    return _ratio_with_se(r_ref - r_model, r_ref - r_oracle, units, months)
