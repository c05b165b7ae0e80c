"""Events → a units × months panel of arrays, in one pass.

Every event lands in its (category, month, unit) cell with ``np.bincount`` on a flat index. Window
counts are then differences of cumulative sums along months; the open backlog is a cumulative sum of
+count at the occurrence month and −count at the resolution month. Month granularity is exact for
every definition here: "open at the end of month m" ⇔ resolved_at empty or in a later month.

Arrays are laid out ``(channel or category, month, unit)`` so that the rows of one as-of month are
contiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.core.months import datetimes_to_month_numbers, month_label, month_number
from sanling.features.known import (
    NEVER,
    EventArrays,
    Knowledge,
    dated_attributes,
    dated_text_attributes,
    knowledge_of,
)
from sanling.features.registry import NON_FEATURE_UNIT_COLUMNS

# Channels of ``Panel.cum`` (per category): the sums whose window totals are cumsum differences.
CHANNELS: tuple[str, ...] = ("count", "escalated", "casualties", "severe")
SEVERE_AT = 3
# String attribute columns with more distinct values than this share of units identify units
# (codes, names) and are not features.
IDENTIFYING_SHARE = 0.5


@dataclass(frozen=True, eq=False)
class Panel:
    """The units × months arrays of one data set.

    ``units``: the registry in panel order (row i is unit i); ``first_month``: month number of offset 0;
    ``cum``: (4·C, M+1, U) int32 cumulative sums of :data:`CHANNELS` per category (row 0 is zero);
    ``monthly``: (C, M, U) int32 counts per month; ``backlog``: (C, M, U) int32 open at each month's end;
    ``oldest_open``: (C, M, U) int16 offset of the oldest open event's month, -1 if none;
    ``max_severity``: (C, M, U) int8; ``last_event``: (C, M, U) int16 offset of the latest event up
    to each month, -1 if none; ``ev_*``: the events as flat arrays (unit index, category index,
    occurrence offset, resolution offset or :data:`NEVER`, count, escalated, casualties) for the
    horizon-dependent quantities. ``static_columns``: attribute → 'numeric' | 'category'.
    ``knowledge``: when the records learnt what (``None`` when nothing was recorded late), and
    ``dated``: attribute → (M, U) float32 values valid at each month's end (attributes with a
    ``unit_history``; a text attribute's values are codes into ``dated_categories[attribute]``, NaN
    for none); see :mod:`sanling.features.known`. The arrays above hold the final record.
    """

    units: pd.DataFrame
    categories: dict[str, str]
    first_month: int
    n_months: int
    cum: np.ndarray
    monthly: np.ndarray
    ev_unit: np.ndarray
    ev_cat: np.ndarray
    ev_occ: np.ndarray
    ev_res: np.ndarray
    ev_count: np.ndarray
    ev_escalated: np.ndarray
    ev_casualties: np.ndarray
    ev_severity: np.ndarray
    static_columns: dict[str, str]
    knowledge: Knowledge | None = None
    dated: dict[str, np.ndarray] = field(default_factory=dict)
    dated_categories: dict[str, list[str]] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def last_month(self) -> str:
        """The data's last month, ``'YYYY-MM'``."""
        return month_label(self.first_month + self.n_months - 1)

    @property
    def first_label(self) -> str:
        return month_label(self.first_month)

    @property
    def unit_ids(self) -> pd.Index:
        return pd.Index(self.units["unit_id"])

    def stale_months(self) -> np.ndarray:
        """(M,) bool: as-of months at which the records held less than the final record about an
        event that had occurred by then (features of those months come from :meth:`as_known`)."""
        if self.knowledge is None:
            return np.zeros(self.n_months, dtype=bool)
        return self._memo("stale", lambda: self.knowledge.stale_months(self.n_months))

    def as_known(self, t: int, *, keep: bool = False) -> Panel:
        """The panel of the records as they stood at the end of month offset ``t``: months 0 … t,
        events reported by then with the corrections and escalations recorded by then, attributes
        valid by then. Unit-level caches (peer groups, neighbours, codes) are shared. ``keep``: memoise
        it on this panel (for repeated one-month requests; a whole frame of months would not fit)."""
        if keep:
            return self._memo(("known", t), lambda: self.as_known(t))
        if t < 0 or t >= self.n_months:
            raise DataError(f"month offset {t} is outside the panel (0 … {self.n_months - 1})")
        arrays = self.knowledge.at(t) if self.knowledge is not None else _up_to(self._arrays(), t)
        dated = {k: v[: t + 1] for k, v in self.dated.items()}
        sub = _assemble(
            self.units,
            self.categories,
            self.first_month,
            t + 1,
            arrays,
            self.static_columns,
            None,
            dated,
            self.dated_categories,
        )
        for key, value in self._cache.items():
            if key[0] in _UNIT_LEVEL_CACHE:
                sub._cache[key] = value
        return sub

    def _arrays(self) -> EventArrays:
        return EventArrays(
            self.ev_unit,
            self.ev_cat,
            self.ev_occ,
            self.ev_res,
            self.ev_count,
            self.ev_escalated,
            self.ev_casualties,
            self.ev_severity,
        )

    # The arrays below are built on first use (a counts-only caller never pays for them) and kept.
    @property
    def backlog(self) -> np.ndarray:
        """(C, M, U) int32: events open at the end of each month (+count at o, −count at r)."""
        return self._memo("backlog", lambda: _open_counts(self, self.ev_res.astype(np.int64)))

    @property
    def oldest_open(self) -> np.ndarray:
        """(C, M, U) int16: occurrence offset of the oldest event open at each month's end, -1 if none."""
        # With late records the correction reads the month maxima of resolution again: keep them.
        latest = self.latest_res if self.knowledge is not None else self._cache.get("latest_res")
        return self._memo("oldest_open", lambda: _oldest_open(self, latest))

    @property
    def latest_res(self) -> np.ndarray:
        """(C, M, U) int16: the latest resolution offset of each month's events (capped at M), -1 if
        none — the month holds an event open at the end of t ⇔ ``latest_res > t``."""
        return self._memo("latest_res", lambda: _latest_res(self))

    @property
    def max_severity(self) -> np.ndarray:
        """(C, M, U) int8: the highest severity of the month's events, 0 if none or unknown."""

        def make() -> np.ndarray:
            out = np.zeros(self.monthly.size, dtype=np.int8)
            has = self.ev_severity > 0
            np.maximum.at(out, self._flat()[has], self.ev_severity[has])
            return out.reshape(self.monthly.shape)

        return self._memo("max_severity", make)

    @property
    def last_event(self) -> np.ndarray:
        """(C, M, U) int16: offset of the latest month ≤ m with an event, -1 if none."""

        def make() -> np.ndarray:
            months = np.arange(self.n_months, dtype=np.int16)[None, :, None]
            last = np.where(self.monthly > 0, months, np.int16(-1)).astype(np.int16)
            np.maximum.accumulate(last, axis=1, out=last)
            return last

        return self._memo("last_event", make)

    @property
    def total_dtype(self) -> type:
        """int32 for sums over this panel's events when every unit's total of every channel over
        all categories, doubled (a year-on-year change is 2·year − two years), fits int32; else int64."""

        def make() -> type:
            last = self.cum[:, -1, :].astype(np.int64).reshape(len(self.categories), len(CHANNELS), -1)
            most = int(last.sum(axis=0).max()) if last.size else 0
            return np.int32 if 2 * most < np.iinfo(np.int32).max else np.int64

        return self._memo("total_dtype", make)

    def _memo(self, key: str, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _flat(self) -> np.ndarray:
        _, n_months, n_units = self.monthly.shape
        return (self.ev_cat.astype(np.int64) * n_months + self.ev_occ) * n_units + self.ev_unit

    def channel(self, name: str, c: int) -> np.ndarray:
        """The (M+1, U) cumulative sums of channel ``name`` for category index ``c``."""
        return self.cum[c * len(CHANNELS) + CHANNELS.index(name)]

    def decayed(self, half_life: float) -> np.ndarray:
        """(C, M, U) float32: Σ count·2^(-(m-o)/half_life) over events with occurrence month o ≤ m.

        A recursive filter along months, vectorised over categories × units; cached per half-life.
        """
        key = ("decay", float(half_life))
        if key not in self._cache:
            a = 2.0 ** (-1.0 / half_life)
            out = np.empty(self.monthly.shape, dtype=np.float32)
            acc = np.zeros(self.monthly[:, 0, :].shape, dtype=np.float64)
            for m in range(self.n_months):
                acc *= a
                acc += self.monthly[:, m, :]
                out[:, m, :] = acc
            self._cache[key] = out
        return self._cache[key]

    def open_within(self, window: int, category: int | None = None) -> np.ndarray:
        """(C, M, U) int32: events that occurred in months e-window+1 … e and are open at the end of e
        — or (M, U) of one ``category``, computed alone (and not kept) unless all are cached.

        Each event counts at window ends e ∈ [o, min(o+window, r) - 1]: +count at o, -count at
        min(o+window, r), cumulative sum. Cached per window.
        """
        key = ("open_within", int(window))
        if key not in self._cache:
            stop = np.minimum(self.ev_occ.astype(np.int64) + window, self.ev_res)
            if category is not None:
                return _open_counts(self, stop, category)[0]
            self._cache[key] = _open_counts(self, stop)
        return self._cache[key] if category is None else self._cache[key][category]


def static_columns_of(units: pd.DataFrame) -> dict[str, str]:
    """Registry attribute columns usable as features → 'numeric' or 'category'.

    Identity and location columns are excluded, and so are string columns with distinct values for
    more than half of the units (they identify units: codes, names).
    """
    out: dict[str, str] = {}
    n = max(len(units), 1)
    for col in units.columns:
        if col in NON_FEATURE_UNIT_COLUMNS or col == "unit_type":
            continue
        s = units[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            out[col] = "numeric"
        elif s.nunique(dropna=True) <= IDENTIFYING_SHARE * n or n < 4:
            out[col] = "category"
    return out


def build_panel(
    units: pd.DataFrame,
    events: pd.DataFrame,
    categories: Mapping[str, str],
    *,
    first_month: str | None = None,
    last_month: str | None = None,
    updates: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
) -> Panel:
    """The panel of the normalised ``units`` and ``events`` tables (pipeline.contract).

    Months run from the first event month (or ``first_month`` if earlier) to the last event month
    (or ``last_month``; events after ``last_month`` are left out — the world as known then).
    ``categories``: canonical name → Chinese name. ``updates`` (``event_updates``) and ``history``
    (``unit_history``) are the optional dated tables; with them and the events' ``reported_at`` /
    ``escalated_at`` the panel knows what the records held at each month's end (:meth:`Panel.as_known`).
    Returns a :class:`Panel`. Raises :class:`DataError` for events of unknown units or categories, or when no month is known.
    """
    for col in ("unit_id", "unit_type", "township", "county"):
        if col not in units.columns:
            raise DataError(f"units: required column '{col}' is missing")
    for col in ("unit_id", "occurred_at", "category"):
        if col not in events.columns:
            raise DataError(f"events: required column '{col}' is missing")
    if units["unit_id"].duplicated().any():
        dup = units.loc[units["unit_id"].duplicated(), "unit_id"].iloc[0]
        raise DataError(f"units: unit_id {dup!r} appears more than once")
    units = units.reset_index(drop=True)
    cats = list(categories)

    # Factorise first: hashing 50k registry ids beats looking up millions of event strings.
    ev_codes, ev_uniques = pd.factorize(events["unit_id"])
    u_idx = pd.Index(units["unit_id"]).get_indexer(ev_uniques)[ev_codes]
    if (u_idx < 0).any():
        bad = events["unit_id"].to_numpy()[u_idx < 0]
        raise DataError(f"events: {len(bad)} row(s) name units not in the registry, e.g. {bad[0]!r}")
    cat_codes, cat_uniques = pd.factorize(events["category"])
    c_idx = pd.Index(cats).get_indexer(cat_uniques)[cat_codes]
    if (c_idx < 0).any():
        bad = sorted(set(events["category"].to_numpy()[c_idx < 0].tolist()))
        raise DataError(
            f"events: unknown categor(ies) {', '.join(map(str, bad))}; configured: {', '.join(cats)}"
        )
    occ = datetimes_to_month_numbers(events["occurred_at"].to_numpy())
    if (occ == np.iinfo(np.int64).min).any():
        raise DataError("events: occurred_at is empty in some rows")

    lo = [int(occ.min())] if len(occ) else []
    hi = [int(occ.max())] if len(occ) else []
    first = min(lo + ([month_number(first_month)] if first_month else []), default=None)
    last = month_number(last_month) if last_month else max(hi, default=None)
    if first is None or last is None:
        raise DataError("events: no events and no months given; cannot build a panel")
    if last < first:
        raise DataError(f"last month {month_label(last)} is before the first month {month_label(first)}")
    n_months = last - first + 1

    keep = occ <= last
    ev = events.loc[keep] if not keep.all() else events
    occ_off = (occ[keep] - first).astype(np.int32)
    count = _int_column(ev, "count", 1).astype(np.int32)
    if (count < 1).any():
        raise DataError("events: count must be ≥ 1")
    escalated = (
        ev["escalated"].fillna(False).to_numpy(dtype=bool) if "escalated" in ev else np.zeros(len(ev), bool)
    )
    severity = (
        ev["severity"].fillna(0).to_numpy(dtype=np.int64) if "severity" in ev else np.zeros(len(ev), np.int64)
    )
    if "resolved_at" in ev:
        res = datetimes_to_month_numbers(ev["resolved_at"].to_numpy())
        never = res == np.iinfo(np.int64).min
        # A resolution dated before the event counts as resolved in the event's own month.
        res_off = np.maximum(res - first, occ_off).astype(np.int64)
        res_off[never] = NEVER
        res_off = np.minimum(res_off, NEVER).astype(np.int32)
    else:
        res_off = np.full(len(ev), NEVER, dtype=np.int32)
    arrays = EventArrays(
        unit=u_idx[keep].astype(np.int32),
        cat=c_idx[keep].astype(np.int32),
        occ=occ_off,
        res=res_off,
        count=count,
        escalated=escalated,
        casualties=_int_column(ev, "casualties", 0).astype(np.int32),
        severity=np.clip(severity, 0, 4).astype(np.int8),
    )
    knowledge = knowledge_of(ev, arrays, first, updates, cats)
    if knowledge is not None:
        arrays = knowledge.at(None)
    units, dated = dated_attributes(units, history, first, n_months)
    units, dated_text, text = dated_text_attributes(units, history, first, n_months)
    dated.update(dated_text)
    static = static_columns_of(units)
    return _assemble(units, categories, first, n_months, arrays, static, knowledge, dated, text)


# Keys of ``Panel._cache`` that depend on the units only (shared with :meth:`Panel.as_known`).
_UNIT_LEVEL_CACHE = frozenset(
    {"registry", "denominator", "groups", "knn", "unit_index", "arrow", "codes", "static"}
)


def _up_to(arrays: EventArrays, t: int) -> EventArrays:
    return arrays.take(arrays.occ <= t)


def _assemble(
    units: pd.DataFrame,
    categories: Mapping[str, str],
    first: int,
    n_months: int,
    arrays: EventArrays,
    static_columns: dict[str, str],
    knowledge: Knowledge | None,
    dated: dict[str, np.ndarray],
    dated_categories: dict[str, list[str]] | None = None,
) -> Panel:
    """The panel's cumulative and monthly arrays from flat event arrays (one ``bincount`` each)."""
    n_units, n_cat = len(units), len(categories)
    cells = n_cat * n_months * n_units
    flat = (arrays.cat.astype(np.int64) * n_months + arrays.occ) * n_units + arrays.unit
    shape = (n_cat, n_months, n_units)

    def cell_sum(weights: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=weights, minlength=cells).astype(np.int32).reshape(shape)

    count = arrays.count
    monthly = cell_sum(count)
    cum = np.zeros((n_cat * len(CHANNELS), n_months + 1, n_units), dtype=np.int32)
    for k, values in enumerate(
        (
            monthly,
            cell_sum(count * arrays.escalated),
            cell_sum(arrays.casualties),
            cell_sum(count * (arrays.severity >= SEVERE_AT)),
        )
    ):
        cum[k :: len(CHANNELS), 1:, :] = np.cumsum(values, axis=1, dtype=np.int32)

    return Panel(
        units=units,
        categories=dict(categories),
        first_month=first,
        n_months=n_months,
        cum=cum,
        monthly=monthly,
        ev_unit=arrays.unit,
        ev_cat=arrays.cat,
        ev_occ=arrays.occ,
        ev_res=arrays.res,
        ev_count=count,
        ev_escalated=arrays.escalated,
        ev_casualties=arrays.casualties,
        ev_severity=arrays.severity,
        static_columns=static_columns,
        knowledge=knowledge,
        dated=dated,
        dated_categories=dated_categories or {},
    )


def _int_column(ev: pd.DataFrame, col: str, default: int) -> np.ndarray:
    if col not in ev:
        return np.full(len(ev), default, dtype=np.int64)
    return ev[col].fillna(default).to_numpy(dtype=np.int64)


def _open_counts(panel: Panel, stop: np.ndarray, category: int | None = None) -> np.ndarray:
    """(C, M, U) int32 cumulative sum of +count at each event's occurrence month and −count at
    ``stop`` (dropped when beyond the panel); (1, M, U) of the events of ``category`` if given."""
    n_cat, n_months, n_units = panel.monthly.shape
    occ, unit, count, cat = panel.ev_occ, panel.ev_unit, panel.ev_count, panel.ev_cat
    if category is not None:
        sel = np.flatnonzero(cat == category)
        occ, unit, count, stop, cat, n_cat = occ[sel], unit[sel], count[sel], stop[sel], np.zeros(len(sel)), 1
    cells = n_cat * n_months * n_units
    base = cat.astype(np.int64) * n_months
    inside = stop < n_months
    # One signed bincount (float64, exact for integer counts), in int32 before the cumulative sum:
    # a frame of every month may build this last, beside the whole frame (one float64 cell array
    # instead of three).
    delta = np.bincount(
        np.concatenate(
            [
                (base + occ) * n_units + unit,
                (base[inside] + stop[inside]) * n_units + unit[inside],
            ]
        ),
        weights=np.concatenate([count, -count[inside]]),
        minlength=cells,
    ).astype(np.int32)
    out = delta.reshape(n_cat, n_months, n_units)
    return np.cumsum(out, axis=1, out=out)


def _latest_res(panel: Panel) -> np.ndarray:
    n_cat, n_months, n_units = panel.monthly.shape
    latest_res = np.full(n_cat * n_months * n_units, -1, dtype=np.int32)
    np.maximum.at(latest_res, panel._flat(), panel.ev_res)
    return np.minimum(latest_res, n_months).astype(np.int16).reshape(n_cat, n_months, n_units)


def _oldest_open(panel: Panel, latest_res: np.ndarray | None = None) -> np.ndarray:
    """(C, M, U) int16: the occurrence offset of the oldest event open at the end of each month, -1 if none.

    R[o] = the latest resolution offset among events that occurred in month o; the oldest open event
    at t is the smallest o ≤ t with R[o] > t. One vectorised comparison per lag k = t - o.
    """
    n_cat, n_months, n_units = panel.monthly.shape
    if latest_res is None:
        latest_res = _latest_res(panel)
    lag = np.full((n_cat, n_months, n_units), -1, dtype=np.int16)
    months = np.arange(n_months, dtype=np.int16)
    # Ascending k: a later (larger) lag overwrites, so the oldest open month wins.
    for k in range(n_months):
        cond = latest_res[:, : n_months - k, :] > months[k:][None, :, None]
        np.copyto(lag[:, k:, :], np.int16(k), where=cond)
    oldest = np.where(lag >= 0, months[None, :, None] - lag, np.int16(-1)).astype(np.int16)
    return oldest
