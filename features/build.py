"""The point-in-time feature frame: one row per (unit, as-of month), features computed only from
what was known at the end of the as-of month, plus the tier of the following outcome window.

Training, the backtest, batch scoring and ``POST /v1/score`` all call :func:`build_frame`; serving
passes one as-of month and a few ``unit_ids`` and gets the same numbers the model was trained on.

Each numeric feature is computed by the kernel its registry entry names (``Feature.kind``) as an
(as-of × rows) array and written straight into one of two preallocated Fortran-ordered matrices —
float32, and int16 for the whole-number features (``Feature.dtype``; a value outside int16 sends its
feature to a float32 column instead) — which become the frame's two numeric blocks without a copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa

from sanling.core.config import FeatureParams, TierRules
from sanling.core.errors import DataError
from sanling.core.months import month_label
from sanling.features.columns import category_column, string_column
from sanling.features.declaration import (
    HISTORY_LEVELS,
    LONG_WINDOW,
    MONTHS_SINCE_CAP,
    PER_CAPITA_COLUMNS,
    SHORT_WINDOW,
    YEAR_WINDOW,
    Feature,
)
from sanling.features.frame_blocks import (
    fill_blocks,
    month_array_keys,
    numeric_blocks,
    numeric_frame,
    release_month_arrays,
)
from sanling.features.grid import as_of_offsets
from sanling.features.labels import LABEL, OUTCOME_PREFIX, label_columns, monthly_tiers, validate_tier_rules
from sanling.features.late import late_view
from sanling.features.panel import Panel
from sanling.features.peers import group_codes, knn_mean, knn_neighbours, mean_excluding_self
from sanling.features.registry import feature_registry
from sanling.features.season import months_to_spring_festival, spring_festival_in_window

META_COLUMNS: tuple[str, ...] = ("unit_id", "as_of", "unit_type", "township", "county")
LABEL_COLUMN = LABEL
_NOT_FEATURES = frozenset({"unit_id", "as_of", "township", "county", LABEL_COLUMN})


def registry_for(panel: Panel, params: FeatureParams) -> list[Feature]:
    """The registry of a panel's taxonomy and registry attributes."""
    return _cached(
        panel,
        ("registry", params.model_dump_json()),
        lambda: feature_registry(panel.categories, params, panel.static_columns),
    )


def _cached(panel: Panel, key: tuple, make: Callable[[], object]):
    """Per-panel memo of unit-level arrays, so a one-unit request does not redo them."""
    if key not in panel._cache:
        panel._cache[key] = make()
    return panel._cache[key]


def feature_names(frame_or_registry: pd.DataFrame | Sequence[Feature]) -> list[str]:
    """The model's input columns in their stable (registry) order, from a frame or a registry."""
    if isinstance(frame_or_registry, pd.DataFrame):
        return [
            c
            for c in frame_or_registry.columns
            if c not in _NOT_FEATURES and not c.startswith(OUTCOME_PREFIX)
        ]
    return [f.name for f in frame_or_registry]


class _Context:
    """What the kernels share for one call: the as-of offsets, the rows asked for, and caches of
    intermediate (as-of × units) arrays (for the rows, and for all units where peers need them)."""

    def __init__(
        self,
        panel: Panel,
        t: np.ndarray,
        rows: np.ndarray | None,
        horizon: int,
        params: FeatureParams,
        tier_rules: TierRules,
    ):
        self.panel, self.t, self.rows, self.horizon, self.params = panel, t, rows, horizon, params
        self.tier_rules = tier_rules
        self.cat_index = {c: i for i, c in enumerate(panel.categories)}
        self.cache: dict[tuple, np.ndarray] = {}
        self.category: str | None = None  # of the feature computed last
        # What the final record holds that the records at each as-of month did not (features/late.py).
        self.late = late_view(panel, t, rows)

    def take(self, arr: np.ndarray, months: np.ndarray, all_units: bool = False) -> np.ndarray:
        """arr (months, U)[months, rows] → (n_as_of, rows)."""
        if self.rows is None or all_units:
            return arr[months]
        return arr[months[:, None], self.rows[None, :]]


def _cats(ctx: _Context, f: Feature) -> list[int]:
    return list(range(len(ctx.cat_index))) if f.category is None else [ctx.cat_index[f.category]]


