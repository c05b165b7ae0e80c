"""Drift checks: is the latest month still like the months the model was trained on?

Pure functions over arrays and frames; :mod:`pipeline.drift_job` builds the inputs (feature frames
from the same feature code as training, the event table joined to the registry) and writes the
outputs. Three questions, each with a plain threshold an analyst can argue with:

* **feature drift** — the population stability index of each model input between the reference
  as-of months and the current one (:func:`psi`, :func:`feature_drift`): PSI > 0.25 warns,
  0.10–0.25 is "watch".
* **volume drift** — monthly event counts per category × county and per township against what the
  reference window leads one to expect (:func:`volume_drift`): a category with ≥ 5 expected events a
  month in a county that reports none, a township at ≥ 1.8× (or ≤ 1/1.8 of) its expected volume with a
  tail p < 0.001 (Poisson widened to the counts' observed over-dispersion), a township or county that
  the reference never saw.
* **label shift** — the tier shares of outcome windows that closed after the reference
  (:func:`label_shift`), once they are known.

:func:`drift_warnings` turns the three into one-line Chinese + English warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import nbinom, poisson

from sanling.core.vocabulary import CATEGORIES_ZH, TIER_ZH, TIERS

PSI_WARN = 0.25
PSI_WATCH = 0.10
# Shares are floored at this before the log: an empty bin on one side gives a large but finite PSI.
PSI_FLOOR = 1e-4
STOPPED_MIN_EXPECTED = 5.0
TOWNSHIP_RATIO = 1.8
TOWNSHIP_P = 1e-3
# Seasonal factors need every calendar month seen at least twice to mean anything.
SEASONAL_MIN_MONTHS = 24
SEASONAL_MIN_PER_MONTH = 1.0
MAX_FEATURE_WARNINGS = 8
# Groups with fewer events a month than this say little about over-dispersion.
DISPERSION_MIN_MEAN = 5.0


# ---------------------------------------------------------------- PSI


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    counts = np.bincount(codes, minlength=n_bins).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def _psi_of_shares(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref, PSI_FLOOR)
    c = np.maximum(cur, PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_bins(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Bin codes of numeric ``reference`` and ``current`` on the reference's quantiles.

    Edges are the distinct reference quantiles at 0, 1/bins, …, 1. Bin 0 holds values below the
    reference minimum, bin 1 values equal to it (the zeros of a count), then one bin per interval
    ``(edge[i-1], edge[i]]``, then values above the reference maximum, and a last bin for NaN.
    A constant reference thus has bins "below", "equal", "above" and NaN.
    Returns ``(ref_codes, cur_codes)``, int arrays with values in ``0 … len(edges) + 2``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    finite = ref[~np.isnan(ref)]
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))) if finite.size else np.zeros(0)
    nan_code = len(edges) + 2

    def code(x: np.ndarray) -> np.ndarray:
        if edges.size == 0:
            return np.where(np.isnan(x), nan_code, 0)
        # searchsorted 'left': i such that edges[i-1] < x <= edges[i]; shifted by one for "below".
        c = np.searchsorted(edges, x, side="left") + 1
        c = np.where(x < edges[0], 0, c)
        return np.where(np.isnan(x), nan_code, c)

    return code(ref), code(cur)


def psi(
    reference: Sequence | np.ndarray | pd.Series, current: Sequence | np.ndarray | pd.Series, bins: int = 10
) -> float:
    """Population stability index Σ (c − r)·ln(c / r) of ``current`` against ``reference``.

    Numeric inputs are binned on the reference's quantiles (:func:`psi_bins`, NaN is a bin of its
    own); anything else (strings, categories) is compared value by value, missing as its own value.
    Shares are floored at :data:`PSI_FLOOR`. 0 means identical distributions; > 0.25 is a large shift.
    Raises ``ValueError`` when either side is empty.
    """
    r_series, c_series = pd.Series(reference), pd.Series(current)
    if len(r_series) == 0 or len(c_series) == 0:
        raise ValueError("psi needs at least one reference and one current value")
    numeric = (
        pd.api.types.is_numeric_dtype(r_series)
        and pd.api.types.is_numeric_dtype(c_series)
        and not pd.api.types.is_bool_dtype(r_series)
    )
    if numeric:
        rc, cc = psi_bins(
            r_series.to_numpy(dtype=np.float64, na_value=np.nan),
            c_series.to_numpy(dtype=np.float64, na_value=np.nan),
            bins,
        )
    else:
        r_text = r_series.astype(object).where(r_series.notna(), "\0missing")
        c_text = c_series.astype(object).where(c_series.notna(), "\0missing")
        levels = pd.Index(pd.unique(np.concatenate([r_text.to_numpy(), c_text.to_numpy()])))
        rc, cc = levels.get_indexer(r_text), levels.get_indexer(c_text)
    n_bins = int(max(rc.max(), cc.max())) + 1
    return _psi_of_shares(_shares(rc, n_bins), _shares(cc, n_bins))


def psi_level(value: float) -> str:
    """'warn' above :data:`PSI_WARN`, 'watch' above :data:`PSI_WATCH`, else 'ok'."""
    if value > PSI_WARN:
        return "warn"
    return "watch" if value > PSI_WATCH else "ok"


def feature_drift(
    ref_frame: pd.DataFrame,
    cur_frame: pd.DataFrame,
    names: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    bins: int = 10,
) -> pd.DataFrame:
    """One row per feature in ``names``: ``feature, label_zh, psi, level`` and, on both sides,
    ``missing_ref/cur`` (share NaN), ``zero_ref/cur`` (share exactly 0) and ``mean_ref/cur``
    (NaN for categorical features). Sorted by PSI, largest first.

    ``labels`` maps feature names to Chinese labels (the feature registry's ``label_zh``).
    Raises ``KeyError`` naming a feature missing from either frame.
    """
    missing = [n for n in names if n not in ref_frame.columns or n not in cur_frame.columns]
    if missing:
        raise KeyError(f"feature(s) not in both frames: {', '.join(missing[:5])}")
    labels = labels or {}
    rows = []
    for name in names:
        r, c = ref_frame[name], cur_frame[name]
        numeric = pd.api.types.is_numeric_dtype(r) and pd.api.types.is_numeric_dtype(c)
        if numeric:
            rv = r.to_numpy(dtype=np.float64, na_value=np.nan)
            cv = c.to_numpy(dtype=np.float64, na_value=np.nan)
            stats = {
                "zero_ref": _share(rv == 0),
                "zero_cur": _share(cv == 0),
                "mean_ref": float(np.nanmean(rv)) if np.isfinite(rv).any() else np.nan,
                "mean_cur": float(np.nanmean(cv)) if np.isfinite(cv).any() else np.nan,
            }
        else:
            stats = {"zero_ref": np.nan, "zero_cur": np.nan, "mean_ref": np.nan, "mean_cur": np.nan}
        value = psi(r, c, bins)
        rows.append(
            {
                "feature": name,
                "label_zh": labels.get(name, name),
                "psi": value,
                "level": psi_level(value),
                "missing_ref": _share(r.isna().to_numpy()),
                "missing_cur": _share(c.isna().to_numpy()),
                **stats,
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "feature",
            "label_zh",
            "psi",
            "level",
            "missing_ref",
            "missing_cur",
            "zero_ref",
            "zero_cur",
            "mean_ref",
            "mean_cur",
        ],
    )
    return out.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def _share(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if len(mask) else np.nan


# ---------------------------------------------------------------- volumes


def _month_period(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="datetime64[ns]").astype("datetime64[M]")


def volume_drift(
    events: pd.DataFrame,
    ref_months: Sequence[str],
    cur_month: str,
    by: Sequence[str] = ("category",),
    *,
    units: pd.DataFrame | None = None,
    seasonal: bool = True,
) -> pd.DataFrame:
    """Observed event counts (sum of ``count``) in ``cur_month`` per group of ``by`` against the
    count the reference months lead one to expect.

    ``events``: the normalised events table; columns of ``by`` it lacks (``county``, ``township``,
    ``unit_type`` …) are joined from ``units`` on ``unit_id``. ``ref_months``: 'YYYY-MM' labels.
    Expected = the group's mean monthly count over ``ref_months`` (months without events count as 0)
    × a seasonal factor for the calendar month of ``cur_month`` — the reference's count in that
    calendar month over its mean month, per category when ``category`` is in ``by``, else over all
    events — used only when ``seasonal`` and the reference spans ≥ 24 months with every calendar month.

    Returns one row per group seen in either period: the ``by`` columns, ``expected``,
    ``ref_mean`` (unadjusted), ``season_factor``, ``observed``, ``ratio`` (observed / expected, NaN
    when nothing was expected), ``p_high`` = P(X ≥ observed), ``p_low`` = P(X ≤ observed) for X
    with mean ``expected`` and variance ``dispersion``·``expected`` (:func:`count_tails`; the
    dispersion is pooled over the table's groups, :func:`dispersion`), and ``new`` (no event in the
    reference at all). Sorted by ``p`` = min of the two tails.
    """
    by = list(by)
    if not by:
        raise ValueError("volume_drift needs at least one grouping column")
    ev = events
    need = [c for c in by if c not in ev.columns]
    if need:
        if units is None or any(c not in units.columns for c in need):
            raise KeyError(f"events lack column(s) {', '.join(need)} and no units table provides them")
        ev = ev[["unit_id", "occurred_at", "count", *[c for c in by if c in ev.columns]]].merge(
            units[["unit_id", *need]], on="unit_id", how="left", validate="many_to_one"
        )
    ref = pd.PeriodIndex(list(ref_months), freq="M")
    if len(ref) == 0:
        raise ValueError("volume_drift needs at least one reference month")
    cur = pd.Period(cur_month, freq="M")
    month = _month_period(ev["occurred_at"])
    ref_m = ref.to_timestamp().to_numpy(dtype="datetime64[M]")
    cur_m = np.datetime64(cur.start_time, "M")
    count = ev["count"].to_numpy(dtype=np.float64, na_value=1.0) if "count" in ev else np.ones(len(ev))
    keys = ev[by].astype(str)
    in_ref = np.isin(month, ref_m)
    in_cur = month == cur_m

    month_i = month.astype(np.int64)[in_ref]
    per_month = (
        pd.Series(count[in_ref])
        .groupby([*(keys[c].to_numpy()[in_ref] for c in by), month_i])
        .sum()
        .unstack(fill_value=0.0)
        .reindex(columns=ref_m.astype(np.int64), fill_value=0.0)
    )
    ref_tot = per_month.sum(axis=1)
    cur_tot = pd.Series(count[in_cur]).groupby([keys[c].to_numpy()[in_cur] for c in by]).sum()
    ref_tot.index.names = by
    cur_tot.index.names = by
    table = pd.concat({"ref_total": ref_tot, "observed": cur_tot}, axis=1).fillna(0.0)
    table["ref_mean"] = table["ref_total"] / len(ref)

    factor = pd.Series(1.0, index=table.index)
    moy = ref_m.astype(np.int64) % 12
    if seasonal and len(ref) >= SEASONAL_MIN_MONTHS and len(np.unique(moy)) == 12:
        cal = cur.month - 1
        n_cal = int(np.sum(moy == cal))
        month_ref = month[in_ref].astype(np.int64) % 12
        level = "category" if "category" in by else None
        group = keys["category"].to_numpy()[in_ref] if level else np.zeros(in_ref.sum(), dtype=int)
        w = pd.DataFrame({"g": group, "cal": month_ref == cal, "n": count[in_ref]})
        tot = w.groupby("g")["n"].sum()
        in_cal = w[w["cal"]].groupby("g")["n"].sum().reindex(tot.index, fill_value=0.0)
        per_group = (in_cal / n_cal) / (tot / len(ref))
        # A group with fewer than one reference event a month gets no seasonal factor: it would be noise.
        per_group = per_group.where(tot >= SEASONAL_MIN_PER_MONTH * len(ref), 1.0).fillna(1.0)
        g_of_row = table.index.get_level_values("category") if level else np.zeros(len(table), dtype=int)
        factor = pd.Series(per_group.reindex(g_of_row).fillna(1.0).to_numpy(), index=table.index)
    table["season_factor"] = factor
    table["expected"] = table["ref_mean"] * table["season_factor"]
    table["dispersion"] = dispersion(per_month.reindex(table.index).fillna(0.0).to_numpy())
    obs, exp = table["observed"].to_numpy(), table["expected"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = np.where(exp > 0, obs / exp, np.nan)
    p_high, p_low = count_tails(obs, exp, float(table["dispersion"].iloc[0]) if len(table) else 1.0)
    table["p_high"] = np.where(exp > 0, p_high, np.where(obs > 0, 0.0, 1.0))
    table["p_low"] = np.where(exp > 0, p_low, 1.0)
    table["p"] = np.minimum(table["p_high"], table["p_low"])
    table["new"] = table["ref_total"] == 0
    out = table.reset_index()[
        [
            *by,
            "expected",
            "ref_mean",
            "season_factor",
            "observed",
            "ratio",
            "p_high",
            "p_low",
            "p",
            "dispersion",
            "new",
        ]
    ]
    return out.sort_values(["p", *by], kind="stable").reset_index(drop=True)


def dispersion(monthly: np.ndarray, min_mean: float = DISPERSION_MIN_MEAN) -> float:
    """Pooled variance-to-mean ratio of monthly counts (groups × months): the median over groups
    whose mean is at least ``min_mean`` of var/mean, at least 1 (Poisson). Monthly event counts of a
    township vary more than a Poisson count does (campaigns, weather, a busy mediator); a Poisson
    tail would call an ordinary month significant."""
    m = np.asarray(monthly, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 3:
        return 1.0
    mean = m.mean(axis=1)
    ok = mean >= min_mean
    if not ok.any():
        return 1.0
    return float(max(1.0, np.median(m[ok].var(axis=1, ddof=1) / mean[ok])))


def count_tails(observed: np.ndarray, expected: np.ndarray, phi: float) -> tuple[np.ndarray, np.ndarray]:
    """(P(X ≥ observed), P(X ≤ observed)) for X with mean ``expected`` and variance
    ``phi``·``expected``: Poisson when ``phi`` ≤ 1, else negative binomial with that mean and variance."""
    obs = np.asarray(observed, dtype=np.float64)
    mu = np.maximum(np.asarray(expected, dtype=np.float64), 1e-12)
    if phi <= 1.0 + 1e-9:
        return poisson.sf(obs - 1, mu), poisson.cdf(obs, mu)
    n, p = mu / (phi - 1.0), 1.0 / phi  # mean n(1-p)/p = mu, variance mu/p = phi·mu
    return nbinom.sf(obs - 1, n, p), nbinom.cdf(obs, n, p)


# ---------------------------------------------------------------- labels


def label_shift(ref_tiers: Sequence[int] | np.ndarray, cur_tiers: Sequence[int] | np.ndarray) -> dict:
    """Tier shares of the reference's outcome windows against those closed since (ints 0–3; negative
    = unknown and ignored). Returns ``{"n_ref", "n_cur", "ref": {tier: share}, "cur": {tier: share},
    "psi"}``; shares and PSI are None when a side has no known tier."""
    r = np.asarray(ref_tiers, dtype=np.int64)
    c = np.asarray(cur_tiers, dtype=np.int64)
    r, c = r[r >= 0], c[c >= 0]
    out: dict = {"n_ref": len(r), "n_cur": len(c), "ref": None, "cur": None, "psi": None}
    if len(r) and len(c):
        rs, cs = _shares(r, 4), _shares(c, 4)
        out.update(
            ref={t: float(rs[k]) for k, t in enumerate(TIERS)},
            cur={t: float(cs[k]) for k, t in enumerate(TIERS)},
            psi=_psi_of_shares(rs, cs),
        )
    return out


# ---------------------------------------------------------------- warnings


def stopped_categories(by_county_category: pd.DataFrame) -> pd.DataFrame:
    """Rows of a ``volume_drift(by=("county", "category"))`` table where a category with at least
    :data:`STOPPED_MIN_EXPECTED` expected events reports none."""
    t = by_county_category
    return t[(t["expected"] >= STOPPED_MIN_EXPECTED) & (t["observed"] == 0)]


def township_outliers(by_township: pd.DataFrame) -> pd.DataFrame:
    """Rows of a ``volume_drift(by=("township",))`` table whose volume is ≥ 1.8× (or ≤ 1/1.8 of) the
    expected with the matching tail (:func:`count_tails`) below 0.001."""
    t = by_township
    high = (t["ratio"] >= TOWNSHIP_RATIO) & (t["p_high"] < TOWNSHIP_P)
    low = (t["ratio"] <= 1 / TOWNSHIP_RATIO) & (t["p_low"] < TOWNSHIP_P)
    return t[(high | low) & ~t["new"]]


def drift_warnings(
    features: pd.DataFrame | None = None,
    by_county_category: pd.DataFrame | None = None,
    by_township: pd.DataFrame | None = None,
    labels: dict | None = None,
    *,
    categories: Mapping[str, str] | None = None,
    cur_month: str = "",
) -> list[str]:
    """One-line warnings in Chinese with an English gloss, most actionable first: reporting that
    stopped, townships far off their volume, new townships/counties, label shift, feature PSI > 0.25.

    Takes the outputs of :func:`feature_drift`, :func:`volume_drift` (by county × category and by
    township) and :func:`label_shift`; any may be None. ``categories``: canonical → Chinese names.
    """
    cats = dict(CATEGORIES_ZH, **(categories or {}))
    when = f"（{cur_month}）" if cur_month else ""
    out: list[str] = []
    if by_county_category is not None:
        for r in stopped_categories(by_county_category).itertuples(index=False):
            zh = cats.get(r.category, r.category)
            out.append(
                f"{r.county}: {zh} 本月{when}0起（训练期月均{r.expected:.1f}起）— "
                f"{r.category} stopped being reported?"
            )
        for county in sorted(set(by_county_category.loc[by_county_category["new"], "county"])):
            if (by_county_category.loc[by_county_category["county"] == county, "new"]).all():
                out.append(f"{county}: 训练期内无记录的新县区 — county not in the reference window")
    if by_township is not None:
        for r in township_outliers(by_township).itertuples(index=False):
            direction = "above" if r.ratio >= 1 else "below"
            out.append(
                f"乡镇{r.township}: 本月{when}事件量为训练期的{r.ratio:.1f}倍（本月{r.observed:.0f}起，预期"
                f"{r.expected:.1f}起）— event volume {r.ratio:.1f}× the expected, far {direction} "
                f"(p={min(r.p_high, r.p_low):.1g})"
            )
        for r in by_township[by_township["new"]].itertuples(index=False):
            out.append(
                f"乡镇{r.township}: 训练期内无事件记录，本月{r.observed:.0f}起 — new township, "
                "not in the reference window"
            )
    if labels and labels.get("psi") is not None and labels["psi"] > PSI_WARN:
        shift = "，".join(f"{TIER_ZH[t]} {labels['ref'][t]:.0%}→{labels['cur'][t]:.0%}" for t in TIERS)
        out.append(f"结果分布变化: {shift}（PSI={labels['psi']:.2f}）— outcome tier shares shifted")
    if features is not None:
        warn = features[features["level"] == "warn"]
        for r in warn.head(MAX_FEATURE_WARNINGS).itertuples(index=False):
            out.append(
                f"特征漂移: {r.label_zh} PSI={r.psi:.2f}（均值 {_num(r.mean_ref)}→{_num(r.mean_cur)}）"
                f"— feature {r.feature} drifted (PSI > {PSI_WARN})"
            )
        if len(warn) > MAX_FEATURE_WARNINGS:
            out.append(
                f"另有{len(warn) - MAX_FEATURE_WARNINGS}个特征 PSI > {PSI_WARN} — "
                f"{len(warn) - MAX_FEATURE_WARNINGS} more features drifted (see drift.md)"
            )
    return out


def _num(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3g}"
