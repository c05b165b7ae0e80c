"""What the records held at the end of each month (docs/features.md, "What was known when").

A panel is built from the records as they stand now (the final record). Part of it was not known
earlier: events entered late (``reported_at``), escalations dated after the event
(``escalated_at``), corrections recorded later (``event_updates``), attribute values valid from a
date (``unit_history``). :class:`Knowledge` keeps each event as first recorded and the month each
later piece arrived, so the event arrays can be given as they stood at the end of any month
(:meth:`Knowledge.at`) and the months where that differs from the final record are known
(:meth:`Knowledge.stale_months`).

All months here are offsets from the panel's first month.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.core.months import NO_MONTH, datetimes_to_month_numbers

# The resolution month of an event that is still open (beyond any panel).
NEVER = np.iinfo(np.int32).max // 2
# Corrections that change a panel array; ``subtype`` corrections are kept in the data but no
# feature reads the subtype.
UPDATE_FIELDS: tuple[str, ...] = ("severity", "casualties", "escalated", "resolved_at", "category")


@dataclass(frozen=True)
class EventArrays:
    """Events as flat arrays: unit index, category index, occurrence offset, resolution offset (or
    :data:`NEVER`), count, escalated, casualties, severity (0 = unknown)."""

    unit: np.ndarray
    cat: np.ndarray
    occ: np.ndarray
    res: np.ndarray
    count: np.ndarray
    escalated: np.ndarray
    casualties: np.ndarray
    severity: np.ndarray

    def take(self, keep: np.ndarray) -> EventArrays:
        """The events where ``keep`` (a boolean mask or positions) holds."""
        return EventArrays(*(getattr(self, f)[keep] for f in _FIELDS))


_FIELDS = ("unit", "cat", "occ", "res", "count", "escalated", "casualties", "severity")


@dataclass(frozen=True)
class Knowledge:
    """When each piece of the events became known.

    ``base``: the events as first recorded; ``reported``: the month each entered the records;
    ``escalated_from``: the month from which an escalation is known (its ``escalated_at``, else the
    occurrence month); ``upd_*``: the corrections sorted by ``recorded_at`` (ties keep file order):
    event position, field index into :data:`UPDATE_FIELDS`, value (int64: severity, casualties,
    0/1, resolution offset or :data:`NEVER`, category index) and recorded month.
    """

    base: EventArrays
    reported: np.ndarray
    escalated_from: np.ndarray
    upd_event: np.ndarray
    upd_field: np.ndarray
    upd_value: np.ndarray
    upd_month: np.ndarray
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def at(self, t: int | None) -> EventArrays:
        """The events as the records held them at the end of month ``t`` (``None``: the final
        record): events reported by then, with the corrections recorded by then and only the
        escalations dated by then. Events that occurred after ``t`` are left out."""
        b = self.base
        # Fields without a correction stay the first record's arrays (no copy).
        values = {f: getattr(b, f) for f in ("cat", "res", "escalated", "casualties", "severity")}
        sel = np.ones(len(self.upd_event), dtype=bool) if t is None else self.upd_month <= t
        for k, name in enumerate(UPDATE_FIELDS):
            pick = sel & (self.upd_field == k)
            if not pick.any():
                continue
            ev, val = self.upd_event[pick], self.upd_value[pick]
            last = _last_per_key(ev)
            target = {"resolved_at": "res", "category": "cat"}.get(name, name)
            arr = values[target] = values[target].copy()
            arr[ev[last]] = val[last].astype(arr.dtype)
        escalated = values["escalated"]
        if t is not None:
            escalated = escalated & (self.escalated_from <= t)
        arrays = EventArrays(
            b.unit,
            values["cat"],
            b.occ,
            np.maximum(values["res"], b.occ),
            b.count,
            escalated,
            values["casualties"],
            values["severity"],
        )
        if t is None:
            return arrays
        return arrays.take((self.reported <= t) & (b.occ <= t))

    def settled(self) -> np.ndarray:
        """Per event, the first month from which its final state is in the records (≥ occurrence);
        computed once."""
        if "settled" not in self._memo:
            self._memo["settled"] = self._settled()
        return self._memo["settled"]

    def _settled(self) -> np.ndarray:
        final = self.at(None)
        month = np.maximum(self.reported, self.base.occ).astype(np.int64)
        month = np.where(final.escalated, np.maximum(month, self.escalated_from), month)
        if len(self.upd_event):
            np.maximum.at(month, self.upd_event, self.upd_month.astype(np.int64))
        return month

    def stale_pairs(self, n_months: int) -> tuple[np.ndarray, np.ndarray]:
        """Every (event position, month offset t < ``n_months``) where the records at the end of t
        held less than the final record about an event that had occurred by then (int64 arrays,
        event-major, months ascending)."""
        occ = self.base.occ.astype(np.int64)
        stop = np.minimum(self.settled(), n_months)
        late = np.flatnonzero(stop > occ)
        span = stop[late] - occ[late]
        starts = np.cumsum(span) - span
        event = np.repeat(late.astype(np.int64), span)
        month = np.repeat(occ[late] - starts, span) + np.arange(int(span.sum()), dtype=np.int64)
        return event, month

    def known_values(self, event: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Per (event position, month offset) pair, the event as the records held it at the end of
        that month — the vectorised :meth:`at` for scattered pairs: ``reported`` (bool) and ``cat``,
        ``res``, ``escalated``, ``casualties``, ``severity`` (as in :class:`EventArrays`)."""
        b = self.base
        values = {
            f: getattr(b, f)[event].copy() for f in ("cat", "res", "escalated", "casualties", "severity")
        }
        # Updates ordered by (event, recorded month), ties in recorded order (a stable sort of an
        # already recorded-order array): the last entry at or before (event, t) is the one in force.
        shift = np.int64(1 << 24)
        for k, name in enumerate(UPDATE_FIELDS):
            sel = np.flatnonzero(self.upd_field == k)
            if not len(sel):
                continue
            ue, um, uv = self.upd_event[sel], self.upd_month[sel].astype(np.int64), self.upd_value[sel]
            key = ue * (2 * shift) + np.clip(um, -shift, shift - 1) + shift
            order = np.argsort(key, kind="stable")
            key, ue, uv = key[order], ue[order], uv[order]
            at = np.searchsorted(key, event * (2 * shift) + t + shift, side="right") - 1
            hit = at >= 0
            hit[hit] = ue[at[hit]] == event[hit]
            target = {"resolved_at": "res", "category": "cat"}.get(name, name)
            arr = values[target]
            arr[hit] = uv[at[hit]].astype(arr.dtype)
        values["res"] = np.maximum(values["res"], b.occ[event])
        values["escalated"] = values["escalated"] & (self.escalated_from[event] <= t)
        values["reported"] = self.reported[event] <= t
        return values

    def stale_months(self, n_months: int) -> np.ndarray:
        """(n_months,) bool: months whose records differ from the final record for some event that
        had occurred by then (so features of that as-of month need :meth:`at`)."""
        occ = self.base.occ.astype(np.int64)
        settled = self.settled()
        late = settled > occ
        delta = np.zeros(n_months + 1, dtype=np.int64)
        np.add.at(delta, np.minimum(occ[late], n_months), 1)
        np.add.at(delta, np.minimum(settled[late], n_months), -1)
        return np.cumsum(delta)[:n_months] > 0