def window_total(
    ctx: _Context, variant: str, category: str | None, window: int, all_units: bool = False
) -> np.ndarray:
    """Σ of a channel over months t-window+1 … t (history before the panel counts as zero);
    int32 (int64 for a panel whose totals would not fit)."""
    # Every unit is asked for anyway: the peers' totals are the rows' totals (one cache entry).
    all_units = all_units and ctx.rows is not None
    key = ("window", variant, category, window, all_units)
    # Only totals that several features reuse are kept (memory: each is as-of × units).
    keep = all_units or (variant == "count" and window in (SHORT_WINDOW, YEAR_WINDOW, 2 * YEAR_WINDOW))
    if key not in ctx.cache:
        p, t = ctx.panel, ctx.t
        dtype = p.total_dtype
        cis = range(len(ctx.cat_index)) if category is None else [ctx.cat_index[category]]
        total = None
        for ci in cis:
            cum = p.channel(variant, ci)
            part = ctx.take(cum, t + 1, all_units).astype(dtype, copy=False) - ctx.take(
                cum, np.maximum(t + 1 - window, 0), all_units
            )
            total = part if total is None else total + part
        if ctx.late is not None:
            ci = None if category is None else ctx.cat_index[category]
            ctx.late.add_window(total, variant, ci, window, all_units)
        if not keep:
            return total
        ctx.cache[key] = total
    return ctx.cache[key]


def backlog(ctx: _Context, category: str | None, all_units: bool = False) -> np.ndarray:
    """Events of the category (``None``: all) open at the end of each as-of month."""
    cis = range(len(ctx.cat_index)) if category is None else [ctx.cat_index[category]]
    dtype = ctx.panel.total_dtype
    total = None
    for ci in cis:
        part = ctx.take(ctx.panel.backlog[ci], ctx.t, all_units).astype(dtype)
        total = part if total is None else total + part
    if ctx.late is not None:
        ctx.late.add_open(total, None if category is None else ctx.cat_index[category], None, all_units)
    return total


def _k_window(ctx: _Context, f: Feature) -> np.ndarray:
    return window_total(ctx, f.variant, f.category, f.window)


def _k_decay(ctx: _Context, f: Feature) -> np.ndarray:
    ci = ctx.cat_index[f.category]
    values = ctx.take(ctx.panel.decayed(f.half_life)[ci], ctx.t)
    if ctx.late is not None:
        ctx.late.fix_decayed(values, ci, f.half_life)
    return values


def _last(ctx: _Context, f: Feature) -> np.ndarray:
    ci = ctx.cat_index[f.category]
    last = ctx.take(ctx.panel.last_event[ci], ctx.t).astype(np.int64)
    if ctx.late is not None:
        ctx.late.fix_last_event(last, ci)
    return last


def _k_months_since(ctx: _Context, f: Feature) -> np.ndarray:
    last = _last(ctx, f)
    since = ctx.t[:, None] - last
    return np.where(last < 0, MONTHS_SINCE_CAP, np.minimum(since, MONTHS_SINCE_CAP))


def _k_recency_decay(ctx: _Context, f: Feature) -> np.ndarray:
    last = _last(ctx, f)
    return np.where(last < 0, 0.0, np.exp2(-(ctx.t[:, None] - last) / f.half_life))


def _k_max_severity(ctx: _Context, f: Feature) -> np.ndarray:
    ci = ctx.cat_index[f.category]
    sev = ctx.panel.max_severity[ci]
    out = None
    for lag in range(f.window):
        m = ctx.t - lag
        part = ctx.take(sev, np.maximum(m, 0)).astype(np.int64)
        part[m < 0] = 0
        out = part if out is None else np.maximum(out, part)
    if ctx.late is not None:
        ctx.late.fix_max_severity(out, ci, f.window)
    return out


def _k_backlog(ctx: _Context, f: Feature) -> np.ndarray:
    if f.category is None:  # the peers' base too: kept for them
        return _base_values(ctx, "unresolved_backlog_total", False)
    return backlog(ctx, f.category)


def _k_backlog_age(ctx: _Context, f: Feature) -> np.ndarray:
    ci = ctx.cat_index[f.category]
    oldest = ctx.take(ctx.panel.oldest_open[ci], ctx.t).astype(np.int64)
    if ctx.late is not None:
        ctx.late.fix_oldest_open(oldest, ci)
    return np.where(oldest >= 0, ctx.t[:, None] - oldest + 1, 0)


def _k_escalation_ratio(ctx: _Context, f: Feature) -> np.ndarray:
    n = window_total(ctx, "count", f.category, YEAR_WINDOW)
    return window_total(ctx, "escalated", f.category, YEAR_WINDOW) / (n + 1.0)


