"""Rolling-origin backtest: for each of the last ``test_periods`` labelled as-of dates, fit on the
rows whose outcome window ends at or before that date, forecast that date, pool every fold's
out-of-sample rows, and score LightGBM against the baselines (and the oracle when known).

Pure: takes a feature frame and the unit × month tier history, returns a :class:`BacktestResult`.
Writing ``metrics.json``, the report and MLflow runs happens in :mod:`pipeline.jobs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sanling.core.config import Config
from sanling.core.months import add_months, month_label
from sanling.core.vocabulary import TIERS
from sanling.models.baselines import HistoricalRate, LogisticBaseline, Persistence
from sanling.models.conformal import fold_tier_sets
from sanling.models.metrics import class_balance, tier_metrics
from sanling.models.policy import decide, fit_thresholds
from sanling.models.tier_model import TierModel

META_COLUMNS = ("unit_id", "as_of", "unit_type", "township", "county")


@dataclass
class TierHistory:
    """Tiers of past outcome windows: ``tiers[u, m]`` is the tier of the window of
    ``horizon`` months *ending* at ``months[m]`` (-1 where that window is not in the data)."""

    unit_ids: np.ndarray
    months: list[str]
    tiers: np.ndarray
    horizon: int
    # month → the history as the records held it then; None: nothing was recorded late
    at: Callable[[str], TierHistory] | None = field(default=None, repr=False, compare=False)

    def known_at(self, month: str) -> TierHistory:
        """The tiers as the records held them at the end of ``month`` (windows ending after it −1;
        late reports, escalations and corrections after it not yet seen); itself when the records
        hold nothing late."""
        return self if self.at is None else self.at(month)

    def _index(self, unit_ids: Sequence[str], as_of: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        u = pd.Index(self.unit_ids).get_indexer(np.asarray(unit_ids, dtype=object))
        m = pd.Index(self.months).get_indexer(np.asarray(as_of, dtype=object))
        if (u < 0).any() or (m < 0).any():
            raise ValueError("rows outside the tier history")
        return u, m

    def last_tier(self, unit_ids: Sequence[str], as_of: Sequence[str]) -> np.ndarray:
        """The tier of the window that ended at the as-of date (-1 if unknown)."""
        u, m = self._index(unit_ids, as_of)
        return self.tiers[u, m]

    def past_counts(self, unit_ids: Sequence[str], as_of: Sequence[str]) -> np.ndarray:
        """(n, 4) counts of the tiers of the non-overlapping windows ending at as_of, as_of − h, …"""
        onehot = np.zeros((*self.tiers.shape, 4), dtype=np.float32)
        known = self.tiers >= 0
        uu, mm = np.nonzero(known)
        onehot[uu, mm, self.tiers[known]] = 1.0
        cum = np.zeros_like(onehot)
        for r in range(self.horizon):  # windows h apart never overlap
            idx = np.arange(r, len(self.months), self.horizon)
            cum[:, idx] = np.cumsum(onehot[:, idx], axis=1)
        u, m = self._index(unit_ids, as_of)
        return cum[u, m]


@dataclass
class BacktestResult:
    meta: pd.DataFrame
    y: np.ndarray
    predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    metrics: dict
    shap: tuple[np.ndarray, pd.DataFrame, list[str]] | None = None
    folds: list[dict] = field(default_factory=list)
    last_model: TierModel | None = None
    tier_sets: np.ndarray | None = None  # (n, 4) bool: each row's conformal set (models.conformal)
    # the main model's tiers under each policy kind, each fitted on the fold's calibration months
    policy_decisions: dict[str, np.ndarray] = field(default_factory=dict)


# The policies compared in the report (docs/model.md): each fitted on the same calibration months.
COMPARED_POLICIES: tuple[str, ...] = ("capacity", "peer_multiple", "thresholds")


def fit_baselines(
    train: pd.DataFrame,
    ytr: np.ndarray,
    names: list[str],
    history: TierHistory,
    origin: str | None = None,
) -> dict[str, Callable[[pd.DataFrame], np.ndarray]]:
    """The baselines of docs/metrics.md fitted on ``train``, each as a function rows → (n, 4).

    ``origin`` (a fold's first test month): every row reads the tier history as the records held it
    at the end of the later of its as-of month and the origin (:meth:`TierHistory.known_at`) — the
    training rows as known at the origin, like their labels; a test row as known at its own as-of
    month. ``None``: the final record for every row.
    """
    known: dict[str, TierHistory] = {}

    def read(rows: pd.DataFrame, what: str) -> np.ndarray:
        if origin is None:
            return getattr(history, what)(rows["unit_id"], rows["as_of"])
        as_of = rows["as_of"].astype(str).to_numpy(dtype=object)
        month = np.where(as_of > origin, as_of, origin)  # 'YYYY-MM' labels order as months do
        out = None
        for m in np.unique(month):
            sel = month == m
            if m not in known:
                known[m] = history.known_at(m)
            part = getattr(known[m], what)(rows["unit_id"].to_numpy()[sel], as_of[sel])
            out = np.empty((len(rows), *part.shape[1:]), dtype=part.dtype) if out is None else out
            out[sel] = part
        return out

    last_tr = read(train, "last_tier")
    seen = last_tr >= 0
    pers = Persistence().fit(last_tr[seen], ytr[seen])
    fallback = int(np.bincount(ytr, minlength=4).argmax())
    hist = HistoricalRate().fit(train["unit_type"].astype(str), ytr)
    logistic = LogisticBaseline(names).fit(train, ytr)

    def persistence(rows: pd.DataFrame) -> np.ndarray:
        last = read(rows, "last_tier")
        return pers.predict_proba(np.where(last >= 0, last, fallback))

    def historical_rate(rows: pd.DataFrame) -> np.ndarray:
        return hist.predict_proba(read(rows, "past_counts"), rows["unit_type"].astype(str))

    return {
        "persistence": persistence,
        "historical_rate": historical_rate,
        "logistic": logistic.predict_proba,
    }


def fit_predict(
    train: pd.DataFrame,
    test: pd.DataFrame,
    names: list[str],
    config: Config,
    history: TierHistory,
    truth: pd.DataFrame | None = None,
    origin: str | None = None,
    label_lag: int = 0,
) -> tuple[TierModel, dict[str, tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """One fold: fit the model and the baselines on ``train``, forecast ``test``.

    Every model's policy thresholds are fitted on its own forecasts of the training rows of the
    model's calibration months (never on the test rows). Returns the fitted model,
    ``{name: (proba (n, 4), decided (n,))}`` for the model (``lightgbm``), the baselines and the
    oracle (when ``truth`` covers the rows), and the model's tiers under each compared policy.
    ``origin``: the baselines read the tier history as known then (:func:`fit_baselines`).
    ``label_lag``: the model leaves out the latest training months whose labels are still settling
    (:meth:`TierModel.fit`); the baselines are the simple methods as they are and use every row.
    """
    ytr = train["tier"].to_numpy(dtype=np.int64)
    model = TierModel(names, config.model, config.policy, config.tiers).fit(
        train,
        ytr,
        train["as_of"].to_numpy(),
        horizon_months=config.horizon_months,
        label_lag=label_lag,
    )
    recent = train[train["as_of"].isin(model.calibration_months_)]
    p_test = model.predict_proba(test)
    out = {"lightgbm": (p_test, decide(p_test, config.policy, model.decision_thresholds_))}
    p_recent = model.predict_proba(recent)
    compared = {}
    for kind in COMPARED_POLICIES:
        policy = config.policy.model_copy(update={"kind": kind})
        compared[kind] = decide(p_test, policy, fit_thresholds(p_recent, policy))
    baselines = fit_baselines(train, ytr, names, history, origin)
    forecasts = {name: (f(test), f(recent)) for name, f in baselines.items()}
    if truth is not None:
        h = config.horizon_months
        pair = (oracle_proba(test, truth, h), oracle_proba(recent, truth, h))
        if pair[0] is not None and pair[1] is not None:
            forecasts["oracle"] = pair
    for name, (p, q) in forecasts.items():
        out[name] = (p, decide(p, config.policy, fit_thresholds(q, config.policy)))
    return model, out, compared


# (training rows, origin) → their label columns as known then (tier and the rule outcomes' totals)
Labels = Callable[[pd.DataFrame, str], dict[str, np.ndarray]]


def _blocks(frame: pd.DataFrame, config: Config) -> tuple[pd.DataFrame, list[list[str]]]:
    """(the labelled rows, the test as-of months of each fold: the last ``test_periods`` labelled
    months, ``refit_every`` to a fold)."""
    labelled = frame[frame["tier"].notna()]
    dates = sorted(labelled["as_of"].unique())
    if len(dates) < config.test_periods + config.backtest.min_train_periods:
        raise ValueError(
            f"{len(dates)} labelled as-of dates; the backtest needs test_periods ({config.test_periods})"
            f" + backtest.min_train_periods ({config.backtest.min_train_periods})"
        )
    test_dates = dates[-config.test_periods :]
    step = config.backtest.refit_every
    return labelled, [test_dates[i : i + step] for i in range(0, len(test_dates), step)]


def _fold(
    labelled: pd.DataFrame, block: list[str], config: Config, train_labels: Labels | None
) -> tuple[str, pd.DataFrame, pd.DataFrame, str | None]:
    """(last training as-of month, training rows, test rows, origin) of the fold testing ``block``;
    the origin (its first month) only when the training rows carry the labels known then."""
    cutoff = add_months(block[0], -config.horizon_months)  # a training row's window ends ≤ block[0]
    train = labelled[labelled["as_of"] <= cutoff]
    if train_labels is not None:  # what the records held at the origin, not the final record
        train = train.assign(**train_labels(train, block[0]))
    if train["as_of"].nunique() < config.backtest.min_train_periods:
        raise ValueError(f"fold {block[0]}: fewer than {config.backtest.min_train_periods} training dates")
    origin = block[0] if train_labels is not None else None
    return cutoff, train, labelled[labelled["as_of"].isin(block)], origin


def _label_lag(config: Config, train_labels: Labels | None, origin: str) -> int:
    """``model.label_lag`` as an int: ``"auto"`` asks the records as they stood at the origin how long
    labels take to settle (:meth:`sanling.features.labels.KnownLabels.label_lag`); final-record
    labels are settled."""
    setting = config.model.label_lag
    if setting != "auto":
        return int(setting)
    measure = getattr(train_labels, "label_lag", None)
    return measure(origin) if measure is not None else 0


def baseline_forecasts(
    frame: pd.DataFrame,
    feature_names: list[str],
    history: TierHistory,
    config: Config,
    *,
    train_labels: Labels | None = None,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """The baselines alone over the folds of :func:`rolling_origin` (same rows, labels and tier
    history, no LightGBM): (test rows' meta, their final-record tiers, ``{name: (n, 4) proba}``)."""
    labelled, blocks = _blocks(frame, config)
    metas, ys, preds = [], [], {}
    for block in blocks:
        _, train, test, origin = _fold(labelled, block, config, train_labels)
        ytr = train["tier"].to_numpy(dtype=np.int64)
        for name, f in fit_baselines(train, ytr, feature_names, history, origin).items():
            preds.setdefault(name, []).append(f(test))
        metas.append(test[list(META_COLUMNS)].reset_index(drop=True))
        ys.append(test["tier"].to_numpy(dtype=np.int64))
    return (
        pd.concat(metas, ignore_index=True),
        np.concatenate(ys),
        {k: np.vstack(v) for k, v in preds.items()},
    )


def rolling_origin(
    frame: pd.DataFrame,
    feature_names: list[str],
    history: TierHistory,
    config: Config,
    *,
    truth: pd.DataFrame | None = None,
    progress: Callable[[Sequence], Sequence] | None = None,
    shap_sample: int = 2000,
    train_labels: Labels | None = None,
) -> BacktestResult:
    """Run the backtest.

    Parameters
    ----------
    frame : feature frame with meta columns, features and ``tier`` (labelled rows only are used).
    feature_names : model inputs.
    history : past windows' tiers, for the persistence and historical-rate baselines; with
        ``train_labels``, each fold reads them as the records held them at its origin
        (:func:`fit_baselines`), the rule of the training labels.
    truth : the oracle, columns unit_id, as_of, horizon_months, p_blue … p_red (optional).
    progress : wraps the fold iterator (e.g. ``tqdm``).
    train_labels : (training rows, origin ``'YYYY-MM'``) → their label columns as known at the origin
        (e.g. :class:`sanling.features.labels.KnownLabels`); default: the frame's final-record labels.
        Test rows always keep the frame's tiers (the final record).
    """
    h = config.horizon_months
    labelled, blocks = _blocks(frame, config)
    test_dates = [d for block in blocks for d in block]
    it = progress(blocks) if progress else blocks

    metas, ys, preds, folds, tier_sets, compared = [], [], {}, [], [], {}
    model = None
    for block in it:
        cutoff, train, test, origin = _fold(labelled, block, config, train_labels)
        model, out, decided = fit_predict(
            train,
            test,
            feature_names,
            config,
            history,
            truth,
            origin,
            _label_lag(config, train_labels, block[0]),
        )
        tier_sets.append(
            fold_tier_sets(model, train, test, out["lightgbm"][0], config.model.validation_periods)
        )
        folds.append(
            {
                "test": list(block),
                "train_until": cutoff,
                "n_train": len(train),
                "label_lag": model.label_lag_,
                "best_iterations": model.best_iterations_,
                "stack": [list(w) for w in model.stack_],
            }
        )
        metas.append(test[list(META_COLUMNS)].reset_index(drop=True))
        ys.append(test["tier"].to_numpy(dtype=np.int64))
        for k, v in out.items():
            preds.setdefault(k, []).append(v)
        for k, v in decided.items():
            compared.setdefault(k, []).append(v)

    meta = pd.concat(metas, ignore_index=True)
    y = np.concatenate(ys)
    # a model missing from any fold (the oracle where truth does not cover it) is left out
    predictions = {
        k: (np.vstack([p for p, _ in v]), np.concatenate([d for _, d in v]))
        for k, v in preds.items()
        if len(v) == len(folds)
    }

    shap = None
    if model is not None and config.model.formulation == "cumulative":
        last = labelled[labelled["as_of"].isin(blocks[-1])]
        sample = last.sample(min(shap_sample, len(last)), random_state=0)
        contrib, _ = model.contributions(sample)
        shap = (contrib, sample[feature_names].reset_index(drop=True), feature_names)

    metrics = {
        "horizon_months": h,
        "as_of_dates": list(test_dates),
        "n_rows": len(y),
        "class_balance": class_balance(y),
        "models": {k: tier_metrics(y, p, d) for k, (p, d) in predictions.items()},
    }
    policy_decisions = {k: np.concatenate(v) for k, v in compared.items()}
    return BacktestResult(
        meta, y, predictions, metrics, shap, folds, model, np.vstack(tier_sets), policy_decisions
    )


def oracle_proba(meta: pd.DataFrame, truth: pd.DataFrame, horizon: int) -> np.ndarray | None:
    """The true tier probabilities aligned with ``meta``; ``None`` unless every row is covered."""
    t = truth[truth["horizon_months"] == horizon]
    if t.empty:
        return None
    cols = [f"p_{k}" for k in TIERS]
    keyed = t.set_index(["unit_id", "as_of"])[cols]
    idx = pd.MultiIndex.from_arrays([meta["unit_id"].astype(str), meta["as_of"].astype(str)])
    aligned = keyed.reindex(idx)
    if aligned.isna().any(axis=None):
        return None
    return aligned.to_numpy(dtype=float)


def tier_history(panel, config: Config, *, origin: str | None = None) -> TierHistory:
    """The tier of every unit's outcome window ending at each panel month (−1 before the first
    full window), computed with the same label code as the training rows.

    ``origin`` (``'YYYY-MM'``): the tiers as the records held them at the end of that month
    (:func:`sanling.features.labels.tiers_known_at`, the rule of the training labels of an origin),
    −1 for windows ending after it. When the panel holds late records, the history's
    :meth:`TierHistory.known_at` gives these."""
    from sanling.features.grid import as_of_offsets
    from sanling.features.labels import tiers_from_outcomes, tiers_known_at, window_outcomes

    h = config.horizon_months
    months = [month_label(panel.first_month + m) for m in range(panel.n_months)]
    tiers = np.full((panel.n_units, panel.n_months), -1, dtype=np.int64)
    end = panel.n_months if origin is None else int(as_of_offsets(panel, [origin])[0]) + 1
    if end > h:
        as_of = months[: end - h]  # window of as_of m ends at m + h
        if origin is None:
            t = tiers_from_outcomes(window_outcomes(panel, as_of, h), config.tiers)  # (n_as_of, U)
        else:
            t = tiers_known_at(panel, as_of, origin, h, config.tiers)
        tiers[:, h:end] = np.asarray(t).T

    def at(month: str) -> TierHistory:
        return tier_history(panel, config, origin=month)

    late = at if panel.knowledge is not None else None
    return TierHistory(np.asarray(panel.unit_ids, dtype=object), months, tiers, h, late)