def _last_per_key(keys: np.ndarray) -> np.ndarray:
    """Positions of the last occurrence of each distinct key (the latest correction wins)."""
    _, first_from_end = np.unique(keys[::-1], return_index=True)
    return len(keys) - 1 - first_from_end


def month_offsets(values: pd.Series | np.ndarray, first: int) -> np.ndarray:
    """Datetimes → month offsets from ``first`` (int64); NaT → ``NO_MONTH``."""
    months = datetimes_to_month_numbers(np.asarray(values, dtype="datetime64[ns]"))
    return np.where(months == NO_MONTH, NO_MONTH, months - first)


def knowledge_of(
    events: pd.DataFrame,
    base: EventArrays,
    first: int,
    updates: pd.DataFrame | None,
    categories: list[str],
) -> Knowledge | None:
    """The :class:`Knowledge` of the normalised ``events`` (rows aligned with ``base``) and their
    ``updates`` (the ``event_updates`` table), or ``None`` when nothing was recorded late."""
    occ = base.occ
    occurred = np.asarray(events["occurred_at"], dtype="datetime64[ns]")
    reported = _month_from(events, "reported_at", occurred, occ, first)
    esc_from = _month_from(events, "escalated_at", occurred, occ, first)
    upd = _update_arrays(events, updates, first, categories)
    if not upd[0].size and (reported == occ).all() and not (base.escalated & (esc_from > occ)).any():
        return None
    return Knowledge(base, reported.astype(np.int32, copy=False), esc_from.astype(np.int32, copy=False), *upd)