def _k_resolution_rate(ctx: _Context, f: Feature) -> np.ndarray:
    n = window_total(ctx, "count", f.category, YEAR_WINDOW)
    ci = ctx.cat_index[f.category]
    still_open = ctx.take(ctx.panel.open_within(YEAR_WINDOW)[ci], ctx.t).astype(np.int64)
    if ctx.late is not None:
        ctx.late.add_open(still_open, ci, YEAR_WINDOW, False)
    return (n - still_open + 1.0) / (n + 1.0)


def _k_trend_ratio(ctx: _Context, f: Feature) -> np.ndarray:
    short = window_total(ctx, "count", f.category, SHORT_WINDOW)
    year = window_total(ctx, "count", f.category, YEAR_WINDOW)
    return (short + 1.0) / (year * (SHORT_WINDOW / YEAR_WINDOW) + 1.0)


def _k_yoy_change(ctx: _Context, f: Feature) -> np.ndarray:
    year = window_total(ctx, "count", f.category, YEAR_WINDOW)
    return 2 * year - window_total(ctx, "count", f.category, 2 * YEAR_WINDOW)


def _k_quiet(ctx: _Context, f: Feature) -> np.ndarray:
    return (window_total(ctx, "count", f.category, LONG_WINDOW) == 0).astype(np.float64)


def _forecast_month(ctx: _Context) -> np.ndarray:
    return ctx.panel.first_month + ctx.t + 1


def _season(values: Callable[[np.ndarray], np.ndarray]) -> Callable[[_Context, Feature], np.ndarray]:
    def kernel(ctx: _Context, f: Feature) -> np.ndarray:
        return values(_forecast_month(ctx))[:, None]

    return kernel


def _k_spring_in_window(ctx: _Context, f: Feature) -> np.ndarray:
    return spring_festival_in_window(_forecast_month(ctx), ctx.horizon)[:, None]


def _base_values(ctx: _Context, base: str, all_units: bool) -> np.ndarray:
    """The (as-of × units) values of a peer/per-capita base indicator."""
    if base == "unresolved_backlog_total":
        key = ("backlog_total", all_units and ctx.rows is not None)
        if key not in ctx.cache:
            ctx.cache[key] = backlog(ctx, None, all_units)
        return ctx.cache[key]
    stem, window = base.rsplit("_count_", 1)
    category = None if stem == "events" else stem
    return window_total(ctx, "count", category, int(window.rstrip("m")), all_units)


def _k_per_capita(ctx: _Context, f: Feature) -> np.ndarray:
    denom = _cached(ctx.panel, ("denominator",), lambda: per_capita_denominator(ctx.panel.units))
    if ctx.rows is not None:
        denom = denom[ctx.rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, _base_values(ctx, f.base, False) * 1000.0 / denom, np.nan)


def per_capita_denominator(units: pd.DataFrame) -> np.ndarray:
    """Population of each unit, else its employees; NaN when neither is known."""
    denom = np.full(len(units), np.nan)
    for col in PER_CAPITA_COLUMNS:
        if col in units.columns and pd.api.types.is_numeric_dtype(units[col]):
            values = units[col].to_numpy(dtype=np.float64, na_value=np.nan)
            denom = np.where(np.isnan(denom), values, denom)
    return denom


def _peer_groups(ctx: _Context, scope: str) -> np.ndarray:
    key = ("groups", scope)
    cache = ctx.panel._cache
    if key not in cache:
        u = ctx.panel.units
        # A township is (county, township): names such as 城关镇 repeat across counties (CONTRACT §1).
        cache[key] = (
            group_codes(u["county"], u["township"])
            if scope == "township"
            else group_codes(u["county"], u["unit_type"])
        )
    return cache[key]


def _k_peer_group(scope: str) -> Callable[[_Context, Feature], np.ndarray]:
    def kernel(ctx: _Context, f: Feature) -> np.ndarray:
        values = _base_values(ctx, f.base, True)
        out = mean_excluding_self(values, _peer_groups(ctx, scope))
        return out if ctx.rows is None else out[:, ctx.rows]

    return kernel


def use_neighbours(panel: Panel, params: FeatureParams, neighbours: np.ndarray) -> None:
    """Fix ``panel``'s k nearest neighbours ((U, k) positions in the panel, -1 rows for none) instead
    of finding them among its own units: a panel that holds part of a registry takes them from the
    whole one (pipeline/distributed), as the projection depends on every unit's latitude."""
    panel._cache[("knn", params.knn_k)] = neighbours


