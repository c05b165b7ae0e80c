"""What a unit page says about figures that changed after the fact (含补录事件N起): per unit and
as-of month, the events, escalations and corrections in its figures that were recorded after the
month they belong to (:mod:`.known`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.features.declaration import YEAR_WINDOW
from sanling.features.grid import as_of_offsets
from sanling.features.panel import Panel

LATE_COUNT_KEYS: tuple[str, ...] = ("events", "escalations", "corrections")


def late_counts(panel: Panel, t: int, window: int) -> dict[str, np.ndarray]:
    """Per unit (registry order), about the events that occurred in months t-window+1 … t and were in
    the records at the end of t: ``events`` — Σ count of those entered in a later month than they
    occurred (补录); ``escalations`` — Σ count of those escalated by then with the escalation dated in
    a later month than the event; ``corrections`` — the corrections (``event_updates``) of those
    recorded by then in a later month than the event. (U,) int64 arrays, all zero when nothing was
    recorded late. Memoised on the panel per (t, window)."""

    def make() -> dict[str, np.ndarray]:
        out = {k: np.zeros(panel.n_units, dtype=np.int64) for k in LATE_COUNT_KEYS}
        knowledge = panel.knowledge
        if knowledge is None:
            return out
        occ = knowledge.base.occ.astype(np.int64)
        event = np.flatnonzero((occ <= t) & (occ > t - window) & (knowledge.reported <= t))
        month = np.full(len(event), t, dtype=np.int64)
        known = knowledge.known_values(event, month)
        unit, count = knowledge.base.unit[event], knowledge.base.count[event].astype(np.int64)
        late = knowledge.reported[event] > occ[event]
        np.add.at(out["events"], unit[late], count[late])
        esc = known["escalated"] & (knowledge.escalated_from[event] > occ[event])
        np.add.at(out["escalations"], unit[esc], count[esc])
        if len(knowledge.upd_event):
            in_window = np.zeros(len(occ), dtype=bool)
            in_window[event] = True
            e = knowledge.upd_event
            sel = in_window[e] & (knowledge.upd_month <= t) & (knowledge.upd_month > occ[e])
            np.add.at(out["corrections"], knowledge.base.unit[e[sel]], 1)
        return out

    return panel._memo(("late_counts", int(t), int(window)), make)


def late_records(
    panel: Panel, as_of: str, unit_ids: Sequence[str], window: int = YEAR_WINDOW
) -> list[dict] | None:
    """For each of ``unit_ids``, :func:`late_counts` of the as-of month ``'YYYY-MM'`` as
    ``{"events", "escalations", "corrections", "window_months"}`` (what a unit page says changed after
    the fact); ``None`` when the data carry no reporting dates, later escalations or corrections."""
    if panel.knowledge is None:
        return None
    counts = late_counts(panel, int(as_of_offsets(panel, [as_of])[0]), window)
    index = pd.Index(panel.units["unit_id"].to_numpy(dtype=object))
    pos = index.get_indexer(pd.Index(list(unit_ids), dtype=object))
    if (pos < 0).any():
        raise DataError(f"unknown unit_id {list(unit_ids)[int(np.flatnonzero(pos < 0)[0])]!r}")
    return [
        {**{k: int(counts[k][p]) for k in LATE_COUNT_KEYS}, "window_months": int(window)}
        for p in pos.tolist()
    ]