def _month_from(
    events: pd.DataFrame, column: str, occurred: np.ndarray, occ: np.ndarray, first: int
) -> np.ndarray:
    """Per event, the month offset of ``column`` (a date) when it is later than the occurrence, else
    the occurrence month ``occ`` (also for an empty date or a missing column), in ``occ``'s dtype.
    Only the later dates are converted to months (most events are entered on the day): a date not
    after the occurrence falls in its month or before, where the occurrence month wins anyway."""
    out = occ.copy()
    if column not in events:
        return out
    when = np.asarray(events[column], dtype="datetime64[ns]")
    later = np.flatnonzero(when > occurred)  # NaT compares false
    out[later] = np.maximum(month_offsets(when[later], first), occ[later])
    return out


def _update_arrays(
    events: pd.DataFrame, updates: pd.DataFrame | None, first: int, categories: list[str]
) -> tuple[np.ndarray, ...]:
    empty = (np.zeros(0, np.int64),) * 4
    if updates is None or len(updates) == 0:
        return empty
    u = updates[updates["field"].isin(UPDATE_FIELDS)]
    pos = pd.Index(events["event_id"].to_numpy(dtype=object)).get_indexer(
        u["event_id"].to_numpy(dtype=object)
    )
    u = u.loc[pos >= 0]
    pos = pos[pos >= 0]
    if len(u) == 0:
        return empty
    order = np.argsort(u["recorded_at"].to_numpy(dtype="datetime64[ns]"), kind="stable")
    u, pos = u.iloc[order], pos[order]
    field = pd.Index(UPDATE_FIELDS).get_indexer(u["field"]).astype(np.int64)
    text = u["value"].astype("str").to_numpy(dtype=object)
    value = np.zeros(len(u), dtype=np.int64)
    for k, name in enumerate(UPDATE_FIELDS):
        sel = field == k
        if not sel.any():
            continue
        value[sel] = _decode(name, text[sel], first, categories)
    month = month_offsets(u["recorded_at"], first)
    return pos.astype(np.int64), field, value, month.astype(np.int64)


def _decode(name: str, text: np.ndarray, first: int, categories: list[str]) -> np.ndarray:
    """Normalised update values (text, see the ingestion) → the panel's integer codes."""
    if name in ("severity", "casualties"):
        return pd.to_numeric(pd.Series(text), errors="raise").to_numpy(dtype=np.int64)
    if name == "escalated":
        return (pd.Series(text) == "true").to_numpy(dtype=np.int64)
    if name == "category":
        idx = pd.Index(categories).get_indexer(pd.Index(text))
        if (idx < 0).any():
            raise DataError(f"event_updates: unknown category {text[idx < 0][0]!r}")
        return idx.astype(np.int64)
    dates = pd.to_datetime(pd.Series(text).replace("", None), errors="raise").to_numpy(dtype="datetime64[ns]")
    off = month_offsets(dates, first)
    return np.where(off == NO_MONTH, NEVER, off).astype(np.int64)