def _k_peer_knn(ctx: _Context, f: Feature) -> np.ndarray:
    key = ("knn", ctx.params.knn_k)
    cache = ctx.panel._cache
    if key not in cache:
        u = ctx.panel.units
        lat = u["lat"].to_numpy(np.float64, na_value=np.nan) if "lat" in u else np.full(len(u), np.nan)
        lon = u["lon"].to_numpy(np.float64, na_value=np.nan) if "lon" in u else np.full(len(u), np.nan)
        cache[key] = knn_neighbours(lat, lon, ctx.params.knn_k)
    rows = slice(None) if ctx.rows is None else ctx.rows
    return knn_mean(_base_values(ctx, f.base, True), cache[key], rows)


def _k_static(ctx: _Context, f: Feature) -> np.ndarray:
    if f.name in ctx.panel.dated:  # an attribute with a history: its value valid at each as-of month
        return ctx.take(ctx.panel.dated[f.name], ctx.t)
    values = _cached(
        ctx.panel,
        ("static", f.name),
        lambda: ctx.panel.units[f.name].to_numpy(dtype=np.float64, na_value=np.nan),
    )
    return (values if ctx.rows is None else values[ctx.rows])[None, :]


def _k_rate_all(ctx: _Context, f: Feature) -> np.ndarray:
    """Events per month since the panel's first month (months observed = t + 1)."""
    total = None
    for ci in _cats(ctx, f):
        part = ctx.take(ctx.panel.channel("count", ci), ctx.t + 1).astype(np.int64)
        total = part if total is None else total + part
    if ctx.late is not None:
        ctx.late.add_window(
            total, "count", None if f.category is None else ctx.cat_index[f.category], None, False
        )
    return total / (ctx.t[:, None] + 1.0)


def _tier_months(ctx: _Context, f: Feature, window: int | None) -> np.ndarray:
    """(as-of × rows) int64: months t-window+1 … t (every month ≤ t for ``None``) whose own tier
    reached the feature's level."""
    level = dict((n, lv) for n, lv, _ in HISTORY_LEVELS)[f.variant]
    key = ("tier_cum", ctx.tier_rules.model_dump_json(), level)

    def make() -> np.ndarray:
        hit = (monthly_tiers(ctx.panel, ctx.tier_rules) >= level).astype(np.int32)
        return np.vstack([np.zeros((1, hit.shape[1]), np.int32), np.cumsum(hit, axis=0, dtype=np.int32)])

    cum = _cached(ctx.panel, key, make)
    months = ctx.take(cum, ctx.t + 1).astype(np.int64)
    if window is not None:
        months -= ctx.take(cum, np.maximum(ctx.t + 1 - window, 0))
    if ctx.late is not None:
        ctx.late.add_tier_months(months, level, window, ctx.tier_rules)
    return months


def _k_tier_share(ctx: _Context, f: Feature) -> np.ndarray:
    return _tier_months(ctx, f, None) / (ctx.t[:, None] + 1.0)


def _k_tier_months(ctx: _Context, f: Feature) -> np.ndarray:
    return _tier_months(ctx, f, f.window)


KERNELS: dict[str, Callable[[_Context, Feature], np.ndarray]] = {
    "rate_all": _k_rate_all,
    "tier_share": _k_tier_share,
    "tier_months": _k_tier_months,
    "window": _k_window,
    "decay": _k_decay,
    "months_since": _k_months_since,
    "recency_decay": _k_recency_decay,
    "max_severity": _k_max_severity,
    "backlog": _k_backlog,
    "backlog_age": _k_backlog_age,
    "escalation_ratio": _k_escalation_ratio,
    "resolution_rate": _k_resolution_rate,
    "trend_ratio": _k_trend_ratio,
    "yoy_change": _k_yoy_change,
    "quiet": _k_quiet,
    "season_month": _season(lambda m: (m % 12 + 1).astype(np.float64)),
    "season_sin": _season(lambda m: np.sin(2 * np.pi * (m % 12) / 12)),
    "season_cos": _season(lambda m: np.cos(2 * np.pi * (m % 12) / 12)),
    "spring_festival_months": _season(months_to_spring_festival),
    "spring_festival_in_window": _k_spring_in_window,
    "per_capita": _k_per_capita,
    "peer_township": _k_peer_group("township"),
    "peer_county": _k_peer_group("county"),
    "peer_knn": _k_peer_knn,
    "static": _k_static,
}


def _compute(ctx: _Context, f: Feature) -> np.ndarray:
    if f.category != ctx.category and ctx.category is not None:
        # The 3- and 24-month totals serve the category's own ratios only (peers and per-capita
        # rates read the 12-month ones): let them go (recomputed if asked for again).
        for window in (SHORT_WINDOW, 2 * YEAR_WINDOW):
            ctx.cache.pop(("window", "count", ctx.category, window, False), None)
    ctx.category = f.category
    return KERNELS[f.kind](ctx, f)


