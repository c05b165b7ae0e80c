"""The count-structured forecast: per-category Poisson rates combined into the cumulative levels —
the fourth input of :class:`~sanling.models.tier_model.TierModel`'s stack (docs/model.md).

The tier rules are functions of next month's counts, and the counts carry far more information than
the rare tier outcomes: a unit has a dispute most months but a red month once in two years. Three
stages, all generalised linear models over a compact design, fitted on the training rows:

1. **The unit's persistent level per family** (social: disputes, petitions, public order, criminal
   cases; safety: accidents, fires, hazards — categories of the same family share a unit's frailty).
   Observed events since the first month ``O`` against those expected from the unit's type and
   attributes ``E`` (a Poisson regression of the all-time rate, weighted by months): the
   Gamma–Poisson posterior mean ``(k + O) / (k + E)`` of the unit's multiplier — the standardised
   incidence ratio shrunk by how much history stands behind it, ``k`` by the method of moments.
2. **Next month's rate of each category** ``λ_c``: an L2 Poisson regression of its count on unit
   type, attributes (within-type z-scores, interacted with the type), calendar month, trend, the two
   log posterior multipliers and the category's own recent counts, backlog and neighbours' counts.
3. **The levels**: P(tier ≥ k) = 1 − exp(−Σ_c w_kc λ_c − w_k0), non-negative weights per unit type
   fitted by maximum likelihood (convex). Under Poisson counts and "any event of these kinds" rules
   this is exact, ``w_kc`` being the share of category-c events that trigger level k (every dispute
   for ≥ yellow, the escalated share of petitions for red); for other rules it is a close
   approximation, which the stack weighs on held-out months.

The rows of one call are forecast independently (no cross-row statistics), so one unit scored alone
gets the same probabilities as in a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import PoissonRegressor

from sanling.core.months import month_number
from sanling.features.labels import OUTCOME_PREFIX
from sanling.models.glm import (
    ConstantRate,
    Standardised,
    fit_hazard,
    later_rows,
    numeric,
    tail_hazard,
    township_keys,
)
from sanling.models.history_prior import months_of_history

LEVELS = (1, 2, 3)
SOCIAL = ("dispute", "petition", "public_security", "criminal")
SAFETY = ("safety_accident", "fire", "hazard")
# Bundles pickled by the previous version name these classes here.
_Design, _Constant = Standardised, ConstantRate
RECORD_FEATURE = "events_rate_all"  # where the reasons show the unit's long-run level
# Names produced by the event families (features.families / registry); what is left are the unit's
# registry attributes.
_DERIVED_PREFIXES = ("events_", "casualties_", "peer_", "tier_", "season_", "months_to_", "spring_")
_DERIVED = ("unresolved_backlog_total", "unit_type")


def registry_attributes(feature_names: Sequence[str], categories: Sequence[str]) -> list[str]:
    """The registry attributes among ``feature_names``: every name not generated from events."""
    prefixes = tuple(f"{c}_" for c in categories) + _DERIVED_PREFIXES
    return [
        n
        for n in feature_names
        if not n.startswith(prefixes) and n not in _DERIVED and not n.endswith("_per_1k_12m")
    ]


def categories_of(columns: Sequence[str]) -> list[str]:
    """The event categories of a frame: those with an all-time rate column."""
    return [c[: -len("_rate_all")] for c in columns if c.endswith("_rate_all") and c != "events_rate_all"]


class CountLevels:
    """Per-category Poisson rates → cumulative-level probabilities (module docstring).

    Every regression is fitted per unit type (a village, a community and an enterprise differ in
    every rate and every effect); a type training never saw is forecast with the largest type's.

    Parameters
    ----------
    feature_names : the model's input columns (the categories and attributes are read from them).
    start : month number of the panel's first month (months of history = as-of − start + 1).
    horizon : months in the outcome window (the count targets are the ``horizon``-month window sums).
    alpha : L2 strength of the Poisson regressions (on standardised columns, per row).
    max_rows : a uniform sample of the training rows beyond this.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        start: int,
        horizon: int = 1,
        alpha: float = 1e-3,
        max_rows: int = 300_000,
        seed: int = 0,
        thresholds: Mapping[str, Sequence[int]] | None = None,
    ):
        self.feature_names = list(feature_names)
        self.start = int(start)
        self.horizon = int(horizon)
        self.alpha = alpha
        self.max_rows = max_rows
        self.seed = seed
        self.thresholds = {k: list(v) for k, v in (thresholds or {}).items()}

    def __setstate__(self, state: dict) -> None:
        if "hazard_columns_" not in state and "categories_" in state:  # a bundle of the previous version
            state["outcomes_"] = list(state["categories_"])
            state["hazard_columns_"] = [(i, 1, 0.0) for i in range(len(state["outcomes_"]))]
            state["inv_r_"] = np.zeros(len(state["outcomes_"]))
        self.__dict__.update(state)

    # -- what the frame must hold --------------------------------------------------------------
    @staticmethod
    def usable(frame: pd.DataFrame, horizon: int) -> bool:
        cats = categories_of(frame.columns)
        need = ("unit_id", "as_of", "unit_type")
        return (
            bool(cats)
            and all(c in frame.columns for c in need)
            and all(f"{c}_count_{horizon}m" in frame.columns for c in cats)
        )

    # -- the design ----------------------------------------------------------------------------
    def _months(self, frame: pd.DataFrame) -> np.ndarray:
        labels = frame["as_of"].astype(str)
        numbers = {a: month_number(a) for a in labels.unique()}
        return labels.map(numbers).to_numpy(dtype=np.int64)

    def _observed(self, frame: pd.DataFrame, n: np.ndarray) -> np.ndarray:
        """(rows, families) events since the first month."""
        out = np.zeros((len(frame), len(self.families_)))
        for j, fam in enumerate(self.families_):
            for c in fam:
                out[:, j] += np.nan_to_num(numeric(frame, f"{c}_rate_all")) * n
        return out

    def _fit_attributes(self, frame: pd.DataFrame) -> None:
        """Which registry attributes enter, how: numeric ones (count-like ones on log scale, and
        per size for the others of a type — mediators per 1,000 people), categorical ones one-hot."""
        self.numeric_, self.logged_, self.levels_ = [], [], {}
        for a in registry_attributes(self.feature_names, self.categories_):
            if a not in frame.columns:
                continue
            col = frame[a]
            if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
                x = numeric(frame, a)
                if np.isfinite(x).any():
                    self.numeric_.append(a)
                    if np.nanmin(x) >= 0 and np.nanmax(x) > 1:
                        self.logged_.append(a)
            else:
                counts = col.astype(str).value_counts()
                self.levels_[a] = list(counts.index[counts >= 20][:30])
        # A type's size: its count-like attribute with the largest median (population, employees).
        self.size_ = {}
        types = frame["unit_type"].astype(str).to_numpy()
        for t in self.types_:
            med = {}
            for a in self.logged_:
                x = numeric(frame, a)[types == t]
                if np.isfinite(x).any():
                    med[a] = float(np.nanmedian(x))
            self.size_[t] = max(med, key=med.get) if med else None

    def _type_block(self, frame: pd.DataFrame, t: str) -> np.ndarray:
        """Attributes as they enter for type ``t`` (before standardising)."""
        cols = []
        size = self.size_.get(t)
        for a in self.numeric_:
            x = numeric(frame, a)
            if a in self.logged_:
                cols.append(np.log1p(np.clip(x, 0, None)))
                if size is not None and a != size:
                    cols.append(1000.0 * np.clip(x, 0, None) / np.maximum(numeric(frame, size), 1.0))
            else:
                cols.append(x)
        for a, levels in self.levels_.items():
            v = frame[a].astype(str).to_numpy()
            cols += [(v == lv).astype(float) for lv in levels]
        return np.column_stack(cols) if cols else np.zeros((len(frame), 0))

    def _static(self, frame: pd.DataFrame) -> np.ndarray:
        """Type one-hot, then one block of standardised attributes per type (zero for the rows of
        other types): every attribute effect is the type's own, the rows of all types share the
        rest of the model."""
        types = self._types(frame)
        cols = [np.column_stack([types == t for t in self.types_]).astype(float)]
        for t in self.types_:
            block = np.zeros((len(frame), self.blocks_[t].mean_.shape[0]))
            m = types == t
            if m.any():
                block[m] = self.blocks_[t].transform(self._type_block(frame[m], t))
            cols.append(block)
        return np.column_stack(cols)

    def _types(self, frame: pd.DataFrame) -> np.ndarray:
        """Unit types, a type training never saw read as the most frequent one."""
        types = frame["unit_type"].astype(str).to_numpy()
        return np.where(np.isin(types, self.types_), types, self.types_[0])

    def _calendar(self, frame: pd.DataFrame) -> np.ndarray:
        """The target's calendar month per unit type (one-hot) and a linear trend in years. (Carrying
        the last half-year's level forward instead of a trend did worse on the validation worlds,
        docs/model.md.)"""
        m = self._months(frame)
        moy = (m + self.horizon) % 12
        types = self._types(frame)
        season = [(moy == k) & (types == t) for t in self.types_ for k in range(12)]
        return np.column_stack([*season, (m - self.start) / 12.0]).astype(float)

    def _base(self, v: str) -> str | None:
        """The event category an outcome counts (``petition_escalated`` → ``petition``), if one."""
        for suffix in ("", "_escalated", "_unresolved"):
            if v.endswith(suffix) and v[: len(v) - len(suffix)] in self.categories_:
                return v[: len(v) - len(suffix)]
        return None

    def _history_names(self, v: str) -> list[str]:
        """The history an outcome's rate reads: its category's (and its escalations'), the
        casualty-bearing categories' for casualties, all events' for ``events``."""
        c = self._base(v)
        if c is None:
            if v == "casualties":
                kinds = [k for k in (*SAFETY, "criminal") if k in self.categories_]
                return ["casualties_count_3m", "casualties_count_12m", *(f"{k}_count_12m" for k in kinds)]
            return ["events_count_1m", "events_count_3m", "events_count_12m", "unresolved_backlog_total"]
        extra = [f"{c}_escalated_count_3m", f"{c}_escalated_count_12m"] if v.endswith("_escalated") else []
        return [
            *extra,
            f"{c}_count_1m",
            f"{c}_count_3m",
            f"{c}_count_12m",
            f"{c}_decayed_hl3",
            f"{c}_unresolved_backlog",
            "unresolved_backlog_total",
            f"peer_knn_{c}_count_12m",
            f"peer_township_{c}_count_12m",
            f"peer_county_{c}_count_12m",
        ]

    def _history(self, frame: pd.DataFrame, c: str) -> np.ndarray:
        """The outcome's recent history, its backlog and its peers' counts, on log scale."""
        return np.column_stack(
            [np.log1p(np.clip(np.nan_to_num(numeric(frame, n)), 0, None)) for n in self._history_names(c)]
        )

    def _sources(self, c: str) -> list[str]:
        """The feature each column of outcome ``c``'s rate design is read from (``""``: the
        calendar trend and the posterior multipliers, which the reasons show as the unit's record)."""
        static = ["unit_type"] * len(self.types_)
        for t in self.types_:
            size = self.size_.get(t)
            for a in self.numeric_:
                static.append(a)
                if a in self.logged_ and size is not None and a != size:
                    static.append(a)
            for a, levels in self.levels_.items():
                static += [a] * len(levels)
        calendar = ["season_month"] * (12 * len(self.types_)) + [""]
        return static + calendar + [""] * len(self.families_) + self._history_names(c)

    def _log_frailty(self, frame: pd.DataFrame, S: np.ndarray, area: np.ndarray | None = None) -> np.ndarray:
        """Log posterior multipliers (rows, families): the unit's own record against its expected
        count, around its township's multiplier ``area`` (default: the township's at the end of
        training, without the unit's own events)."""
        n = months_of_history(frame["as_of"].to_numpy(), self.start)
        seen = self._observed(frame, n)
        E = np.column_stack([n * reg.predict(S) for reg in self.expected_])
        k = self.shape_[pd.Index(self.types_).get_indexer(self._types(frame))]
        if area is None:
            area = self._area(frame)
        return np.log(area * (k + seen) / (k + E * area))

    def _area(self, frame: pd.DataFrame) -> np.ndarray:
        """The township multiplier of each row from the sums stored at the end of training."""
        if not self.town_:
            return np.ones((len(frame), len(self.families_)))
        keys = township_keys(frame)
        units = frame["unit_id"].astype(str).to_numpy() if "unit_id" in frame.columns else [""] * len(frame)
        sums = np.array([self.town_.get(key, self._no_town) for key in keys])  # (n, 2, fam)
        own = np.array([self.own_.get(u, self._no_town) for u in units])
        same = np.array([self.own_town_.get(u) == key for u, key in zip(units, keys, strict=True)])
        other = sums - np.where(same[:, None, None], own, 0.0)
        return (self.town_shape_ + other[:, 0]) / (self.town_shape_ + other[:, 1])

    def _rate_design(self, frame: pd.DataFrame, S: np.ndarray, logf: np.ndarray, c: str) -> np.ndarray:
        return np.column_stack([S, self._calendar(frame), logf, self._history(frame, c)])

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, y: np.ndarray, rows: np.ndarray | None = None) -> CountLevels:
        """Fit on the rows ``rows`` of ``frame`` (default all; ``y`` the tiers of ``frame``'s rows).
        A row's count targets are read from the row ``horizon`` months later of the same unit,
        anywhere in ``frame``; rows without one are left out of stage 2. Beyond ``max_rows`` a
        uniform sample of the rows is used."""
        y = np.asarray(y, dtype=np.int64)
        full = frame
        rows = np.arange(len(frame)) if rows is None else np.asarray(rows)
        if len(rows) > self.max_rows:
            rows = np.sort(np.random.default_rng(self.seed).choice(rows, self.max_rows, replace=False))
        frame, y = frame.iloc[rows].reset_index(drop=True), y[rows]
        self.categories_ = categories_of(frame.columns)
        # What stage 2 forecasts: the window totals the tier rules name, when the frame carries them
        # (as the records held them at the origin — features.labels.label_columns); else each
        # category's count, read from the same unit's row a window later.
        self.outcomes_ = [c[len(OUTCOME_PREFIX) :] for c in frame.columns if c.startswith(OUTCOME_PREFIX)]
        if self.outcomes_:
            targets = np.column_stack([numeric(frame, OUTCOME_PREFIX + v) for v in self.outcomes_])
        else:
            self.outcomes_ = list(self.categories_)
            later_of = later_rows(full, self.horizon)[rows]
            counts = [np.append(numeric(full, f"{c}_count_{self.horizon}m"), np.nan) for c in self.outcomes_]
            targets = np.column_stack([x[later_of] for x in counts])  # −1: no later row → NaN
        families = [[c for c in fam if c in self.categories_] for fam in (SOCIAL, SAFETY)]
        families.append([c for c in self.categories_ if c not in SOCIAL + SAFETY])
        self.families_ = [f for f in families if f]
        types = frame["unit_type"].astype(str).to_numpy()
        counts = pd.Series(types).value_counts()
        self.types_ = list(counts.index)
        self.default_type_ = self.types_[0]
        self._fit_attributes(frame)
        self.blocks_ = {t: Standardised().fit(self._type_block(frame[types == t], t)) for t in self.types_}
        S = self._static(frame)
        # Stage 1: the expected all-time rate of each family from type and attributes; the shape of
        # the units' multipliers per type by the method of moments on each unit's latest row.
        n = months_of_history(frame["as_of"].to_numpy(), self.start)
        seen = self._observed(frame, n)
        as_of = frame["as_of"].astype(str)
        last = (as_of.groupby(frame["unit_id"].to_numpy()).transform("max") == as_of).to_numpy()
        self.expected_ = [self._fit_rate(S, seen[:, j] / n, n) for j in range(seen.shape[1])]
        E = np.column_stack([np.maximum(n * reg.predict(S), 1e-9) for reg in self.expected_])
        self.shape_ = np.ones((len(self.types_), seen.shape[1]))
        for ti, t in enumerate(self.types_):
            m = last & (types == t)
            if m.sum() > 1:
                r = seen[m] / E[m]
                inv_k = r.var(axis=0) - (1.0 / E[m]).mean(axis=0)
                self.shape_[ti] = np.clip(1.0 / np.maximum(inv_k, 1e-2), 0.2, 100.0)
        # The township's multiplier, from the other units of the township at the same month.
        keys = township_keys(frame)
        self.town_, self.own_, self.own_town_ = {}, {}, {}
        self._no_town = np.zeros((2, seen.shape[1]))
        area = np.ones_like(E)
        self.town_shape_ = np.full(seen.shape[1], np.inf)
        if len(set(keys)) > 1:
            group = pd.Series(keys).astype(str) + "|" + as_of.to_numpy()
            s_seen = pd.DataFrame(seen).groupby(group.to_numpy()).transform("sum").to_numpy()
            s_exp = pd.DataFrame(E).groupby(group.to_numpy()).transform("sum").to_numpy()
            # method of moments at the latest month: Var(S_O / S_E) = Var(m) + 1/S_E + Σ E²/(k S_E²)
            latest = as_of.to_numpy() == as_of.max()
            first = ~pd.Series(group[latest]).duplicated().to_numpy()
            k_rows = self.shape_[pd.Index(self.types_).get_indexer(types)]
            sq = pd.DataFrame(E**2 / k_rows).groupby(group.to_numpy()).transform("sum").to_numpy()
            r = (s_seen / s_exp)[latest][first]
            noise = (1.0 / s_exp + sq / s_exp**2)[latest][first]
            var_m = np.maximum(r.var(axis=0) - noise.mean(axis=0), 1e-3)
            self.town_shape_ = np.clip(1.0 / var_m, 1.0, 1000.0)
            area = (self.town_shape_ + s_seen - seen) / (self.town_shape_ + s_exp - E)
            for i in np.flatnonzero(latest):
                self.town_[keys[i]] = np.stack([s_seen[i], s_exp[i]])
                self.own_[str(frame["unit_id"].iat[i])] = np.stack([seen[i], E[i]])
                self.own_town_[str(frame["unit_id"].iat[i])] = keys[i]
        logf = self._log_frailty(frame, S, area)
        # Stage 2: next window's count of each category.
        has = np.isfinite(targets).all(axis=1)
        self.rate_models_ = {}
        lam = np.zeros((int(has.sum()), len(self.outcomes_)))
        for ci, c in enumerate(self.outcomes_):
            target = np.clip(targets[has, ci], 0, None)
            D = self._rate_design(frame, S, logf, c)[has]
            dz = Standardised().fit(D)
            reg = self._fit_rate(dz.transform(D), target)
            self.rate_models_[c] = (dz, reg)
            lam[:, ci] = reg.predict(dz.transform(D))
        # Overdispersion left over (Var N = λ + λ²/r, moments): a Poisson count when there is none.
        T = np.clip(targets[has], 0, None)
        excess = ((T - lam) ** 2 - lam).sum(axis=0) / np.maximum((lam**2).sum(axis=0), 1e-12)
        self.inv_r_ = np.clip(excess, 0.0, 10.0)
        # The hazard inputs: −log P(N < k) of each outcome at 1, 2 and the thresholds its rules use.
        # "≥ 1" and "≥ 2" under a Poisson count (the weights absorb a little overdispersion; negative
        # binomial columns beside them did worse on the validation worlds, docs/model.md), the larger
        # thresholds a rule uses under a negative binomial with the outcome's overdispersion.
        self.hazard_columns_ = [(i, k, 0.0) for i in range(len(self.outcomes_)) for k in (1, 2)]
        self.hazard_columns_ += [
            (i, k, float(self.inv_r_[i]))
            for i, v in enumerate(self.outcomes_)
            for k in self.thresholds.get(v, ())
            if k > 2
        ]
        # Stage 3: non-negative weights of the rates per level and unit type.
        th, yh, H = types[has], y[has], self._hazard_inputs(lam)
        self.weights_ = {
            t: {k: fit_hazard(H[th == t], (yh[th == t] >= k).astype(float)) for k in LEVELS}
            for t in self.types_
        }
        return self

    def _poisson(self) -> PoissonRegressor:
        # Newton–Cholesky: the designs are a few hundred columns over many rows, where it converges
        # in a handful of steps (2.4× less CPU than L-BFGS on a county fold, and closer to the optimum).
        return PoissonRegressor(alpha=self.alpha, max_iter=100, solver="newton-cholesky")

    def _fit_rate(self, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None):
        """A Poisson regression, or the constant rate when there is nothing to regress (a category
        without events in the training window, or only one row)."""
        if len(y) < 2 or float(np.sum(y)) <= 0.0:
            return ConstantRate(float(np.mean(y)) if len(y) else 0.0, X.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self._poisson().fit(X, y, sample_weight=weight)

    # -- prediction ----------------------------------------------------------------------------
    def rates(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, categories) expected counts in the outcome window."""
        S = self._static(frame)
        logf = self._log_frailty(frame, S)
        out = np.zeros((len(frame), len(self.outcomes_)))
        for ci, c in enumerate(self.outcomes_):
            dz, reg = self.rate_models_[c]
            out[:, ci] = reg.predict(dz.transform(self._rate_design(frame, S, logf, c)))
        return out

    def _hazards(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 3) η_k: P(tier ≥ k) = 1 − exp(−η_k)."""
        return self._eta(self.rates(frame), self._types(frame))

    def _hazard_inputs(self, lam: np.ndarray) -> np.ndarray:
        """(n, columns) what a level's hazard is linear in: −log P(N_v < k) for each hazard column
        (v, k, 1/r) — λ for k = 1, λ − log(1 + λ) for k = 2 under a Poisson count (1/r = 0), else
        under a negative binomial one."""
        return np.column_stack([tail_hazard(lam[:, i], k, inv_r) for i, k, inv_r in self.hazard_columns_])

    def _eta(self, lam: np.ndarray, types: np.ndarray) -> np.ndarray:
        H, out = self._hazard_inputs(lam), np.zeros((len(lam), len(LEVELS)))
        for t in self.types_:
            m = types == t
            for j, k in enumerate(LEVELS):
                w = self.weights_[t][k]
                out[m, j] = H[m] @ w[:-1] + w[-1]
        return out

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 3) P(tier ≥ yellow), P(≥ orange), P(red) (the stack enforces their order)."""
        return np.clip(-np.expm1(-self._hazards(frame)), 1e-6, 1 - 1e-6)

    def logits(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.probabilities(frame)
        return np.log(p / (1 - p))

    def contributions(self, frame: pd.DataFrame, level: int, centre: float) -> np.ndarray:
        """The parts of :meth:`logits_and_contributions` alone."""
        return self.logits_and_contributions(frame, level, centre)[1]

    def logits_and_contributions(self, frame: pd.DataFrame, level: int, centre: float) -> tuple:
        """``(logits(frame), (n, features) parts of logit P(tier ≥ LEVELS[level]) − centre)``, from
        one computation of the rates (the batch scorer needs both). Each outcome's log rate is linear
        in its design, so a column's part of it is coefficient × standardised value; these are
        weighted by the outcome's share of d η / d log λ and by d logit / d log η = η / P, then summed
        by the feature the column is read from. What this first-order split leaves — the calendar
        trend, the posterior multipliers, the curvature — goes to ``RECORD_FEATURE`` (the unit's
        long-run rate of events), so the parts add up exactly."""
        S = self._static(frame)
        logf = self._log_frailty(frame, S)
        types = self._types(frame)
        index = {n: i for i, n in enumerate(self.feature_names)}
        out = np.zeros((len(frame), len(self.feature_names)))
        lam = np.zeros((len(frame), len(self.outcomes_)))
        parts = []
        for ci, c in enumerate(self.outcomes_):
            dz, reg = self.rate_models_[c]
            Z = dz.transform(self._rate_design(frame, S, logf, c))
            lam[:, ci] = reg.predict(Z)
            parts.append(Z * reg.coef_)
        eta_all = self._eta(lam, types)
        p_all = np.clip(-np.expm1(-eta_all), 1e-6, 1 - 1e-6)  # as ``probabilities``, to the last bit
        eta, p = eta_all[:, level], p_all[:, level]
        gain = eta / p
        # d η / d log λ_v: each hazard column's slope (central difference) × its weight
        step = 1e-4
        up, down = self._hazard_inputs(lam * np.exp(step)), self._hazard_inputs(lam * np.exp(-step))
        slope = (up - down) / (2 * step)
        w = np.zeros((len(lam), len(self.hazard_columns_)))
        for t in self.types_:
            w[types == t] = self.weights_[t][LEVELS[level]][:-1]
        share = np.zeros_like(lam)
        for j, (i, *_) in enumerate(self.hazard_columns_):
            share[:, i] += w[:, j] * slope[:, j]
        share /= np.maximum(eta, 1e-12)[:, None]
        for ci, c in enumerate(self.outcomes_):
            for j, src in enumerate(self._sources(c)):
                if src and src in index:
                    out[:, index[src]] += gain * share[:, ci] * parts[ci][:, j]
        total = np.log(p / (1 - p)) - centre
        rest = index.get(RECORD_FEATURE, 0)
        out[:, rest] += total - out.sum(axis=1)
        return np.log(p_all / (1 - p_all)), out
