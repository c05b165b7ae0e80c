"""Conformal tier sets: for each unit, the set of tiers that holds next month's observed tier with a
chosen probability (90 % by default), e.g. {橙, 红}.

Method: split conformal with the "least ambiguous" score ``1 − p(observed tier)`` (Sadinle, Lei &
Wasserman 2019), Mondrian by unit type — one threshold per unit type, so the coverage holds within
each type and not only pooled (a village and an enterprise are not exchangeable). The thresholds are
calibrated on the validation months: the latest ``validation_periods`` as-of dates of the training
rows, which the boosters never trained on. A set holds every tier whose probability reaches
``1 − q``; it is never empty (the most probable tier is always in it). See docs/metrics.md.

Pure: arrays in, arrays out. The backtest measures the empirical coverage by unit type
(:func:`coverage_by_group`); ``sanling train`` stores the fitted thresholds in the model bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sanling.core.vocabulary import TIERS

DEFAULT_LEVEL = 0.9
# A unit type with fewer calibration rows than this borrows the pooled threshold.
MIN_GROUP_ROWS = 50
POOLED = "all"


def validation_mask(as_of: Sequence[str], validation_periods: int) -> np.ndarray:
    """True for rows of the latest ``validation_periods`` as-of dates (at least one date is left
    for training, as :class:`sanling.models.tier_model.TierModel` does)."""
    as_of = np.asarray(as_of, dtype=object)
    months = np.sort(np.unique(as_of))
    n_val = min(validation_periods, max(len(months) - 1, 0))
    if n_val == 0:
        return np.zeros(len(as_of), dtype=bool)
    return as_of >= months[-n_val]


def _quantile(scores: np.ndarray, level: float) -> float:
    """The conformal quantile: the ⌈(n+1)·level⌉-th smallest score (1.0 when n is too small)."""
    n = len(scores)
    k = int(np.ceil((n + 1) * level))
    if n == 0 or k > n:
        return 1.0
    return float(np.sort(scores)[k - 1])


@dataclass
class ConformalTiers:
    """Tier sets at coverage ``level``, one threshold per group (unit type)."""

    level: float = DEFAULT_LEVEL
    thresholds_: dict[str, float] = field(default_factory=dict)
    n_calibration_: dict[str, int] = field(default_factory=dict)

    def fit(self, proba: np.ndarray, y: np.ndarray, groups: Sequence[str]) -> ConformalTiers:
        """Fit on calibration rows: ``proba`` (n, 4), observed tiers ``y`` (n,), ``groups`` (n,)."""
        if not 0 < self.level < 1:
            raise ValueError(f"coverage level must lie in (0, 1), got {self.level}")
        proba = np.asarray(proba, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        groups = np.asarray(groups, dtype=object).astype(str)
        scores = 1.0 - proba[np.arange(len(y)), y]
        self.thresholds_ = {POOLED: _quantile(scores, self.level)}
        self.n_calibration_ = {POOLED: len(y)}
        for g in np.unique(groups):
            s = scores[groups == g]
            self.n_calibration_[str(g)] = len(s)
            if len(s) >= MIN_GROUP_ROWS:
                self.thresholds_[str(g)] = _quantile(s, self.level)
        return self

    def threshold(self, group: str) -> float:
        return self.thresholds_.get(str(group), self.thresholds_[POOLED])

    def sets(self, proba: np.ndarray, groups: Sequence[str]) -> np.ndarray:
        """(n, 4) bool: tier k is in row i's set when ``p_ik ≥ 1 − q(group_i)``; never empty."""
        proba = np.asarray(proba, dtype=np.float64)
        groups = np.asarray(groups, dtype=object).astype(str)
        q = np.array([self.threshold(g) for g in groups]) if len(groups) else np.zeros(0)
        out = proba >= (1.0 - q)[:, None] - 1e-12
        out[np.arange(len(proba)), proba.argmax(axis=1)] = True
        return out

    def to_dict(self) -> dict:
        """The fitted state as plain JSON (kept in the model bundle's ``info``)."""
        return {
            "level": self.level,
            "thresholds": dict(self.thresholds_),
            "n_calibration": dict(self.n_calibration_),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ConformalTiers:
        return cls(float(d["level"]), dict(d["thresholds"]), dict(d.get("n_calibration", {})))


def calibrate_on_validation(
    predict_proba: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    y: np.ndarray,
    validation_periods: int,
    level: float = DEFAULT_LEVEL,
) -> ConformalTiers:
    """Fit the thresholds on the validation months of a model's training ``frame`` (which needs
    ``as_of`` and ``unit_type``): ``predict_proba`` of those rows against their tiers ``y``."""
    mask = validation_mask(frame["as_of"].astype(str).to_numpy(), validation_periods)
    if not mask.any():
        raise ValueError("no validation months to calibrate the tier sets on")
    rows = frame.loc[mask]
    return ConformalTiers(level).fit(predict_proba(rows), np.asarray(y)[mask], rows["unit_type"].astype(str))


def set_labels(sets: np.ndarray) -> list[list[str]]:
    """Each row's set as tier names, lowest tier first."""
    return [[TIERS[k] for k in np.flatnonzero(row)] for row in np.asarray(sets, dtype=bool)]


def coverage_by_group(sets: np.ndarray, y: np.ndarray, groups: Sequence[str]) -> dict:
    """Empirical coverage (share of rows whose observed tier is in its set) and mean set size,
    overall and per group: ``{"overall": {"coverage", "mean_size", "n"}, "by_unit_type": {g: …}}``."""
    sets = np.asarray(sets, dtype=bool)
    y = np.asarray(y, dtype=np.int64)
    groups = np.asarray(groups, dtype=object).astype(str)
    hit = sets[np.arange(len(y)), y]
    size = sets.sum(axis=1)

    def summary(mask: np.ndarray) -> dict:
        n = int(mask.sum())
        return {
            "coverage": float(hit[mask].mean()) if n else float("nan"),
            "mean_size": float(size[mask].mean()) if n else float("nan"),
            "n": n,
        }

    return {
        "overall": summary(np.ones(len(y), dtype=bool)),
        "by_unit_type": {str(g): summary(groups == g) for g in np.unique(groups)},
    }


def fitted_rows(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` up to the model's last training month: the months it left out as
    still settling (``label_lag``) carry labels that are not final yet."""
    last = getattr(model, "train_window_", (None, None))[1]
    return frame if last is None else frame[frame["as_of"].astype(str) <= last]


def fold_tier_sets(
    model,
    train: pd.DataFrame,
    test: pd.DataFrame,
    test_proba: np.ndarray,
    validation_periods: int,
    level: float = DEFAULT_LEVEL,
) -> np.ndarray:
    """One backtest fold: thresholds from the fold model's validation months of ``train`` (column
    ``tier``), applied to the ``test`` rows' probabilities; (n_test, 4) bool."""
    train = fitted_rows(model, train)
    ct = calibrate_on_validation(
        model.predict_proba, train, train["tier"].to_numpy(dtype=np.int64), validation_periods, level
    )
    return ct.sets(test_proba, test["unit_type"].astype(str))