def dated_attributes(
    units: pd.DataFrame, history: pd.DataFrame | None, first: int, n_months: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Numeric attributes with a ``unit_history`` → (units with one column per such attribute,
    holding its value at the panel's last month; attribute → (n_months, U) float32 values valid at
    each month's end, NaN before the unit's first entry).

    An attribute's value at month t is its latest entry with ``valid_from`` in or before t (ties:
    the later row). An attribute is numeric when every entry of it is a number; the others are
    :func:`dated_text_attributes`.
    """
    if history is None or len(history) == 0:
        return units, {}
    h = history.assign(num=pd.to_numeric(history["value"], errors="coerce"))
    numeric = [a for a, g in h.groupby("attribute", sort=True)["num"] if g.notna().all()]
    units = units.copy()
    dated = _valid_at_each_month(units, h[h["attribute"].isin(numeric)], first, n_months)
    for attr, values in dated.items():
        units[attr] = values[-1].astype(np.float64)
    return units, dated


def dated_text_attributes(
    units: pd.DataFrame, history: pd.DataFrame | None, first: int, n_months: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, list[str]]]:
    """Text attributes with a ``unit_history`` (any entry not a number) → (units with the value at
    the panel's last month; attribute → (n_months, U) float32 codes into its categories valid at
    each month's end, NaN before the unit's first entry; attribute → its sorted categories: the
    values of its history and of its registry column). The same rule as :func:`dated_attributes`."""
    if history is None or len(history) == 0:
        return units, {}, {}
    num = pd.to_numeric(history["value"], errors="coerce")
    text: dict[str, list[str]] = {}
    codes = pd.Series(np.nan, index=history.index)
    for attr, g in history[num.isna().groupby(history["attribute"]).transform("any")].groupby("attribute"):
        values = g["value"].astype(str)
        registry = units[attr].dropna().astype(str) if attr in units else pd.Series([], dtype=str)
        text[attr] = sorted(set(values) | set(registry))
        codes[g.index] = pd.Index(text[attr]).get_indexer(values)
    if not text:
        return units, {}, {}
    h = history.assign(num=codes)
    units = units.copy()
    dated = _valid_at_each_month(units, h[h["attribute"].isin(list(text))], first, n_months)
    for attr, values in dated.items():
        now = np.where(np.isnan(values[-1]), -1, values[-1]).astype(np.int64)
        units[attr] = pd.Series(pd.Categorical.from_codes(now, categories=text[attr])).astype(object)
    return units, dated, text


def _valid_at_each_month(
    units: pd.DataFrame, h: pd.DataFrame, first: int, n_months: int
) -> dict[str, np.ndarray]:
    """History entries with numeric ``num`` → attribute → (n_months, U) float32 value of the latest
    entry valid by each month's end (ties: the later row), NaN before a unit's first entry."""
    pos = pd.Index(units["unit_id"].to_numpy(dtype=object)).get_indexer(h["unit_id"].to_numpy(dtype=object))
    h, pos = h.loc[pos >= 0], pos[pos >= 0]
    order = np.argsort(h["valid_from"].to_numpy(dtype="datetime64[ns]"), kind="stable")
    h, pos = h.iloc[order], pos[order]
    month = np.maximum(month_offsets(h["valid_from"], first), 0)
    dated: dict[str, np.ndarray] = {}
    for attr in sorted(h["attribute"].unique()):
        sel = (h["attribute"] == attr).to_numpy() & (month < n_months)
        m, u, v = month[sel], pos[sel], h["num"].to_numpy(dtype=np.float64)[sel]
        key = m * len(units) + u
        last = _last_per_key(key)
        change = np.full((n_months, len(units)), np.nan, dtype=np.float32)
        has = np.zeros((n_months, len(units)), dtype=bool)
        change[m[last], u[last]] = v[last]
        has[m[last], u[last]] = True
        # Forward fill along months: index of the latest change at or before each month.
        idx = np.where(has, np.arange(n_months)[:, None], -1)
        np.maximum.accumulate(idx, axis=0, out=idx)
        values = np.take_along_axis(change, np.maximum(idx, 0), axis=0)
        values[idx < 0] = np.nan
        dated[attr] = values
    return dated
