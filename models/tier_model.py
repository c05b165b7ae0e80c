"""The four-tier forecast: LightGBM, calibrated on held-out time.

Two formulations (``ModelParams.formulation``):

``cumulative`` (default)
    Three binary boosters for P(tier ≥ yellow), P(tier ≥ orange) and P(tier = red), each
    Platt-calibrated (``a·margin + b``) on the latest ``validation_periods`` as-of dates of the
    training rows, which also serve for early stopping. The order P(≥yellow) ≥ P(≥orange) ≥ P(red)
    is enforced by a running minimum. The reasons explain the calibrated log-odds of P(≥orange):
    TreeSHAP contributions of that booster times ``a`` add up to it exactly.

``multiclass``
    One softmax booster over the four tiers with temperature scaling on the same slice. Kept to
    compare formulations in the backtest; it has no exact per-quantity explanation.

Class imbalance is left to the likelihood: re-weighting classes would shift the probabilities that
the calibration and the policy rely on.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar

from sanling.core.config import ModelParams
from sanling.models.preprocess import FrameEncoder

N_TIERS = 4
# The binary targets of the cumulative formulation: tier ≥ k for k = 1, 2, 3.
CUMULATIVE_LEVELS = (1, 2, 3)
EXPLAINED_LEVEL = 2  # reasons explain P(tier ≥ orange)


def _lgb_params(p: ModelParams, objective: str, **extra) -> dict:
    return {
        "objective": objective,
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "max_depth": p.max_depth,
        "min_child_samples": p.min_child_samples,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": 1 if p.bagging_fraction < 1 else 0,
        "lambda_l2": p.lambda_l2,
        "seed": p.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": p.num_threads,
        "verbosity": -1,
        **extra,
    }


def _fit_platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of y on the raw margin: returns (a, b) of ``sigmoid(a·m + b)``."""

    def nll(ab: np.ndarray) -> float:
        z = ab[0] * margin + ab[1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    res = minimize(nll, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(1e-3, 10.0), (-20.0, 20.0)])
    return float(res.x[0]), float(res.x[1])


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class TierModel:
    """Calibrated four-tier classifier over a feature frame.

    Parameters
    ----------
    feature_names : the model's input columns (from the feature registry).
    params : LightGBM and calibration settings.

    Attributes (after ``fit``)
    --------------------------
    encoder_ : FrameEncoder; boosters_ : list of lgb.Booster; calibration_ : list of (a, b) per
    booster (cumulative) or [(T, 0)] (multiclass); best_iterations_ ; train_window_ : (first, last)
    as-of month of the training rows.

    Examples
    --------
    >>> model = TierModel(names, ModelParams()).fit(frame, frame["tier"], frame["as_of"])  # doctest: +SKIP
    >>> model.predict_proba(frame).shape  # doctest: +SKIP
    (n, 4)
    """

    def __init__(self, feature_names: Sequence[str], params: ModelParams):
        self.feature_names = list(feature_names)
        self.params = params

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, y: Sequence[int], as_of: Sequence[str]) -> TierModel:
        y = np.asarray(y, dtype=np.int64)
        as_of = np.asarray(as_of, dtype=object)
        months = np.sort(np.unique(as_of))
        n_val = min(self.params.validation_periods, max(len(months) - 1, 0))
        if n_val == 0:
            raise ValueError("need at least two as-of dates to hold out time for calibration")
        self.encoder_ = FrameEncoder(self.feature_names).fit(frame)
        self.train_window_ = (str(months[0]), str(months[-1]))
        self.n_train_rows_ = len(y)
        cat = self.encoder_.categorical_indices_
        is_val = as_of >= months[-n_val]
        train_rows, val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        if len(train_rows) > self.params.max_train_rows:
            # A uniform sample bounds the cost at province scale; calibration is fitted on the
            # untouched validation months, so the sample does not bias the probabilities.
            train_rows = np.sort(
                np.random.default_rng(self.params.seed).choice(
                    train_rows, self.params.max_train_rows, replace=False
                )
            )
        # Only the rows used are encoded: no full copy of a province-sized frame.
        Xtr, ytr = self.encoder_.transform(frame, train_rows), y[train_rows]
        Xva, yva = self.encoder_.transform(frame, val_rows), y[val_rows]

        def train(objective: str, target_tr, target_va, **extra) -> lgb.Booster:
            dtr = lgb.Dataset(Xtr, target_tr, categorical_feature=cat, free_raw_data=True)
            dva = lgb.Dataset(Xva, target_va, reference=dtr, categorical_feature=cat)
            return lgb.train(
                _lgb_params(self.params, objective, **extra),
                dtr,
                num_boost_round=self.params.n_estimators,
                valid_sets=[dva],
                callbacks=[lgb.early_stopping(self.params.early_stopping_rounds, verbose=False)],
            )

        if self.params.formulation == "cumulative":
            self.boosters_, self.calibration_ = [], []
            for k in CUMULATIVE_LEVELS:
                b = train("binary", (ytr >= k).astype(np.float32), (yva >= k).astype(np.float32))
                self.boosters_.append(b)
                margin = b.predict(Xva, raw_score=True, num_iteration=b.best_iteration)
                ab = _fit_platt(margin, (yva >= k)) if self.params.calibration == "platt" else (1.0, 0.0)
                self.calibration_.append(ab)
        else:
            b = train("multiclass", ytr, yva, num_class=N_TIERS)
            self.boosters_ = [b]
            raw = b.predict(Xva, raw_score=True, num_iteration=b.best_iteration)
            if self.params.calibration == "platt":  # temperature scaling: the multiclass analogue
                onehot = np.eye(N_TIERS)[yva]

                def nll(t: float) -> float:
                    p = _softmax(raw / t)
                    return float(-np.mean(np.log(np.clip((p * onehot).sum(1), 1e-15, 1))))

                t = float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)
            else:
                t = 1.0
            self.calibration_ = [(t, 0.0)]
        self.best_iterations_ = [int(b.best_iteration or b.current_iteration()) for b in self.boosters_]
        return self

    # -- prediction --------------------------------------------------------------------------
    def _matrix(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        return frame if isinstance(frame, np.ndarray) else self.encoder_.transform(frame)

    def calibrated_logits(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Cumulative: (n, 3) calibrated log-odds of P(≥yellow), P(≥orange), P(red)."""
        if self.params.formulation != "cumulative":
            raise ValueError("calibrated cumulative logits exist only for the cumulative formulation")
        X = self._matrix(frame)
        cols = []
        for b, (a, c) in zip(self.boosters_, self.calibration_, strict=True):
            cols.append(a * b.predict(X, raw_score=True, num_iteration=b.best_iteration) + c)
        return np.column_stack(cols)

    def predict_proba(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """(n, 4) calibrated probabilities of blue, yellow, orange, red; rows sum to 1."""
        X = self._matrix(frame)
        if self.params.formulation == "cumulative":
            ge = _sigmoid(self.calibrated_logits(X))
            ge = np.minimum.accumulate(ge, axis=1)  # P(≥yellow) ≥ P(≥orange) ≥ P(red)
            ge = np.column_stack([np.ones(len(X)), ge, np.zeros(len(X))])
            proba = ge[:, :-1] - ge[:, 1:]
        else:
            b = self.boosters_[0]
            proba = _softmax(
                b.predict(X, raw_score=True, num_iteration=b.best_iteration) / self.calibration_[0][0]
            )
        return np.clip(proba, 0.0, 1.0)

    def contributions(self, frame: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TreeSHAP contributions to the calibrated log-odds of P(tier ≥ orange).

        Returns ``(contrib (n, F), base (n,))`` with ``contrib.sum(1) + base`` equal to that
        log-odds (before the order is enforced, which only binds when P(red) > P(≥orange)).
        """
        if self.params.formulation != "cumulative":
            raise ValueError("explanations need the cumulative formulation")
        X = self._matrix(frame)
        i = CUMULATIVE_LEVELS.index(EXPLAINED_LEVEL)
        b, (a, c) = self.boosters_[i], self.calibration_[i]
        raw = b.predict(X, pred_contrib=True, num_iteration=b.best_iteration)
        return a * raw[:, :-1], a * raw[:, -1] + c

    def importance(self) -> pd.Series:
        """Gain importance summed over boosters, by feature name."""
        g = sum(b.feature_importance("gain", iteration=b.best_iteration) for b in self.boosters_)
        return pd.Series(g, index=self.feature_names).sort_values(ascending=False)
