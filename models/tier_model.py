"""The four-tier forecast: bagged LightGBM boosters stacked with the unit's own smoothed record and
a linear model, calibrated on held-out time (docs/model.md).

Two formulations (``ModelParams.formulation``):

``cumulative`` (default)
    For each cumulative level — P(tier ≥ yellow), P(tier ≥ orange), P(tier = red) — ``n_seeds``
    binary boosters that differ only in their random seed (row and feature subsampling); their raw
    margins are averaged (seed bagging: one booster's variance is a large part of its error on a
    county's few thousand rows). With ``calibration: stacked`` the calibrated log-odds are

        logit P_k = a_k · margin_k + c_k · logit(h_k) + d_k · linear_k + b_k

    fitted by logistic regression (ridged toward the boosters alone) on the latest
    ``calibration_periods`` as-of months of the training rows: ``h_k`` is the unit's share of past
    months that met level k's rule, shrunk toward its unit type's rate
    (:mod:`~sanling.models.history_prior`), ``linear_k`` an L2 logistic regression of the level on
    the same features (:mod:`~sanling.models.linear_levels`). When the held-out months say the
    boosters add little (small data), the weights move to the simpler inputs. ``platt`` keeps the
    margin alone (``a·margin + b``); ``none`` the raw margin. The order P(≥yellow) ≥ P(≥orange) ≥
    P(red) is enforced by a running minimum.

    Held-out time, three slices: the boosters and the linear model are fitted on rows whose outcome
    window ends before the early-stopping months begin (a gap of ``horizon_months``), the boosters
    early-stop on the ``validation_periods − calibration_periods`` months after them, and the stack
    is fitted on the last ``calibration_periods`` months, which nothing else has seen.

    The reasons explain the stacked log-odds of P(≥orange) exactly: ``a_2`` × the bag-mean TreeSHAP
    contributions, ``d_2`` × the linear model's per-feature parts, and ``c_2 · (logit h_2 − its
    training mean)`` in the column of the feature it is computed from, ``tier_share_orange_all``.

``multiclass``
    One softmax booster (per seed) over the four tiers with temperature scaling. Kept to compare
    formulations in the backtest; it has no exact per-quantity explanation.

Class imbalance is left to the likelihood: re-weighting classes would shift the probabilities that
the calibration and the policy rely on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import minimize, minimize_scalar

from sanling.core.config import ModelParams, PolicyParams, TierRules
from sanling.core.months import add_months, month_number
from sanling.features.labels import rule_thresholds
from sanling.models import history_prior, tree_shap
from sanling.models.boosters import BinnedRows, lgb_params
from sanling.models.count_levels import CountLevels
from sanling.models.linear_levels import LinearLevels
from sanling.models.policy import fit_thresholds
from sanling.models.preprocess import FrameEncoder

log = logging.getLogger(__name__)  # the fitting steps, for profiling (benchmarks/train.py)
N_TIERS = 4
N_INPUTS = 4  # stacked inputs: boosters' margin, record, linear model, count model
# The binary targets of the cumulative formulation: tier ≥ k for k = 1, 2, 3.
CUMULATIVE_LEVELS = (1, 2, 3)
EXPLAINED_LEVEL = 2  # reasons explain P(tier ≥ orange)
EXPLAINED_SHARE = history_prior.SHARE_COLUMNS[CUMULATIVE_LEVELS.index(EXPLAINED_LEVEL)]
# From this many rows on, TreeSHAP runs once per distinct decision pattern (models/tree_shap.py);
# below it LightGBM's per-row pred_contrib is cheaper than the pattern bookkeeping.
BATCH_SHAP_ROWS = 256


def fit_stack(Z: np.ndarray, y: np.ndarray, prior: np.ndarray, ridge: float) -> np.ndarray:
    """Logistic regression of binary ``y`` on the columns of ``Z`` (n, p) plus an intercept.

    The weights are ridged toward ``prior`` (p,) — one input alone, e.g. (0, 0, 0, 1) — and the
    intercept toward 0, with strength ``ridge`` against the mean log loss: the stack leaves that
    input as it is unless the calibration months show, beyond their own noise, that moving it helps.
    (A free intercept re-levelled the forecast on two months' outcomes, which move with the season
    and chance far more than the unit's risk does — docs/model.md.) Returns the (p + 1,) weights,
    intercept last.
    """
    n, p = Z.shape
    y = np.asarray(y, dtype=float)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = Z @ w[:p] + w[p]
        d = np.append(w[:p] - prior, w[p])
        value = np.mean(np.logaddexp(0.0, z) - y * z) + ridge * float(d @ d)
        r = 1.0 / (1.0 + np.exp(-z)) - y
        return value, np.append(Z.T @ r / n, r.mean()) + 2 * ridge * d

    bounds = [(0.0, 10.0)] * p + [(-20.0, 20.0)]
    res = minimize(loss, np.append(prior, 0.0), jac=True, method="L-BFGS-B", bounds=bounds)
    return res.x


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _split_months(months: np.ndarray, p: ModelParams, horizon: int) -> tuple[list, list, str | None]:
    """(early-stopping months, calibration months, last fit month) of the sorted training months."""
    months = list(months)
    n_cal = min(p.calibration_periods, len(months) - 1)
    n_es = min(max(p.validation_periods - p.calibration_periods, 1), len(months) - n_cal - 1)
    if n_cal < 1:
        raise ValueError("need at least two as-of dates to hold out time for calibration")
    cal = months[-n_cal:]
    if n_es < 1:  # too little history for three slices: early stopping shares the calibration months
        return cal, cal, months[-n_cal - 1]
    es = months[-n_cal - n_es : -n_cal]
    last_fit = add_months(es[0], -horizon)  # its outcome window ends where early stopping begins
    if last_fit < months[0]:
        last_fit = months[-n_cal - n_es - 1]
    return es, cal, last_fit


class TierModel:
    """Calibrated four-tier classifier over a feature frame.

    Parameters
    ----------
    feature_names : the model's input columns (from the feature registry).
    params : LightGBM, bagging and calibration settings.
    policy : the decision policy whose thresholds are fitted on the calibration months (optional).

    Attributes (after ``fit``)
    --------------------------
    encoder_ : FrameEncoder; members_ : per cumulative level, the list of bagged boosters;
    linear_ : LinearLevels or None; stack_ : per level, the weights (a, c, d, b); history_ : the
    smoothed-record settings (start month, type rates, weight, training mean log-odds) or None;
    calibration_months_, early_stopping_months_, fit_until_ : the held-out slices; best_iterations_ ;
    decision_thresholds_ : fitted policy thresholds or None; train_window_ : (first, last) as-of month.

    Examples
    --------
    >>> model = TierModel(names, ModelParams()).fit(frame, frame["tier"], frame["as_of"])  # doctest: +SKIP
    >>> model.predict_proba(frame).shape  # doctest: +SKIP
    (n, 4)
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        params: ModelParams,
        policy: PolicyParams | None = None,
        tier_rules: TierRules | None = None,
    ):
        self.feature_names = list(feature_names)
        self.params = params
        self.policy = policy
        self.tier_rules = tier_rules  # the count model reads the thresholds the rules use

    def __setstate__(self, state: dict) -> None:
        # Bundles registered before seed bagging and stacking held one booster per level and a Platt
        # pair (a, b): read them as a bag of one with c = 0.
        if "members_" not in state and "boosters_" in state:
            if state["params"].formulation == "cumulative":
                state["members_"] = [[b] for b in state["boosters_"]]
                state["stack_"] = [(a, 0.0, 0.0, b) for a, b in state["calibration_"]]
            else:
                state["members_"] = [state["boosters_"]]
                state["stack_"] = [(t, 0.0, 0.0, 0.0) for t, _ in state["calibration_"]]
            state.setdefault("history_", None)
            state.setdefault("linear_", None)
            state.setdefault("decision_thresholds_", None)
            state.setdefault("policy", None)
        # Before the count-structured input the stack held (a, c, d, b) per level.
        state["stack_"] = [tuple(w[:-1]) + (0.0,) * (5 - len(w)) + (w[-1],) for w in state["stack_"]]
        state.setdefault("count_", None)
        state.setdefault("count_centre_", None)
        state.setdefault("tier_rules", None)
        self.__dict__.update(state)

    # -- fitting -----------------------------------------------------------------------------
    def fit(
        self,
        frame: pd.DataFrame,
        y: Sequence[int],
        as_of: Sequence[str],
        *,
        horizon_months: int = 1,
        label_lag: int = 0,
    ) -> TierModel:
        """Fit on the labelled rows of ``frame`` (``y`` their tiers, ``as_of`` their as-of months);
        ``horizon_months`` is the gap kept between the boosters' rows and the held-out months.

        ``label_lag``: the latest ``label_lag`` as-of months are left out — their outcome windows
        ended too recently for the records to hold them fully (late reports, escalations and
        corrections still to come would read as calm months)."""
        p = self.params
        y = np.asarray(y, dtype=np.int64)
        as_of = np.asarray(as_of, dtype=object)
        months = np.sort(np.unique(as_of))
        if label_lag > 0:  # every slice below is chosen by month, so trimming the months is enough
            if len(months) <= label_lag + 2:
                raise ValueError(f"label_lag {label_lag} leaves fewer than three as-of months to fit on")
            months = months[:-label_lag]
        self.label_lag_ = int(label_lag)
        es_months, cal_months, last_fit = _split_months(months, p, horizon_months)
        self.calibration_months_ = [str(m) for m in cal_months]
        self.early_stopping_months_ = [str(m) for m in es_months]
        self.fit_until_ = str(last_fit)
        self.encoder_ = FrameEncoder(self.feature_names).fit(frame)
        self.train_window_ = (str(months[0]), str(months[-1]))
        self.n_train_rows_ = int(np.sum(as_of <= months[-1]))
        fit_rows = np.flatnonzero(as_of <= last_fit)
        es_rows = np.flatnonzero(np.isin(as_of, es_months))
        cal_rows = np.flatnonzero(np.isin(as_of, cal_months))
        if len(fit_rows) > p.max_train_rows:
            # A uniform sample bounds the cost at province scale; the stack is fitted on the
            # untouched calibration months, so the sample does not bias the probabilities.
            fit_rows = np.sort(
                np.random.default_rng(p.seed).choice(fit_rows, p.max_train_rows, replace=False)
            )
        log.info(
            "fit: encoding %d fit, %d early-stopping, %d calibration rows",
            len(fit_rows),
            len(es_rows),
            len(cal_rows),
        )
        X = {  # the fit rows' matrix is released once binned (BinnedRows)
            k: self.encoder_.transform(frame, r)
            for k, r in (("fit", fit_rows), ("es", es_rows), ("cal", cal_rows))
        }
        self.n_fit_rows_ = len(fit_rows)
        cat = self.encoder_.categorical_indices_

        seeds = [p.seed + i for i in range(p.n_seeds)]
        yf, ye, yc = y[fit_rows], y[es_rows], y[cal_rows]
        objective, extra = (
            ("binary", {}) if p.formulation == "cumulative" else ("multiclass", {"num_class": N_TIERS})
        )
        log.info("fit: binning the boosters' rows")
        rows = BinnedRows(X["fit"], X["es"], cat, lgb_params(p, objective, seeds[0], **extra))
        # the linear model's sample of the fit rows; the rest of the float32 matrix (1.4 GB at
        # province size) is binned now and released before anything else is fitted
        lin = np.arange(len(yf))
        if len(lin) > p.linear_max_rows:
            lin = np.sort(np.random.default_rng(p.seed).choice(lin, p.linear_max_rows, replace=False))
        stacked = p.formulation == "cumulative" and p.calibration == "stacked"
        X_lin = X["fit"][lin] if stacked else None
        del X["fit"], X["es"]

        def bag(target_fit: np.ndarray, target_es: np.ndarray) -> list[lgb.Booster]:
            return [
                rows.fit(
                    lgb_params(p, objective, s, **extra),
                    target_fit,
                    target_es,
                    p.n_estimators,
                    p.early_stopping_rounds,
                )
                for s in seeds
            ]

        if p.formulation == "cumulative":
            self.linear_ = None
            if p.calibration == "stacked":
                n_cat = [len(self.encoder_.categories_[self.feature_names[j]]) for j in cat]
                # a sample bounds the dense design's memory at province scale (D ≈ 250 columns)
                log.info("fit: linear model on %d rows", len(lin))
                self.linear_ = LinearLevels(cat, n_cat).fit(X_lin, yf[lin])
            del X_lin
            self.members_ = [
                bag((yf >= k).astype(np.float32), (ye >= k).astype(np.float32)) for k in CUMULATIVE_LEVELS
            ]
            del rows
            self.count_ = None
            if p.calibration == "stacked" and p.count_model and CountLevels.usable(frame, horizon_months):
                log.info("fit: count model")
                self.count_ = CountLevels(
                    self.feature_names,
                    month_number(self.train_window_[0]),
                    horizon_months,
                    max_rows=p.linear_max_rows,
                    seed=p.seed,
                    thresholds=rule_thresholds(self.tier_rules) if self.tier_rules is not None else None,
                ).fit(frame, y, np.flatnonzero(as_of <= add_months(cal_months[0], -horizon_months)))
            # the record term reads five columns of the fit rows: take them before the rows (all 231
            # columns of 1.5 M rows would be another 1.4 GB)
            record = [c for c in history_prior.RECORD_COLUMNS if c in frame.columns]
            log.info("fit: stack")
            self._fit_stack(frame.iloc[cal_rows], X["cal"], yc, frame[record].iloc[fit_rows], yf)
        else:
            self.members_ = [bag(yf.astype(np.float32), ye.astype(np.float32))]
            del rows
            raw = self._raw_multiclass(X["cal"])
            onehot = np.eye(N_TIERS)[yc]

            def nll(t: float) -> float:
                q = _softmax(raw / t)
                return float(-np.mean(np.log(np.clip((q * onehot).sum(1), 1e-15, 1))))

            t = (
                float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)
                if p.calibration != "none"
                else 1.0
            )
            self.stack_, self.history_, self.linear_ = [(t, 0.0, 0.0, 0.0, 0.0)], None, None
            self.count_ = None
        self.best_iterations_ = [
            int(b.best_iteration or b.current_iteration()) for bag in self.members_ for b in bag
        ]
        self.decision_thresholds_ = None
        log.info("fit: policy thresholds")
        if self.policy is not None:
            self.decision_thresholds_ = fit_thresholds(self.predict_proba(frame.iloc[cal_rows]), self.policy)
        return self

    def _fit_stack(
        self, cal: pd.DataFrame, Xc: np.ndarray, yc: np.ndarray, fit: pd.DataFrame, yf: np.ndarray
    ) -> None:
        """Weights of (booster margin, record log-odds, linear log-odds) per level on the
        calibration months; an input that is off enters with weight 0."""
        p = self.params
        self.history_ = None
        if p.calibration == "stacked" and history_prior.has_history(cal):
            start = month_number(self.train_window_[0])
            rates = history_prior.type_rates(fit["unit_type"].astype(str).to_numpy(), yf)
            h_fit = history_prior.logit(history_prior.smoothed_shares(fit, start, rates, p.history_weight))
            self.history_ = {
                "start": start,
                "rates": rates,
                "weight": p.history_weight,
                "mean_logit": h_fit.mean(axis=0),
            }
        inputs = self._stack_inputs(cal, Xc)  # (n, 3, 4): level × input
        # the count model's log-odds are explained around their mean on the calibration months
        self.count_centre_ = inputs[:, :, 3].mean(axis=0) if self.count_ is not None else None
        on = (True, self.history_ is not None, self.linear_ is not None, self.count_ is not None)
        used = [i for i in range(N_INPUTS) if on[i]]
        self.stack_ = []
        for j, k in enumerate(CUMULATIVE_LEVELS):
            if p.calibration == "none":
                self.stack_.append((1.0, 0.0, 0.0, 0.0, 0.0))
                continue
            # Toward the count model alone when there is one (the best single input on the
            # validation worlds, docs/model.md), else the boosters: thin evidence moves little.
            prior = np.zeros(len(used))
            prior[used.index(3) if self.count_ is not None else 0] = 1.0
            ridge = p.stack_ridge if p.calibration == "stacked" else 0.0  # Platt: a free a·margin + b
            w = fit_stack(inputs[:, j, used], (yc >= k).astype(float), prior, ridge)
            full = np.zeros(N_INPUTS)
            full[used] = w[:-1]
            self.stack_.append((*(float(v) for v in full), float(w[-1])))

    def _stack_inputs(
        self, frame: pd.DataFrame | np.ndarray, X: np.ndarray, count_logits: np.ndarray | None = None
    ) -> np.ndarray:
        """(n, 3 levels, 4 inputs): bag-mean margin, record log-odds, linear log-odds, count-model
        log-odds (0 when off; ``count_logits`` when the caller has them)."""
        out = np.zeros((len(X), len(CUMULATIVE_LEVELS), N_INPUTS))
        out[:, :, 0] = self._margins(X)
        needs_frame = getattr(self, "history_", None) is not None or getattr(self, "count_", None) is not None
        if needs_frame and isinstance(frame, np.ndarray):
            raise ValueError("this model stacks the unit's record: pass the feature frame, not a matrix")
        if getattr(self, "history_", None) is not None:
            out[:, :, 1] = self._history_logits(frame)
        if getattr(self, "linear_", None) is not None:
            out[:, :, 2] = self.linear_.logits(X)
        if getattr(self, "count_", None) is not None:
            out[:, :, 3] = self.count_.logits(frame) if count_logits is None else count_logits
        return out

    # -- prediction --------------------------------------------------------------------------
    def _matrix(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        return frame if isinstance(frame, np.ndarray) else self.encoder_.transform(frame)

    def _margins(self, X: np.ndarray) -> np.ndarray:
        """(n, 3) bag-mean raw margins of the cumulative levels."""
        return np.column_stack(
            [
                np.mean([b.predict(X, raw_score=True, num_iteration=b.best_iteration) for b in bag], axis=0)
                for bag in self.members_
            ]
        )

    def _raw_multiclass(self, X: np.ndarray) -> np.ndarray:
        bag = self.members_[0]
        return np.mean([b.predict(X, raw_score=True, num_iteration=b.best_iteration) for b in bag], axis=0)

    def _history_logits(self, frame: pd.DataFrame) -> np.ndarray:
        h = self.history_
        return history_prior.logit(history_prior.smoothed_shares(frame, h["start"], h["rates"], h["weight"]))

    def calibrated_logits(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Cumulative: (n, 3) stacked log-odds of P(≥yellow), P(≥orange), P(red).

        Takes the feature frame (a bare matrix only for a model without the record term)."""
        if self.params.formulation != "cumulative":
            raise ValueError("calibrated cumulative logits exist only for the cumulative formulation")
        return self._stacked(self._stack_inputs(frame, self._matrix(frame)))

    def _stacked(self, inputs: np.ndarray) -> np.ndarray:
        w = np.array([s[:N_INPUTS] for s in self.stack_])  # (3 levels, 4 inputs)
        return np.einsum("nki,ki->nk", inputs, w) + np.array([s[N_INPUTS] for s in self.stack_])

    @staticmethod
    def _cumulative_proba(logits: np.ndarray) -> np.ndarray:
        ge = _sigmoid(logits)
        n = len(ge)
        ge = np.minimum.accumulate(ge, axis=1)  # P(≥yellow) ≥ P(≥orange) ≥ P(red)
        ge = np.column_stack([np.ones(n), ge, np.zeros(n)])
        return np.clip(ge[:, :-1] - ge[:, 1:], 0.0, 1.0)

    def predict_proba(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """(n, 4) calibrated probabilities of blue, yellow, orange, red; rows sum to 1."""
        if self.params.formulation == "cumulative":
            return self._cumulative_proba(self.calibrated_logits(frame))
        return np.clip(_softmax(self._raw_multiclass(self._matrix(frame)) / self.stack_[0][0]), 0.0, 1.0)

    def proba_and_contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(predict_proba(frame), *contributions(frame))`` — the same values — in one pass: the
        encoded matrix, the count model's rates and the record term are computed once (batch scoring)."""
        if self.params.formulation != "cumulative":
            raise ValueError("explanations need the cumulative formulation")
        X = self._matrix(frame)
        i = CUMULATIVE_LEVELS.index(EXPLAINED_LEVEL)
        count = None
        if getattr(self, "count_", None) is not None and self.stack_[i][3] != 0.0:
            count = self.count_.logits_and_contributions(frame, i, float(self.count_centre_[i]))
        inputs = self._stack_inputs(frame, X, None if count is None else count[0])
        proba = self._cumulative_proba(self._stacked(inputs))
        record = inputs[:, i, 1] if getattr(self, "history_", None) is not None else None
        return proba, *self._contributions(frame, X, None if count is None else count[1], record)

    def contributions(self, frame: pd.DataFrame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contributions to the stacked log-odds of P(tier ≥ orange).

        Returns ``(contrib (n, F), base (n,))`` with ``contrib.sum(1) + base`` equal to that
        log-odds (before the order is enforced, which only binds when P(red) > P(≥orange)): ``a`` ×
        the bag-mean TreeSHAP values, ``d`` × the linear model's per-feature parts, and the record
        term, centred on its training mean, in the column of ``tier_share_orange_all``.
        """
        if self.params.formulation != "cumulative":
            raise ValueError("explanations need the cumulative formulation")
        return self._contributions(frame, self._matrix(frame))

    def _contributions(
        self,
        frame: pd.DataFrame | np.ndarray,
        X: np.ndarray,
        count_parts: np.ndarray | None = None,
        record: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`contributions`, given the count model's parts and the record log-odds when known."""
        i = CUMULATIVE_LEVELS.index(EXPLAINED_LEVEL)
        a, c, d, e, b = self.stack_[i]
        bag = self.members_[i]
        contrib, bias = self._tree_contributions(bag, X)
        contrib, base = a * contrib, a * bias + b
        if getattr(self, "linear_", None) is not None and d != 0.0:
            lin, intercept = self.linear_.contributions(X, i)
            contrib, base = contrib + d * lin, base + d * intercept
        if getattr(self, "count_", None) is not None and e != 0.0:
            if isinstance(frame, np.ndarray):
                raise ValueError("this model stacks the count model: pass the feature frame, not a matrix")
            centre = float(self.count_centre_[i])
            contrib += e * (
                self.count_.contributions(frame, i, centre) if count_parts is None else count_parts
            )
            base = base + e * centre
        if getattr(self, "history_", None) is not None and c != 0.0:
            if isinstance(frame, np.ndarray):
                raise ValueError("this model stacks the unit's record: pass the feature frame, not a matrix")
            centre = float(self.history_["mean_logit"][i])
            record = self._history_logits(frame)[:, i] if record is None else record
            contrib[:, self.feature_names.index(EXPLAINED_SHARE)] += c * (record - centre)
            base = base + c * centre
        return contrib, base

    @staticmethod
    def _tree_contributions(bag: list[lgb.Booster], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bag-mean TreeSHAP ``(contrib (n, F), bias (n,))`` of the boosters' raw margins."""
        iterations = [m.best_iteration for m in bag]
        if len(X) >= BATCH_SHAP_ROWS and tree_shap.supports(bag, iterations):
            return tree_shap.contributions(bag, X, iterations)
        raw = np.mean([m.predict(X, pred_contrib=True, num_iteration=m.best_iteration) for m in bag], axis=0)
        return raw[:, :-1], raw[:, -1]

    def importance(self) -> pd.Series:
        """Gain importance summed over every booster, by feature name."""
        g = sum(
            b.feature_importance("gain", iteration=b.best_iteration) for bag in self.members_ for b in bag
        )
        return pd.Series(g, index=self.feature_names).sort_values(ascending=False)