def _row_index(panel: Panel, unit_ids: Sequence[str] | None) -> np.ndarray | None:
    if unit_ids is None:
        return None
    index = _cached(panel, ("unit_index",), lambda: pd.Index(panel.units["unit_id"].to_numpy(dtype=object)))
    idx = index.get_indexer(pd.Index(list(unit_ids), dtype=object))
    if (idx < 0).any():
        missing = [u for u, i in zip(unit_ids, idx, strict=True) if i < 0]
        raise DataError(
            f"unknown unit_id(s): {', '.join(map(str, missing[:5]))}" + (" …" if len(missing) > 5 else "")
        )
    return idx.astype(np.int64)


def build_frame(
    panel: Panel,
    as_of: Sequence[str],
    *,
    tier_rules: TierRules,
    horizon_months: int,
    params: FeatureParams,
    unit_ids: Sequence[str] | None = None,
    with_labels: bool = True,
) -> pd.DataFrame:
    """The feature frame of ``as_of`` months (``'YYYY-MM'``) for every unit (or only ``unit_ids``).

    Rows: as-of major, units in registry order. Columns: ``unit_id, as_of`` (str), ``unit_type``
    (category — also a feature), ``township, county`` (str), the features in registry order
    (``Feature.dtype``: float32, int16 — float32 in a frame where a value does not fit — and
    registry strings as sorted categories), then ``tier`` (Int8 0–3, <NA> when the outcome
    window is not entirely in the data) and the window totals the rules name (``next:<outcome>``) if
    ``with_labels``. Peer features always use all units.
    Raises :class:`DataError` for as-of months outside the data or unknown unit ids, and
    :class:`ConfigError` for invalid tier rules.
    """
    t = as_of_offsets(panel, as_of)
    rows = _row_index(panel, unit_ids)
    registry = registry_for(panel, params)
    if with_labels:
        validate_tier_rules(tier_rules, list(panel.categories))
    # Features of the final record, corrected where the records at an as-of month still lacked
    # something (a late report, a later escalation or correction): see features/late.py.
    ctx = _Context(panel, t, rows, horizon_months, params, tier_rules)
    n_rows_u = panel.n_units if rows is None else len(rows)
    n = len(t) * n_rows_u

    numeric = [f for f in registry if f.dtype != "category"]
    blocks = numeric_blocks(numeric, n)
    # A frame of many months for every unit (training, backtests) lets the panel's month arrays go
    # once read; a request for one month or a few units keeps them for the next one.
    kept, many = set(month_array_keys(panel._cache)), rows is None and len(t) > 1
    between = partial(release_month_arrays, panel._cache, kept, ctx.late) if many else None
    overflow = fill_blocks(blocks, numeric, partial(_compute, ctx), len(t), n_rows_u, between)
    del between, ctx  # its caches and the late correction are not needed by the columns and labels below
    frame = numeric_frame(blocks, numeric, overflow)
    del blocks, overflow

    unit_take = np.tile(np.arange(panel.n_units) if rows is None else rows, len(t))
    month_take = np.repeat(t, n_rows_u)
    labels = pa.array([month_label(panel.first_month + int(x)) for x in t], type=pa.large_string())
    frame.insert(0, "unit_id", string_column(panel, "unit_id", unit_take))
    frame.insert(
        1, "as_of", pd.Series(labels.take(pa.array(np.repeat(np.arange(len(t)), n_rows_u))), dtype="str")
    )
    frame.insert(2, "unit_type", category_column(panel, "unit_type", unit_take))
    frame.insert(3, "township", string_column(panel, "township", unit_take))
    frame.insert(4, "county", string_column(panel, "county", unit_take))
    position = {f.name: i for i, f in enumerate(registry)}
    for f in registry:
        if f.dtype == "category" and f.name != "unit_type":
            loc = list(frame.columns).index(registry[position[f.name] - 1].name) + 1
            frame.insert(loc, f.name, category_column(panel, f.name, unit_take, month_take))

    if with_labels:
        labels = label_columns(panel, as_of, horizon_months, tier_rules, rows)
        tier = labels.pop(LABEL_COLUMN)
        frame[LABEL_COLUMN] = pd.arrays.IntegerArray(tier, tier < 0).astype("Int8")
        for name, values in labels.items():
            frame[name] = values
    return frame
