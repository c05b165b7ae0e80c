"""A plain reference implementation of the feature frame and the labels: for each as-of date,
filter the event table with pandas by timestamps and sum per unit. Slow and obvious on purpose; the
fast array path in :mod:`features.build` must agree with it.

It shares only the registry (names and meanings) with the fast path, not its arithmetic: it works
on timestamps ("occurred before the first day of the next month", "resolved on or after …") where
the fast path works on month numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sanling.core.config import TierRules
from sanling.features.declaration import (
    LONG_WINDOW,
    MONTHS_SINCE_CAP,
    SHORT_WINDOW,
    YEAR_WINDOW,
    Feature,
)
from sanling.features.season import SPRING_FESTIVAL

_PER_CAPITA = ("population", "employees")


def _month_start(label: str, plus: int = 0) -> pd.Timestamp:
    return (pd.Period(label, "M") + plus).start_time


def _months_between(later: pd.Series, t: pd.Period) -> pd.Series:
    """Whole months from each timestamp's month to month t."""
    return (t.year * 12 + t.month - (later.dt.year * 12 + later.dt.month)).astype("float64")


def _per_unit(
    values: pd.Series, unit: pd.Series, ids: pd.Index, how: str = "sum", fill: float = 0.0
) -> np.ndarray:
    if len(values) == 0:
        return np.full(len(ids), fill)
    g = values.groupby(unit.to_numpy())
    agg = getattr(g, how)()
    return agg.reindex(ids).fillna(fill).to_numpy(dtype=np.float64)


