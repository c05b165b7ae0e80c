"""Features as the records stood at each as-of month: the final record plus a sparse correction.

The panel's arrays hold the final record. At the end of as-of month t the records lacked part of it:
the *stale* events of t (occurred by t, but reported, escalated or corrected after t; see
:mod:`.known`). The records at t are the final record minus each stale event's final version plus
its version as known at t (none while it was not yet reported). So the features of t are the final
record's features corrected over the few (as-of, unit) cells that hold a stale event:

- sums over events (window counts per channel, events since the first month, open backlogs, open
  events of a window, a month's outcome totals) take a signed scatter of the two versions;
- what is not a sum is recomputed for the concerned (as-of, unit, category) cells only, from the
  final arrays and the versions: the latest month with an event (months since, recency), the
  decayed count (the same float recursion as the panel's, so bit for bit), the window's highest
  severity, the oldest open event, and the months whose own tier reached a level (history
  features);
- peer and per-capita features read the corrected sums of every unit, so they follow; attributes
  with a history are read at t already; season features do not depend on the records.

:class:`LateView` holds the versions of one ``build_frame`` call and corrects (as-of × columns)
arrays in place; ``build.py``'s accessors call it. ``Panel.as_known`` remains the plain rebuild it
must equal (tests/features/test_known.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sanling.core.config import TierRules
from sanling.features.labels import monthly_tiers, tiers_from_outcomes
from sanling.features.panel import SEVERE_AT, Panel

if TYPE_CHECKING:
    from sanling.features.known import Knowledge

# Events per gather chunk when oldest open events are looked up over a range of months.
_GATHER_CHUNK = 2_000_000


def late_view(panel: Panel, t: np.ndarray, rows: np.ndarray | None) -> LateView | None:
    """The correction of the as-of offsets ``t`` for the columns ``rows`` (``None``: every unit),
    or ``None`` when the records at each of them already held the final record."""
    if panel.knowledge is None or not panel.stale_months()[t].any():
        return None
    return LateView(panel, t, rows)


class LateView:
    """The two versions (final: sign −1, as known at t: sign +1) of every stale event of the
    requested as-of months, as flat int64 arrays: ``a`` (as-of position), ``t``, ``unit``,
    ``cat``, ``occ``, ``res``, ``sign``, the signed sums ``count``, ``escalated`` (count of
    escalated), ``casualties``, ``severe`` (count with severity ≥ 3), and ``severity``."""

    def __init__(self, panel: Panel, t: np.ndarray, rows: np.ndarray | None):
        knowledge: Knowledge = panel.knowledge
        self.panel, self.t_asof = panel, np.asarray(t, dtype=np.int64)
        self.n_cols = panel.n_units if rows is None else len(rows)
        self.rowpos = None
        if rows is not None:
            self.rowpos = np.full(panel.n_units, -1, dtype=np.int64)
            self.rowpos[rows] = np.arange(len(rows))
        event, month = _cached(panel, "stale_pairs", lambda: knowledge.stale_pairs(panel.n_months))
        self.settled = _cached(panel, "settled", knowledge.settled)
        # Pairs → as-of positions (an as-of month may be asked twice).
        order = np.argsort(self.t_asof, kind="stable")
        sorted_t = self.t_asof[order]
        lo = np.searchsorted(sorted_t, month, side="left")
        n = np.searchsorted(sorted_t, month, side="right") - lo
        event, month, lo = np.repeat(event, n), np.repeat(month, n), np.repeat(lo, n)
        starts = np.cumsum(n) - n
        a = order[lo + np.arange(len(event)) - np.repeat(starts, n)]
        known = knowledge.known_values(event, month)
        seen = known["reported"]
        final = {
            "cat": panel.ev_cat,
            "res": panel.ev_res,
            "escalated": panel.ev_escalated,
            "casualties": panel.ev_casualties,
            "severity": panel.ev_severity,
        }

        def both(name: str) -> np.ndarray:
            return np.concatenate([final[name][event].astype(np.int64), known[name][seen].astype(np.int64)])

        count = panel.ev_count[event].astype(np.int64)
        self.a = np.concatenate([a, a[seen]]).astype(np.int64)
        self.t = np.concatenate([month, month[seen]])
        self.unit = np.concatenate([panel.ev_unit[event], panel.ev_unit[event][seen]]).astype(np.int64)
        self.occ = np.concatenate([panel.ev_occ[event], panel.ev_occ[event][seen]]).astype(np.int64)
        self.cat, self.res, self.severity = both("cat"), both("res"), both("severity")
        self.sign = np.concatenate([-np.ones(len(event), np.int64), np.ones(int(seen.sum()), np.int64)])
        self.count = np.concatenate([count, count[seen]]) * self.sign
        self.escalated = self.count * both("escalated")
        self.casualties = both("casualties") * self.sign
        self.severe = self.count * (self.severity >= SEVERE_AT)
        self._memo: dict[tuple, object] = {}

    # ---- sums over events: a signed scatter -------------------------------------------------------

    def _scatter(self, out: np.ndarray, sel: np.ndarray, values: np.ndarray, all_units: bool) -> None:
        a, unit = self.a[sel], self.unit[sel]
        if self.rowpos is not None and not all_units:
            col = self.rowpos[unit]
            keep = col >= 0
            a, unit, values = a[keep], col[keep], values[keep]
        np.add.at(out, (a, unit), values.astype(out.dtype, copy=False))

    def _in(self, category: int | None, window: int | None) -> np.ndarray:
        sel = np.ones(len(self.a), dtype=bool) if category is None else self.cat == category
        if window is not None:
            sel &= self.occ > self.t - window
        return sel

    def add_window(
        self, out: np.ndarray, variant: str, category: int | None, window: int | None, all_units: bool
    ) -> None:
        """``out`` (as-of × columns): Σ of a channel (``count``, ``escalated``, ``casualties``,
        ``severe``) over months t-window+1 … t (``window`` None: since the first month)."""
        sel = self._in(category, window)
        self._scatter(out, sel, getattr(self, variant)[sel], all_units)

    def add_open(self, out: np.ndarray, category: int | None, window: int | None, all_units: bool) -> None:
        """``out``: events open at the end of t (that occurred in the last ``window`` months)."""
        sel = self._in(category, window) & (self.res > self.t)
        self._scatter(out, sel, self.count[sel], all_units)

    # ---- what is not a sum: recomputed for the concerned cells ------------------------------------

    def _cells(self, category: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(as-of position, unit, column) of the cells holding a version of ``category``, in the
        requested columns, sorted by (as-of, unit)."""

        def make():
            sel = self.cat == category
            key = np.unique(self.a[sel] * self.panel.n_units + self.unit[sel])
            a, unit = key // self.panel.n_units, key % self.panel.n_units
            col = unit if self.rowpos is None else self.rowpos[unit]
            keep = col >= 0
            return a[keep], unit[keep], col[keep]

        return self._once(("cells", category), make)

    def _once(self, key: tuple, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def _series(self, category: int):
        """Per as-of position with concerned cells: (cell indices, (cells, t+1) int64 monthly counts
        of the category as known at t)."""

        def make():
            a, unit, _ = self._cells(category)
            sel = np.flatnonzero(self.cat == category)
            out = []
            for pos in np.unique(a):
                cells = np.flatnonzero(a == pos)
                t = int(self.t_asof[pos])
                series = self.panel.monthly[category, : t + 1][:, unit[cells]].T.astype(np.int64)
                mine = sel[self.a[sel] == pos]
                k = np.searchsorted(unit[cells], self.unit[mine])
                ok = (k < len(cells)) & (unit[cells][np.minimum(k, len(cells) - 1)] == self.unit[mine])
                np.add.at(series, (k[ok], self.occ[mine][ok]), self.count[mine][ok])
                out.append((cells, series))
            return out

        return self._once(("series", category), make)

    def fix_last_event(self, out: np.ndarray, category: int) -> None:
        """``out`` (as-of × columns): the latest month ≤ t with an event, −1 if none."""
        a, _, col = self._cells(category)
        for cells, series in self._series(category):
            months = np.arange(series.shape[1])
            out[a[cells], col[cells]] = np.where(series > 0, months, -1).max(axis=1)

    def fix_decayed(self, out: np.ndarray, category: int, half_life: float) -> None:
        """``out``: Σ count·2^(-(t-o)/half_life), by the panel's own recursion (float64 → float32)."""
        a, _, col = self._cells(category)
        factor = 2.0 ** (-1.0 / half_life)
        for cells, series in self._series(category):
            acc = np.zeros(len(cells), dtype=np.float64)
            for m in range(series.shape[1]):
                acc *= factor
                acc += series[:, m]
            out[a[cells], col[cells]] = acc.astype(np.float32)

    def _sorted_events(self) -> tuple[np.ndarray, np.ndarray]:
        """Final events ordered by (category, unit, month): (order, sorted key)."""

        def make():
            p = self.panel
            key = (p.ev_cat.astype(np.int64) * p.n_units + p.ev_unit) * p.n_months + p.ev_occ
            order = np.argsort(key, kind="stable")
            return order, key[order]

        return _cached(self.panel, "events_by_unit_month", make)

    def _key(self, category: int, unit: np.ndarray, month: np.ndarray) -> np.ndarray:
        p = self.panel
        return (np.int64(category) * p.n_units + unit) * p.n_months + month

    def _gather(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner index, event position) of every sorted event in [lo, hi) per owner."""
        order, _ = self._sorted_events()
        n = np.maximum(hi - lo, 0)
        owner = np.repeat(np.arange(len(lo)), n)
        idx = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        return owner, order[idx]

    def fix_max_severity(self, out: np.ndarray, category: int, window: int) -> None:
        """``out``: the highest severity of the events of months t-window+1 … t (0: none/unknown)."""
        a, unit, col = self._cells(category)
        if not len(a):
            return
        t = self.t_asof[a]
        p = self.panel
        # The final month maxima over the window, then the months that hold a version replaced.
        lag = np.arange(window)
        months = t[:, None] - lag[None, :]
        values = p.max_severity[category][np.maximum(months, 0), unit[:, None]].astype(np.int64)
        values[months < 0] = 0
        month_key, month_max = self._month_max_severity(category)
        cell_key = a * p.n_units + unit
        for j in range(window):
            key = (cell_key * p.n_months) + np.maximum(months[:, j], 0)
            at = np.searchsorted(month_key, key)
            hit = (at < len(month_key)) & (months[:, j] >= 0)
            hit[hit] = month_key[at[hit]] == key[hit]
            values[hit, j] = month_max[at[hit]]
        out[a, col] = values.max(axis=1)

    def _month_max_severity(self, category: int) -> tuple[np.ndarray, np.ndarray]:
        """For every (as-of, unit, month) of the category holding a version: key
        ((a·U + unit)·M + month, sorted) and the month's highest severity as known at t."""

        def make():
            p = self.panel
            sel = np.flatnonzero(self.cat == category)
            key = (self.a[sel] * p.n_units + self.unit[sel]) * p.n_months + self.occ[sel]
            keys, inverse = np.unique(key, return_inverse=True)
            best = np.zeros(len(keys), dtype=np.int64)
            plus = self.sign[sel] > 0
            np.maximum.at(best, inverse[plus], self.severity[sel][plus])
            # The month's final events still known as they are at t.
            month = keys % p.n_months
            unit = (keys // p.n_months) % p.n_units
            a = keys // (p.n_months * p.n_units)
            _, sorted_key = self._sorted_events()
            lo = np.searchsorted(sorted_key, self._key(category, unit, month), side="left")
            hi = np.searchsorted(sorted_key, self._key(category, unit, month), side="right")
            owner, ev = self._gather(lo, hi)
            same = self.settled[ev] <= self.t_asof[a[owner]]
            np.maximum.at(best, owner[same], p.ev_severity[ev[same]].astype(np.int64))
            return keys, best

        return self._once(("month_max", category), make)

    def fix_oldest_open(self, out: np.ndarray, category: int) -> None:
        """``out``: the occurrence month of the oldest event open at the end of t, −1 if none."""
        a, unit, col = self._cells(category)
        if not len(a):
            return
        p = self.panel
        t = self.t_asof[a]
        big = np.int64(np.iinfo(np.int32).max)
        best = np.full(len(a), big, dtype=np.int64)
        # Versions as known at t, open at its end.
        sel = np.flatnonzero((self.cat == category) & (self.sign > 0) & (self.res > self.t))
        cell_key = a * p.n_units + unit
        at = np.searchsorted(cell_key, self.a[sel] * p.n_units + self.unit[sel])
        ok = at < len(cell_key)
        ok[ok] = cell_key[at[ok]] == (self.a[sel] * p.n_units + self.unit[sel])[ok]
        np.minimum.at(best, at[ok], self.occ[sel][ok])
        # Final events open at t and not stale then: none older than the final oldest one; look in
        # its month first, then — for the cells where all of those were stale — in the later months.
        oldest = p.oldest_open[category][t, unit].astype(np.int64)
        _, sorted_key = self._sorted_events()
        todo = np.flatnonzero(oldest >= 0)
        for first, last in ((oldest, oldest + 1), (oldest + 1, t + 1)):
            if not len(todo):
                break
            lo = np.searchsorted(sorted_key, self._key(category, unit[todo], first[todo]), side="left")
            hi = np.searchsorted(sorted_key, self._key(category, unit[todo], last[todo]), side="left")
            found = np.full(len(todo), big, dtype=np.int64)
            then = t[todo]
            step = _chunk(hi - lo)
            for start in range(0, len(todo), step):
                part = slice(start, start + step)
                owner, ev = self._gather(lo[part], hi[part])
                owner += start
                open_then = (p.ev_res[ev] > then[owner]) & (self.settled[ev] <= then[owner])
                np.minimum.at(found, owner[open_then], p.ev_occ[ev[open_then]].astype(np.int64))
            best[todo] = np.minimum(best[todo], found)
            todo = todo[found == big]
        out[a, col] = np.where(best == big, -1, best)

    def add_tier_months(
        self,
        out: np.ndarray,
        level: int,
        window: int | None,
        tier_rules: TierRules,
    ) -> None:
        """``out`` (as-of × columns): + the change in the number of months t-window+1 … t (every
        month ≤ t when ``window`` is None) whose own tier reached ``level``."""
        keys, known = self._month_tiers(tier_rules)
        final_tiers = monthly_tiers(self.panel, tier_rules)
        p = self.panel
        month = keys % p.n_months
        unit = (keys // p.n_months) % p.n_units
        a = keys // (p.n_months * p.n_units)
        delta = (known >= level).astype(np.int64) - (final_tiers[month, unit] >= level)
        sel = delta != 0
        if window is not None:
            sel &= month > self.t_asof[a] - window
        a, unit, delta = a[sel], unit[sel], delta[sel]
        if self.rowpos is not None:
            unit = self.rowpos[unit]
            keep = unit >= 0
            a, unit, delta = a[keep], unit[keep], delta[keep]
        np.add.at(out, (a, unit), delta.astype(out.dtype, copy=False))

    def _month_tiers(self, tier_rules: TierRules) -> tuple[np.ndarray, np.ndarray]:
        """The (as-of, unit, month) cells holding a version: key and the month's tier as known at t
        (from the final month totals plus the versions' signed totals)."""

        def make():
            p = self.panel
            key = (self.a * p.n_units + self.unit) * p.n_months + self.occ
            keys, inverse = np.unique(key, return_inverse=True)
            month = keys % p.n_months
            unit = (keys // p.n_months) % p.n_units
            outcomes = _month_outcomes(p, month, unit)
            casualties = outcomes["casualties"]
            events = outcomes["events"]
            for ci, c in enumerate(p.categories):
                mine = self.cat == ci
                for name, values in (
                    (c, self.count),
                    (f"{c}_escalated", self.escalated),
                    (f"{c}_unresolved", self.count * (self.res > self.occ)),
                ):
                    np.add.at(outcomes[name], inverse[mine], values[mine])
                np.add.at(events, inverse[mine], self.count[mine])
                np.add.at(casualties, inverse[mine], self.casualties[mine])
            return keys, tiers_from_outcomes(outcomes, tier_rules)

        return self._once(("month_tiers", tier_rules.model_dump_json()), make)


def _month_outcomes(panel: Panel, month: np.ndarray, unit: np.ndarray) -> dict[str, np.ndarray]:
    """The final record's one-month outcome totals (as ``labels.monthly_tiers`` reads them) of the
    (month, unit) cells."""
    out: dict[str, np.ndarray] = {}
    casualties = np.zeros(len(month), dtype=np.int64)
    events = np.zeros(len(month), dtype=np.int64)
    unresolved = panel.open_within(1)
    for ci, c in enumerate(panel.categories):
        out[c] = panel.monthly[ci][month, unit].astype(np.int64)
        e = panel.channel("escalated", ci)
        out[f"{c}_escalated"] = e[month + 1, unit].astype(np.int64) - e[month, unit]
        out[f"{c}_unresolved"] = unresolved[ci][month, unit].astype(np.int64)
        k = panel.channel("casualties", ci)
        casualties += k[month + 1, unit].astype(np.int64) - k[month, unit]
        events += out[c]
    out["casualties"] = casualties
    out["events"] = events
    return out


def _chunk(sizes: np.ndarray) -> int:
    """Owners per gather so that one gather holds about :data:`_GATHER_CHUNK` events."""
    if not len(sizes):
        return 1
    mean = max(float(np.mean(np.maximum(sizes, 0))), 1.0)
    return int(max(1, _GATHER_CHUNK // mean))


def _cached(panel: Panel, key: str, make):
    if key not in panel._cache:
        panel._cache[key] = make()
    return panel._cache[key]
