"""A linear model of each cumulative level, the third input of :class:`TierModel`'s stack.

On small data a regularised linear model of the same features is often the best forecaster there
is (docs/model.md, "Small data"): the stack weighs it against the boosters on held-out months.
Being linear in a fixed design, its log-odds split exactly into per-feature parts, so the reasons
stay an exact decomposition of the stacked log-odds.

Design, from the :class:`~sanling.models.preprocess.FrameEncoder` matrix: each numeric feature
median-imputed, standardised and clipped to ±5 SD, plus a missing-value flag where training had
missing values; each categorical feature one-hot over its training categories (unseen → all zero).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

CLIP_SD = 5.0


class LinearLevels:
    """L2-regularised logistic regressions of tier ≥ k (k = 1, 2, 3) on one shared design.

    Parameters
    ----------
    categorical : indices of the encoder's categorical columns; n_categories : their category counts.
    C : inverse regularisation strength; max_iter : L-BFGS iterations.

    Attributes (after ``fit``): ``source_`` the feature index of each design column, ``coef_`` (3, D),
    ``intercept_`` (3,).
    """

    def __init__(self, categorical: list[int], n_categories: list[int], C: float = 0.1, max_iter: int = 60):
        self.categorical = list(categorical)
        self.n_categories = list(n_categories)
        self.C = C
        self.max_iter = max_iter

    def _design(self, X: np.ndarray) -> np.ndarray:
        num = X[:, self.numeric_].astype(np.float64)
        missing = np.isnan(num)
        z = np.clip((np.where(missing, self.median_, num) - self.median_) / self.scale_, -CLIP_SD, CLIP_SD)
        parts = [z, missing[:, self.flagged_].astype(np.float64)]
        for j, n_cat in zip(self.categorical, self.n_categories, strict=True):
            codes = X[:, j]
            parts.append((codes[:, None] == np.arange(n_cat)[None, :]).astype(np.float64))
        return np.hstack(parts)

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearLevels:
        """Fit on the encoded matrix ``X`` (n, F) and tiers ``y`` (n,); returns ``self``."""
        n_features = X.shape[1]
        self.numeric_ = np.array([j for j in range(n_features) if j not in self.categorical], dtype=np.int64)
        num = X[:, self.numeric_].astype(np.float64)
        with warnings.catch_warnings():  # an all-missing column: median NaN, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            self.median_ = np.nan_to_num(np.nanmedian(num, axis=0))
            scale = np.nanstd(num, axis=0)
        self.scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.flagged_ = np.flatnonzero(np.isnan(num).any(axis=0))
        self.source_ = np.concatenate(
            [self.numeric_, self.numeric_[self.flagged_]]
            + [np.full(n_cat, j) for j, n_cat in zip(self.categorical, self.n_categories, strict=True)]
        ).astype(np.int64)
        self.n_features_ = n_features
        D = self._design(X)
        coef, intercept = [], []
        for k in (1, 2, 3):
            target = (np.asarray(y) >= k).astype(np.int64)
            if target.min() == target.max():  # a level never (or always) reached: a constant
                coef.append(np.zeros(D.shape[1]))
                intercept.append(12.0 if target[0] else -12.0)
                continue
            with warnings.catch_warnings():
                # L-BFGS stops short of its tolerance on ~250 standardised columns; the stack's
                # held-out fit is what decides how much of it is used.
                warnings.simplefilter("ignore", ConvergenceWarning)
                lr = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(D, target)
            coef.append(lr.coef_[0])
            intercept.append(float(lr.intercept_[0]))
        self.coef_, self.intercept_ = np.vstack(coef), np.array(intercept)
        return self

    def logits(self, X: np.ndarray) -> np.ndarray:
        """(n, 3) log-odds of tier ≥ yellow, ≥ orange, red."""
        return self._design(X) @ self.coef_.T + self.intercept_

    def contributions(self, X: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature parts of the log-odds of cumulative level index ``level`` (0, 1, 2):
        ``(contrib (n, F), intercept)`` with ``contrib.sum(1) + intercept`` equal to that log-odds."""
        parts = self._design(X) * self.coef_[level]
        contrib = np.zeros((X.shape[0], self.n_features_))
        np.add.at(contrib.T, self.source_, parts.T)
        return contrib, float(self.intercept_[level])