class _AsOf:
    """The events known at the end of as-of month t, with helpers for a window of months."""

    def __init__(self, events: pd.DataFrame, units: pd.DataFrame, label: str):
        self.t = pd.Period(label, "M")
        self.end = _month_start(label, 1)  # first instant after the as-of month
        self.ids = pd.Index(units["unit_id"])
        self.known = events[events["occurred_at"] < self.end]
        # Open at the end of t: not resolved, or resolved from the first day of t+1 on.
        self.bases: dict[str, np.ndarray] = {}
        self.open = self.known[self.known["resolved_at"].isna() | (self.known["resolved_at"] >= self.end)]

    def recent(self, window: int, category: str | None, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        frame = self.known if frame is None else frame
        start = _month_start(str(self.t), -window + 1)
        sel = frame[frame["occurred_at"] >= start]
        return sel if category is None else sel[sel["category"] == category]

    def cat(self, category: str | None, frame: pd.DataFrame | None = None) -> pd.DataFrame:
        frame = self.known if frame is None else frame
        return frame if category is None else frame[frame["category"] == category]

    def total(self, frame: pd.DataFrame, variant: str = "count") -> np.ndarray:
        weights = {
            "count": frame["count"],
            "escalated": frame["count"] * frame["escalated"],
            "casualties": frame["casualties"],
            "severe": frame["count"] * (frame["severity"].fillna(0) >= 3),
        }[variant]
        return _per_unit(weights.astype("float64"), frame["unit_id"], self.ids)


def _base(a: _AsOf, base: str) -> np.ndarray:
    if base not in a.bases:
        if base == "unresolved_backlog_total":
            a.bases[base] = a.total(a.open)
        else:
            stem, window = base.rsplit("_count_", 1)
            a.bases[base] = a.total(a.recent(int(window.rstrip("m")), None if stem == "events" else stem))
    return a.bases[base]


def _months_to_festival(m: pd.Period) -> float:
    mid = m.start_time + pd.Timedelta(days=14)
    best = None
    for y in (m.year - 1, m.year, m.year + 1):
        fest = pd.Timestamp(SPRING_FESTIVAL.get(y, f"{y}-02-05"))
        d = (fest - mid).days / (365.2425 / 12)
        if best is None or abs(d) < abs(best):
            best = d
    return best


def _reference_value(f: Feature, a: _AsOf, units: pd.DataFrame, horizon: int, knn_k: int) -> np.ndarray:
    n = len(units)
    c = f.category
    if f.kind in ("rate_all", "tier_share", "tier_months"):
        months = pd.period_range(a.first, a.t, freq="M")
        if f.kind == "rate_all":
            return a.total(a.cat(c)) / len(months)
        level = {"yellow": 1, "orange": 2, "red": 3}[f.variant]
        if f.kind == "tier_months":
            months = months[-f.window :]
        hits = sum((a.month_tier(m) >= level).astype(float) for m in months)
        return hits / (len(pd.period_range(a.first, a.t, freq="M")) if f.kind == "tier_share" else 1)
    if f.kind == "window":
        return a.total(a.recent(f.window, c), f.variant)
    if f.kind == "decay":
        sel = a.cat(c)
        age = _months_between(sel["occurred_at"], a.t)
        return _per_unit(sel["count"] * 2.0 ** (-age / f.half_life), sel["unit_id"], a.ids)
    if f.kind in ("months_since", "recency_decay"):
        sel = a.cat(c)
        age = _months_between(sel["occurred_at"], a.t)
        since = _per_unit(age, sel["unit_id"], a.ids, how="min", fill=np.nan)
        if f.kind == "months_since":
            return np.where(np.isnan(since), MONTHS_SINCE_CAP, np.minimum(since, MONTHS_SINCE_CAP))
        return np.where(np.isnan(since), 0.0, 2.0 ** (-since / f.half_life))
    if f.kind == "max_severity":
        sel = a.recent(f.window, c)
        return _per_unit(sel["severity"].astype("float64").fillna(0), sel["unit_id"], a.ids, how="max")
    if f.kind == "backlog":
        return a.total(a.cat(c, a.open))
    if f.kind == "backlog_age":
        sel = a.cat(c, a.open)
        age = _months_between(sel["occurred_at"], a.t) + 1
        return _per_unit(age, sel["unit_id"], a.ids, how="max")
    n12 = a.total(a.recent(YEAR_WINDOW, c))
    if f.kind == "escalation_ratio":
        return a.total(a.recent(YEAR_WINDOW, c), "escalated") / (n12 + 1.0)
    if f.kind == "resolution_rate":
        still_open = a.total(a.recent(YEAR_WINDOW, c, a.open))
        return (n12 - still_open + 1.0) / (n12 + 1.0)
    if f.kind == "trend_ratio":
        return (a.total(a.recent(SHORT_WINDOW, c)) + 1.0) / (n12 * SHORT_WINDOW / YEAR_WINDOW + 1.0)
    if f.kind == "yoy_change":
        before = a.total(a.recent(2 * YEAR_WINDOW, c)) - n12
        return n12 - before
    if f.kind == "quiet":
        return (a.total(a.recent(LONG_WINDOW, c)) == 0).astype(float)
    nxt = a.t + 1
    if f.kind == "season_month":
        return np.full(n, float(nxt.month))
    if f.kind == "season_sin":
        return np.full(n, np.sin(2 * np.pi * (nxt.month - 1) / 12))
    if f.kind == "season_cos":
        return np.full(n, np.cos(2 * np.pi * (nxt.month - 1) / 12))
    if f.kind == "spring_festival_months":
        return np.full(n, _months_to_festival(nxt))
    if f.kind == "spring_festival_in_window":
        window = {(a.t + k).strftime("%Y-%m") for k in range(1, horizon + 1)}
        hit = any(
            pd.Timestamp(SPRING_FESTIVAL.get(y, f"{y}-02-05")).strftime("%Y-%m") in window
            for y in range(nxt.year - 1, nxt.year + 3)
        )
        return np.full(n, float(hit))
    if f.kind == "per_capita":
        denom = np.full(n, np.nan)
        for col in _PER_CAPITA:
            if col in units:
                denom = np.where(np.isnan(denom), units[col].to_numpy(float), denom)
        out = _base(a, f.base) * 1000.0 / denom
        return np.where(denom > 0, out, np.nan)
    if f.kind in ("peer_township", "peer_county"):
        x = _base(a, f.base)
        town, county, kind = (units[c].to_numpy(dtype=object) for c in ("township", "county", "unit_type"))
        out = np.full(n, np.nan)
        for i in range(n):
            same = (county == county[i]) & (town == town[i] if f.kind == "peer_township" else kind == kind[i])
            others = same & (np.arange(n) != i)
            if others.any():
                out[i] = x[others].mean()
        return out
    if f.kind == "peer_knn":
        x = _base(a, f.base)
        lat = units["lat"].to_numpy(float)
        lon = units["lon"].to_numpy(float)
        ok = ~(np.isnan(lat) | np.isnan(lon))
        scale = np.cos(np.radians(lat[ok].mean()))
        out = np.full(n, np.nan)
        for i in np.flatnonzero(ok):
            d2 = ((lon - lon[i]) * scale) ** 2 + (lat - lat[i]) ** 2
            d2[~ok] = np.inf
            d2[i] = np.inf
            nearest = np.argsort(d2, kind="stable")[: min(knn_k, ok.sum() - 1)]
            out[i] = x[nearest].mean()
        return out
    if f.kind == "static":
        return units[f.name].to_numpy(float)
    raise AssertionError(f"reference has no definition for kind {f.kind}")


def reference_features(
    units: pd.DataFrame,
    events: pd.DataFrame,
    registry: Sequence[Feature],
    as_of: Sequence[str],
    *,
    horizon_months: int,
    knn_k: int,
    first_month: str | None = None,
    tier_rules: TierRules | None = None,
) -> pd.DataFrame:
    """Numeric features per (as_of, unit), as-of major, as float32 — the values of the fast frame's
    numeric columns (float32 or int16 there).

    ``first_month``: the panel's first month (default: the first event's month); ``tier_rules``: the
    rules the monthly tier history is judged by (default: the contract's)."""
    numeric = [f for f in registry if f.dtype != "category"]
    first = pd.Period(first_month or events["occurred_at"].min(), "M")
    rules = tier_rules or TierRules()
    categories = list(dict.fromkeys(f.category for f in registry if f.category))
    memo: dict[pd.Period, np.ndarray] = {}

    def month_tier(m: pd.Period) -> np.ndarray:
        """The tier unit's own month m met: the outcome window of as-of m-1, horizon 1."""
        if m not in memo:
            memo[m] = reference_tiers(reference_outcomes(units, events, categories, str(m - 1), 1), rules)
        return memo[m]

    blocks = []
    for label in as_of:
        a = _AsOf(events, units, label)
        a.first, a.month_tier = first, month_tier
        block = {
            f.name: _reference_value(f, a, units, horizon_months, knn_k).astype(np.float32) for f in numeric
        }
        block = pd.DataFrame(block)
        block.insert(0, "as_of", label)
        block.insert(0, "unit_id", units["unit_id"].to_numpy())
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def reference_outcomes(
    units: pd.DataFrame, events: pd.DataFrame, categories: Sequence[str], label: str, horizon_months: int
) -> pd.DataFrame:
    """Per unit, the rule names' totals over the outcome window of as-of ``label``."""
    ids = pd.Index(units["unit_id"])
    start, stop = _month_start(label, 1), _month_start(label, 1 + horizon_months)
    win = events[(events["occurred_at"] >= start) & (events["occurred_at"] < stop)]
    still_open = win[win["resolved_at"].isna() | (win["resolved_at"] >= stop)]
    out = {}
    for c in categories:
        w = win[win["category"] == c]
        out[c] = _per_unit(w["count"].astype(float), w["unit_id"], ids)
        out[f"{c}_escalated"] = _per_unit((w["count"] * w["escalated"]).astype(float), w["unit_id"], ids)
        o = still_open[still_open["category"] == c]
        out[f"{c}_unresolved"] = _per_unit(o["count"].astype(float), o["unit_id"], ids)
    out["casualties"] = _per_unit(win["casualties"].astype(float), win["unit_id"], ids)
    out["events"] = _per_unit(win["count"].astype(float), win["unit_id"], ids)
    return pd.DataFrame(out, index=ids)


def reference_tiers(outcomes: pd.DataFrame, rules: TierRules) -> np.ndarray:
    """Tier per unit by evaluating each rule as Python over one unit's totals (test oracle only)."""
    tiers = []
    for _, row in outcomes.iterrows():
        values = row.to_dict()
        tier = 0
        for name, level in (("red", 3), ("orange", 2), ("yellow", 1)):
            if eval(getattr(rules, name), {"__builtins__": {}}, values):
                tier = level
                break
        tiers.append(tier)
    return np.array(tiers, dtype=np.int8)
