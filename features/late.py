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


def late_view(panel: Panel, t: np.ndarray, rows: np.ndarray | None) -> LateView | None:
    """The correction of the as-of offsets ``t`` for the columns ``rows`` (``None``: every unit),
    or ``None`` when the records at each of them already held the final record."""
    if panel.knowledge is None or not panel.stale_months()[t].any():
        return None
    return LateView(panel, t, rows)


class LateView:
    """The two versions (final: sign −1, as known at t: sign +1) of every stale event of the
    requested as-of months — one record for an event that differs only in its escalation — sorted by
    (category, as-of position, unit, month), and their signed sums per such (category, as-of, unit,
    month) group.

    Methods named ``add_*`` add a correction to an (as-of × columns) int64 array of final-record
    values; ``fix_*`` overwrite the concerned cells. Columns are every unit (``all_units``) or the
    requested ``rows``.
    """

    def __init__(self, panel: Panel, t: np.ndarray, rows: np.ndarray | None):
        knowledge: Knowledge = panel.knowledge
        self.panel, self.t_asof = panel, np.asarray(t, dtype=np.int64)
        self.rowpos = None
        if rows is not None:
            self.rowpos = np.full(panel.n_units, -1, dtype=np.int64)
            self.rowpos[rows] = np.arange(len(rows))
        event, month = _cached(panel, "stale_pairs", lambda: knowledge.stale_pairs(panel.n_months))
        self.settled = knowledge.settled()
        # Pairs → as-of positions (an as-of month may be asked twice).
        order = np.argsort(self.t_asof, kind="stable")
        sorted_t = self.t_asof[order]
        lo = np.searchsorted(sorted_t, month, side="left")
        n = np.searchsorted(sorted_t, month, side="right") - lo
        event, month, lo = np.repeat(event, n), np.repeat(month, n), np.repeat(lo, n)
        a = order[lo + np.arange(len(event)) - np.repeat(np.cumsum(n) - n, n)]
        known = knowledge.known_values(event, month)
        seen = known["reported"]
        final = {
            "cat": panel.ev_cat,
            "res": panel.ev_res,
            "escalated": panel.ev_escalated,
            "casualties": panel.ev_casualties,
            "severity": panel.ev_severity,
        }

        # A pair known at t as it is in the final record but for its escalation (entered on time,
        # escalated later) is one record: it adds only the escalation's difference to the sums and
        # stands for the event as known at t in what is not a sum. Every other pair has its final
        # version (sign −1) and, once reported, its version as known at t (sign +1).
        merged = seen.copy()
        for name in ("cat", "res", "casualties", "severity"):
            merged &= final[name][event] == known[name]
        # Versions of pairs whose category, severity, resolution or presence differ: the only ones
        # that can change a month's highest severity or whether it holds an open event.
        reshaped = ~seen
        for name in ("cat", "severity", "res"):
            reshaped[seen] |= final[name][event][seen] != known[name][seen]
        # Each version as the pair it comes from and its kind (0 final, 1 as known at t, 2 merged);
        # the key orders them, so every field is gathered once, in its final order.
        minus, plus = ~merged, seen & ~merged
        pair = np.concatenate([np.flatnonzero(minus), np.flatnonzero(plus), np.flatnonzero(merged)])
        kind = np.repeat(np.arange(3, dtype=np.int8), [minus.sum(), plus.sum(), merged.sum()])

        def versions(values: np.ndarray, now: np.ndarray | None = None) -> np.ndarray:
            old = values[of_event]
            return (old if now is None else np.where(kind > 0, now[pair], old)).astype(np.int64, copy=False)

        # One order for everything: by (category, as-of, unit, month).
        n_a, n_u, n_m = len(self.t_asof), panel.n_units, panel.n_months
        of_event = event[pair]
        key = ((versions(panel.ev_cat, known["cat"]) * n_a + a[pair]) * n_u + versions(panel.ev_unit)) * n_m
        key += versions(panel.ev_occ)
        order = np.argsort(key)  # the order within a key is never read
        key, pair, kind, of_event = key[order], pair[order], kind[order], of_event[order]
        v = {name: versions(final[name], known[name]) for name in final}
        v["a"] = a[pair]
        v["unit"], v["occ"] = versions(panel.ev_unit), versions(panel.ev_occ)
        sign = np.where(kind == 0, -1, 1).astype(np.int64)
        count = versions(panel.ev_count)
        weight = np.where(kind == 2, 0, sign)  # what a record adds to the sums
        v["count"] = count * weight
        # A merged record adds only its escalation's difference.
        esc_delta = known["escalated"][pair].astype(np.int64) - final["escalated"][of_event]
        v["escalated"] = np.where(kind == 2, count * esc_delta, v["count"] * v["escalated"])
        v["casualties"] = v["casualties"] * weight
        v["severe"] = v["count"] * (v["severity"] >= SEVERE_AT)
        v["sign"] = sign
        v["reshaped"] = reshaped[pair] & (kind != 2)
        self.v = v
        self.v["t"] = self.t_asof[self.v["a"]]
        self.v["open"] = self.v["count"] * (self.v["res"] > self.v["t"])
        # Open at the end of its own month (a month's outcome, for the history features).
        self.v["unresolved"] = self.v["count"] * (self.v["res"] > self.v["occ"])
        self.cat_bounds = np.searchsorted(self.v["cat"], np.arange(len(panel.categories) + 1))
        # Signed sums per (category, as-of, unit, month); groups that cancel are dropped.
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        g = {k: self.v[k][starts] for k in ("cat", "a", "unit", "occ", "t")}
        sums = ("count", "escalated", "casualties", "severe", "open", "unresolved")
        for k in sums:
            g[k] = np.add.reduceat(self.v[k], starts) if len(starts) else np.zeros(0, np.int64)
        keep = np.zeros(len(starts), dtype=bool)
        for k in sums:
            keep |= g[k] != 0
        self.g = g if keep.all() else {k: x[keep] for k, x in g.items()}
        self.g["age"] = self.g["t"] - self.g["occ"]
        self.g_bounds = np.searchsorted(self.g["cat"], np.arange(len(panel.categories) + 1))
        for k in ("count", "escalated", "casualties", "severe", "open", "unresolved"):
            del self.v[k]  # in the sums now
        self._memo: dict[tuple, object] = {}

    # ---- sums over events: a signed scatter -------------------------------------------------------

    def _columns(self, unit: np.ndarray, all_units: bool) -> np.ndarray:
        return unit if self.rowpos is None or all_units else self.rowpos[unit]

    def _group_slice(self, category: int | None) -> slice:
        if category is None:
            return slice(0, len(self.g["cat"]))
        return slice(int(self.g_bounds[category]), int(self.g_bounds[category + 1]))

    def _add(
        self, out: np.ndarray, name: str, category: int | None, window: int | None, all_units: bool
    ) -> None:
        every_unit = all_units or self.rowpos is None  # the same columns: one memo entry
        flat, values, age, bounds = self._once(
            ("sums", name, every_unit, out.shape[1]), lambda: self._sums(name, every_unit, out.shape[1])
        )
        if category is not None:
            part = slice(int(bounds[category]), int(bounds[category + 1]))
            flat, values, age = flat[part], values[part], age[part]
        if window is not None:
            sel = age < window
            flat, values = flat[sel], values[sel]
        values = values.astype(out.dtype, copy=False)
        if out.flags.c_contiguous:
            np.add.at(out.reshape(-1), flat, values)
        else:
            np.add.at(out, np.unravel_index(flat, out.shape), values)

    def _sums(self, name: str, all_units: bool, n_cols: int) -> tuple[np.ndarray, ...]:
        """The nonzero signed sums of ``name`` as flat positions in an (as-of × ``n_cols``) array,
        their values and ages t − month, and the bounds of each category among them."""
        g = self.g
        sel = g[name] != 0
        col = self._columns(g["unit"][sel], all_units)
        keep = col >= 0
        cat = g["cat"][sel][keep]
        bounds = np.searchsorted(cat, np.arange(len(self.panel.categories) + 1))
        return g["a"][sel][keep] * n_cols + col[keep], g[name][sel][keep], g["age"][sel][keep], bounds

    def add_window(
        self, out: np.ndarray, variant: str, category: int | None, window: int | None, all_units: bool
    ) -> None:
        """``out`` (as-of × columns): Σ of a channel (``count``, ``escalated``, ``casualties``,
        ``severe``) over months t-window+1 … t (``window`` None: since the first month)."""
        self._add(out, variant, category, window, all_units)

    def add_open(self, out: np.ndarray, category: int | None, window: int | None, all_units: bool) -> None:
        """``out``: events open at the end of t (that occurred in the last ``window`` months)."""
        self._add(out, "open", category, window, all_units)

    # ---- what is not a sum: recomputed for the concerned cells ------------------------------------

    def drop_month_memos(self) -> None:
        """Let go of what only the kernels of month arrays read (series, months, last events, month
        tiers); the sums stay (recomputed if asked for again)."""
        for key in [k for k in self._memo if not (isinstance(k, tuple) and k[0] == "sums")]:
            del self._memo[key]

    def _once(self, key: tuple, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def _versions(self, category: int) -> dict[str, np.ndarray]:
        lo, hi = int(self.cat_bounds[category]), int(self.cat_bounds[category + 1])
        return {k: x[lo:hi] for k, x in self.v.items()}

    def _write(self, out: np.ndarray, a: np.ndarray, unit: np.ndarray, values: np.ndarray) -> None:
        col = self._columns(unit, False)
        keep = col >= 0
        out[a[keep], col[keep]] = values[keep]

    def _series(self, category: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(as-of position, unit, (M, cells) int32 monthly counts of the category as known at t; months
        after t hold the final record and are never read) of the concerned cells. The last category
        asked for is kept."""
        if self._memo.get("series_of") != category:
            # Only the cells whose monthly counts change (a later escalation alone changes none).
            part = self._group_slice(category)
            sel = self.g["count"][part] != 0
            g = {k: self.g[k][part][sel] for k in ("a", "unit", "occ", "count")}
            cells, inverse = _sorted_unique(g["a"] * self.panel.n_units + g["unit"])
            a, unit = cells // self.panel.n_units, cells % self.panel.n_units
            series = np.take(self.panel.monthly[category], unit, axis=1)  # (M, cells): a month is contiguous
            np.add.at(series, (g["occ"], inverse), g["count"].astype(series.dtype))
            self._memo["series_of"], self._memo["series"] = category, (a, unit, series)
        return self._memo["series"]

    def fix_last_event(self, out: np.ndarray, category: int) -> None:
        """``out`` (as-of × columns): the latest month ≤ t with an event, −1 if none (computed once
        per category: months since and recency both read it)."""

        def make():
            a, unit, series = self._series(category)
            n_months = series.shape[0]
            seen = series > 0
            seen &= np.arange(n_months)[:, None] <= self.t_asof[a][None, :]
            back = np.argmax(seen[::-1], axis=0)
            return a, unit, np.where(seen.any(axis=0), n_months - 1 - back, -1)

        self._write(out, *self._once(("last_event", category), make))

    def fix_decayed(self, out: np.ndarray, category: int, half_life: float) -> None:
        """``out``: Σ count·2^(-(t-o)/half_life), by the panel's own recursion (float64 → float32)."""
        a, unit, series = self._series(category)
        t = self.t_asof[a]
        factor = 2.0 ** (-1.0 / half_life)
        # Cells ordered by their as-of month: month m advances only the cells with t ≥ m (a suffix),
        # each through the same operations as the panel's filter, so the values are bit for bit.
        by_t = np.argsort(t, kind="stable")
        ordered = bool((by_t == np.arange(len(t))).all())
        if not ordered:
            t, series = t[by_t], series[:, by_t]
        starts = np.searchsorted(t, np.arange(int(t.max(initial=-1)) + 2))
        acc = np.zeros(len(t), dtype=np.float64)
        value = np.empty(len(t), dtype=np.float64)
        for m in range(len(starts) - 1):
            lo, hi = int(starts[m]), int(starts[m + 1])
            tail = acc[lo:]
            tail *= factor
            tail += series[m, lo:]
            value[lo:hi] = acc[lo:hi]
        if not ordered:
            value[by_t] = value.copy()
        self._write(out, a, unit, value.astype(np.float32))

    def _cell_events(self) -> tuple[np.ndarray, np.ndarray]:
        """The final events of the (category, month, unit) cells that hold a version, ordered by
        the panel's flat cell key: (event positions, their sorted keys)."""

        def make():
            p, v = self.panel, self.v
            r = v["reshaped"]
            cell = (v["cat"][r] * p.n_months + v["occ"][r]) * p.n_units + v["unit"][r]
            marked = np.zeros(p.monthly.size, dtype=bool)  # one byte a cell: a gather, not a hash
            marked[cell] = True
            flat = p._flat()
            inside = np.flatnonzero(marked[flat])
            keys = flat[inside]
            order = np.argsort(keys, kind="stable")
            return inside[order], keys[order]

        return self._once(("cell_events",), make)

    def _months(self, category: int) -> dict[str, np.ndarray]:
        """Per (as-of, unit, month) of the category holding a version: ``a``, ``unit``, ``occ``,
        ``key`` ((a·U + unit)·M + month, sorted), ``max_severity`` and ``open`` (an event open at the
        end of t) as known at t, and ``final_max`` / ``final_open`` of the final record."""

        return self._once(("months", category), lambda: self._months_of(category))

    def _months_of(self, category: int) -> dict[str, np.ndarray]:
        p, v = self.panel, self._versions(category)
        # The months some reshaped version touches, with every version of them (the gather
        # below sets all their stale events aside).
        key = (v["a"] * p.n_units + v["unit"]) * p.n_months + v["occ"]
        new = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
        group = np.cumsum(new) - 1
        touched = np.zeros(int(new.sum()), dtype=bool)
        np.logical_or.at(touched, group[v["reshaped"]], True)
        inside = touched[group]
        names = ("a", "unit", "occ", "t", "sign", "severity", "res")
        v, key = {k: v[k][inside] for k in names}, key[inside]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        m = {k: v[k][starts] for k in ("a", "unit", "occ", "t")}
        m["key"] = key[starts]
        plus = v["sign"] > 0
        n = len(starts)
        m["max_severity"] = np.zeros(n, dtype=np.int64)
        m["open"] = np.zeros(n, dtype=bool)
        if n:
            group = np.cumsum(np.r_[True, key[1:] != key[:-1]]) - 1
            np.maximum.at(m["max_severity"], group[plus], v["severity"][plus])
            np.logical_or.at(m["open"], group[plus], v["res"][plus] > v["t"][plus])
        # The month's final events still known as they are at t (not stale then).
        events, sorted_key = self._cell_events()
        cell = (np.int64(category) * p.n_months + m["occ"]) * p.n_units + m["unit"]
        lo = np.searchsorted(sorted_key, cell, side="left")
        hi = np.searchsorted(sorted_key, cell, side="right")
        owner = np.repeat(np.arange(n), hi - lo)
        ev = events[
            np.repeat(lo - (np.cumsum(hi - lo) - (hi - lo)), hi - lo) + np.arange(int((hi - lo).sum()))
        ]
        same = self.settled[ev] <= m["t"][owner]
        np.maximum.at(m["max_severity"], owner[same], p.ev_severity[ev[same]].astype(np.int64))
        np.logical_or.at(m["open"], owner[same], p.ev_res[ev[same]] > m["t"][owner[same]])
        m["final_max"] = p.max_severity[category][m["occ"], m["unit"]].astype(np.int64)
        m["final_open"] = p.latest_res[category][m["occ"], m["unit"]] > m["t"]
        return m

    def fix_max_severity(self, out: np.ndarray, category: int, window: int) -> None:
        """``out``: the highest severity of the events of months t-window+1 … t (0: none/unknown)."""
        m = self._months(category)
        changed = m["max_severity"] != m["final_max"]
        if not changed.any():
            return
        p = self.panel
        key, value = m["key"][changed], m["max_severity"][changed]
        cells, _ = _sorted_unique(key // p.n_months)
        a, unit = cells // p.n_units, cells % p.n_units
        months = self.t_asof[a][:, None] - np.arange(window)[None, :]
        values = p.max_severity[category][np.maximum(months, 0), unit[:, None]].astype(np.int64)
        values[months < 0] = 0
        # Each changed month replaces its value at its lag in its cell's window.
        at = np.searchsorted(cells, key // p.n_months)
        lag = self.t_asof[a[at]] - key % p.n_months
        inside = lag < window
        values[at[inside], lag[inside]] = value[inside]
        self._write(out, a, unit, values.max(axis=1))

    def fix_oldest_open(self, out: np.ndarray, category: int) -> None:
        """``out``: the occurrence month of the oldest event open at the end of t, −1 if none."""
        m = self._months(category)
        changed = m["open"] != m["final_open"]
        if not changed.any():
            return
        p = self.panel
        cells, _ = _sorted_unique(m["key"][changed] // p.n_months)
        a, unit = cells // p.n_units, cells % p.n_units
        t = self.t_asof[a]
        big = np.int64(np.iinfo(np.int32).max)
        # The oldest month with a version that is open at t …
        best = np.full(len(cells), big, dtype=np.int64)
        mine = np.searchsorted(cells, m["key"] // p.n_months)
        hit = (mine < len(cells)) & m["open"]
        hit[hit] = cells[mine[hit]] == (m["key"] // p.n_months)[hit]
        np.minimum.at(best, mine[hit], m["occ"][hit])
        # … or the oldest month without one that is open in the final record: none before the final
        # oldest open month; from it on, the first month that holds no version and is open at t.
        touched = np.sort(m["key"])
        month = p.oldest_open[category][t, unit].astype(np.int64)
        todo = np.flatnonzero(month >= 0)
        latest_res = p.latest_res[category]
        while len(todo):
            mo = month[todo]
            want = cells[todo] * p.n_months + mo
            at = np.minimum(np.searchsorted(touched, want), len(touched) - 1)
            free = touched[at] != want
            found = free & (latest_res[mo, unit[todo]] > t[todo])
            best[todo[found]] = np.minimum(best[todo[found]], mo[found])
            todo = todo[~found]
            month[todo] += 1
            todo = todo[month[todo] <= t[todo]]
        self._write(out, a, unit, np.where(best == big, -1, best))

    def add_tier_months(self, out: np.ndarray, level: int, window: int | None, tier_rules: TierRules) -> None:
        """``out`` (as-of × columns): + the change in the number of months t-window+1 … t (every
        month ≤ t when ``window`` is None) whose own tier reached ``level``."""
        g, known = self._month_tiers(tier_rules)
        final = monthly_tiers(self.panel, tier_rules)[g["occ"], g["unit"]]
        delta = (known >= level).astype(np.int64) - (final >= level)
        sel = delta != 0
        if window is not None:
            sel &= g["t"] - g["occ"] < window
        col = self._columns(g["unit"][sel], False)
        a, delta = g["a"][sel], delta[sel]
        keep = col >= 0
        np.add.at(out, (a[keep], col[keep]), delta[keep].astype(out.dtype, copy=False))

    def _month_tiers(self, tier_rules: TierRules) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The (as-of, unit, month) cells holding a version of any category, and each month's own
        tier as known at t (the final month totals plus the versions' signed totals)."""

        def make():
            # The groups whose sums change a month's outcome (a severity correction alone does not).
            p = self.panel
            sel = (self.g["count"] != 0) | (self.g["escalated"] != 0) | (self.g["casualties"] != 0)
            sel |= self.g["unresolved"] != 0
            v = {k: x[sel] for k, x in self.g.items()}
            key = (v["a"] * p.n_units + v["unit"]) * p.n_months + v["occ"]
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            g = {k: v[k][first] for k in ("a", "unit", "occ", "t")}
            outcomes = _month_outcomes(p, g["occ"], g["unit"])
            bounds = np.searchsorted(v["cat"], np.arange(len(p.categories) + 1))
            for ci, c in enumerate(p.categories):
                lo, hi = int(bounds[ci]), int(bounds[ci + 1])
                inv = inverse[lo:hi]
                np.add.at(outcomes[c], inv, v["count"][lo:hi])
                np.add.at(outcomes[f"{c}_escalated"], inv, v["escalated"][lo:hi])
                np.add.at(outcomes[f"{c}_unresolved"], inv, v["unresolved"][lo:hi])
                np.add.at(outcomes["events"], inv, v["count"][lo:hi])
                np.add.at(outcomes["casualties"], inv, v["casualties"][lo:hi])
            return g, tiers_from_outcomes(outcomes, tier_rules)

        return self._once(("month_tiers", tier_rules.model_dump_json()), make)


def _sorted_unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, index of each key among them) of an ascending int array."""
    new = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, dtype=bool)
    return keys[new], np.cumsum(new) - 1


def _month_outcomes(panel: Panel, month: np.ndarray, unit: np.ndarray) -> dict[str, np.ndarray]:
    """The final record's one-month outcome totals (as ``labels.monthly_tiers`` reads them) of the
    (month, unit) cells."""
    out: dict[str, np.ndarray] = {}
    casualties = np.zeros(len(month), dtype=np.int64)
    events = np.zeros(len(month), dtype=np.int64)
    unresolved = panel.open_within(1)
    # Flat positions in a (months, U) array: one 1-d take each is cheaper than a 2-d gather.
    at = month * panel.n_units + unit
    after = at + panel.n_units

    def change(cum: np.ndarray) -> np.ndarray:
        flat = cum.reshape(-1)
        return flat.take(after).astype(np.int64) - flat.take(at)

    for ci, c in enumerate(panel.categories):
        out[c] = panel.monthly[ci].reshape(-1).take(at).astype(np.int64)
        out[f"{c}_escalated"] = change(panel.channel("escalated", ci))
        out[f"{c}_unresolved"] = unresolved[ci].reshape(-1).take(at).astype(np.int64)
        casualties += change(panel.channel("casualties", ci))
        events += out[c]
    out["casualties"] = casualties
    out["events"] = events
    return out


def _cached(panel: Panel, key: str | tuple, make):
    if key not in panel._cache:
        panel._cache[key] = make()
    return panel._cache[key]
