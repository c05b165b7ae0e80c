"""Late records for the point-in-time tests: a random reporting process over a tiny world (late
entries, later escalations, corrections, attribute history), and the plain reference of "the records
as they stood at the end of a month", written row by row, independent of the panel's arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd


def late_records(rng: np.random.Generator, units: pd.DataFrame, events: pd.DataFrame):
    """(events with reported_at/escalated_at, event_updates, unit_history) of a tiny world: about a
    third of the events entered 1–120 days late, escalations 0–90 days after the event,
    corrections of severity, casualties, escalation, resolution and category, and a mediators
    history with a few changes per unit."""
    ev = events.copy()
    n = len(ev)
    occurred = ev["occurred_at"].to_numpy(dtype="datetime64[ns]")
    late = rng.random(n) < 0.35
    delay = np.where(late, rng.integers(1, 120, n), 0).astype("timedelta64[D]")
    ev["reported_at"] = occurred + delay
    esc = ev["escalated"].to_numpy(dtype=bool) | (rng.random(n) < 0.1)
    ev["escalated"] = esc
    esc_at = occurred + rng.integers(0, 90, n).astype("timedelta64[D]")
    ev["escalated_at"] = np.where(esc, esc_at, np.datetime64("NaT"))
    k = n // 3
    pick = rng.choice(n, k)
    fields = rng.choice(["severity", "casualties", "escalated", "resolved_at", "category", "subtype"], k)
    recorded = occurred[pick] + rng.integers(0, 150, k).astype("timedelta64[D]")
    values = []
    cats = sorted(ev["category"].unique())
    for f, i in zip(fields, pick, strict=True):
        if f == "severity":
            values.append(str(rng.integers(1, 5)))
        elif f == "casualties":
            values.append(str(rng.integers(0, 3)))
        elif f == "escalated":
            values.append("true" if rng.random() < 0.6 else "false")
        elif f == "resolved_at":
            day = pd.Timestamp(occurred[i]) + pd.Timedelta(days=int(rng.integers(0, 200)))
            values.append("" if rng.random() < 0.2 else day.strftime("%Y-%m-%d"))
        elif f == "category":
            values.append(str(rng.choice(cats)))
        else:
            values.append("其他")
    updates = pd.DataFrame(
        {
            "event_id": ev["event_id"].to_numpy()[pick],
            "field": fields,
            "value": values,
            "recorded_at": recorded,
        }
    )
    first = ev["occurred_at"].min().to_period("M").start_time
    hist = []
    for uid, med in zip(units["unit_id"], units["mediators"], strict=True):
        hist.append((uid, "mediators", f"{med:g}", first))
        for _ in range(int(rng.integers(0, 3))):
            day = first + pd.Timedelta(days=int(rng.integers(0, 900)))
            hist.append((uid, "mediators", f"{med + rng.integers(1, 4):g}", day))
    history = pd.DataFrame(hist, columns=["unit_id", "attribute", "value", "valid_from"])
    history["valid_from"] = history["valid_from"].astype("datetime64[ns]")
    return ev, updates, history


def records_at(events: pd.DataFrame, updates: pd.DataFrame, history: pd.DataFrame, month: str):
    """The records as they stood at the end of ``month`` (``'YYYY-MM'``): events reported by then,
    each with the corrections recorded by then applied in the order they were recorded, escalations
    dated after then not (yet) escalated; history entries valid by then. Returns (events, no
    updates, history)."""
    end = (pd.Period(month, "M") + 1).start_time
    ev = events[events["reported_at"] < end].copy().set_index("event_id", drop=False)
    ups = updates[updates["recorded_at"] < end].sort_values("recorded_at", kind="stable")
    for u in ups.itertuples(index=False):
        if u.event_id not in ev.index:
            continue
        if u.field == "severity":
            ev.loc[u.event_id, "severity"] = int(u.value)
        elif u.field == "casualties":
            ev.loc[u.event_id, "casualties"] = int(u.value)
        elif u.field == "escalated":
            ev.loc[u.event_id, "escalated"] = u.value == "true"
        elif u.field == "resolved_at":
            ev.loc[u.event_id, "resolved_at"] = pd.Timestamp(u.value) if u.value else pd.NaT
        elif u.field == "category":
            ev.loc[u.event_id, "category"] = u.value
    not_yet = ev["escalated_at"].notna() & (ev["escalated_at"] >= end)
    ev.loc[not_yet, "escalated"] = False
    ev.loc[not_yet, "escalated_at"] = pd.NaT
    ev = ev.reset_index(drop=True)
    none = updates.iloc[:0]
    return ev, none, history[history["valid_from"] < end].reset_index(drop=True)
