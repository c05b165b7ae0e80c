"""Monthly event counts and still-open events, shown on the unit pages; replaced by every ``score`` run."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from sanling.core.errors import DataError
from sanling.serving.store.db import BULK, insert_rows
from sanling.serving.store.tables import EventMonth, OpenEvent, Unit

_CHUNK = 5000
EVENT_MONTH_COLUMNS = ("unit_id", "month", "category", "n")
OPEN_EVENT_COLUMNS = ("event_id", "unit_id", "category", "subtype", "occurred_at", "severity", "escalated")


def _require(frame: pd.DataFrame, cols: tuple[str, ...], what: str, optional: tuple[str, ...] = ()) -> None:
    missing = [c for c in cols if c not in frame.columns and c not in optional]
    if missing:
        raise DataError(f"{what} for the store lacks column(s): {', '.join(missing)}")


def _strings(s: pd.Series) -> list:
    return s.astype("string").to_numpy(dtype=object, na_value=None).tolist()


def _datetimes(s: pd.Series) -> list[datetime | None]:
    ts = pd.to_datetime(s)
    return [None if pd.isna(t) else t.to_pydatetime() for t in ts]


def replace_event_history(
    session: Session, event_months: pd.DataFrame, open_events: pd.DataFrame, source: str | None = None
) -> tuple[int, int]:
    """Replace both tables' rows with the given frames; returns the rows written (event_months,
    open_events). With ``source`` (a data folder, after ``upsert_units(..., source=...)``) only the
    rows of that folder's units are replaced, so scoring another folder keeps this one's history;
    without it, everything is.

    ``event_months``: unit_id, month (YYYY-MM), category, n. ``open_events``: event_id, unit_id,
    category, subtype, occurred_at, severity, escalated (subtype/severity/escalated optional).
    """
    _require(event_months, EVENT_MONTH_COLUMNS, "event_months")
    _require(open_events, OPEN_EVENT_COLUMNS, "open_events", optional=("subtype", "severity", "escalated"))
    clear_event_history(session, source)  # only after the checks: frames that fail leave the tables
    return append_event_history(session, event_months, open_events, source)


def clear_event_history(session: Session, source: str | None = None) -> None:
    """Delete the rows :func:`replace_event_history` replaces; :func:`append_event_history` then
    writes the new ones in batches, in the same transaction (``score --dask``: one per partition)."""
    if source is None:
        session.execute(delete(EventMonth), execution_options=BULK)
        session.execute(delete(OpenEvent), execution_options=BULK)
    else:
        # The folder's current units only: a unit that left its registry keeps its history.
        of_source = select(Unit.unit_id).where(Unit.source == str(source), Unit.active.is_(True))
        session.execute(delete(EventMonth).where(EventMonth.unit_id.in_(of_source)), execution_options=BULK)
        session.execute(delete(OpenEvent).where(OpenEvent.unit_id.in_(of_source)), execution_options=BULK)


def append_event_history(
    session: Session, event_months: pd.DataFrame, open_events: pd.DataFrame, source: str | None = None
) -> tuple[int, int]:
    """Insert a batch after :func:`clear_event_history`; returns the rows written. With ``source``,
    an open event of the same id loaded from another folder is replaced (an event id is unique
    across folders only by convention: the newest load wins)."""
    _require(event_months, EVENT_MONTH_COLUMNS, "event_months")
    _require(open_events, OPEN_EVENT_COLUMNS, "open_events", optional=("subtype", "severity", "escalated"))
    if source is not None:
        ids = _strings(open_events["event_id"]) if len(open_events) else []
        for i in range(0, len(ids), _CHUNK):
            session.execute(
                delete(OpenEvent).where(OpenEvent.event_id.in_(ids[i : i + _CHUNK])), execution_options=BULK
            )
    months = list(
        zip(
            _strings(event_months["unit_id"]),
            _strings(event_months["month"]),
            _strings(event_months["category"]),
            event_months["n"].astype("int64").to_numpy().tolist(),
            strict=True,
        )
    )
    k = len(open_events)
    sev = open_events["severity"] if "severity" in open_events else pd.Series([None] * k, dtype=object)
    esc = open_events["escalated"] if "escalated" in open_events else pd.Series([False] * k)
    sub = open_events["subtype"] if "subtype" in open_events else pd.Series([None] * k, dtype=object)
    opens = [
        {
            "event_id": e,
            "unit_id": u,
            "category": c,
            "subtype": s,
            "occurred_at": t,
            "severity": None if pd.isna(v) else int(v),
            "escalated": bool(x) if not pd.isna(x) else False,
        }
        for e, u, c, s, t, v, x in zip(
            _strings(open_events["event_id"]),
            _strings(open_events["unit_id"]),
            _strings(open_events["category"]),
            _strings(sub),
            _datetimes(open_events["occurred_at"]),
            sev.tolist(),
            esc.tolist(),
            strict=True,
        )
    ]
    insert_rows(session, EventMonth.__table__, ("unit_id", "month", "category", "n"), months)
    for i in range(0, len(opens), _CHUNK):
        session.execute(insert(OpenEvent), opens[i : i + _CHUNK])
    return len(months), len(opens)


def event_months_for(session: Session, unit_id: str) -> list[dict]:
    """The unit's monthly event counts, oldest month first."""
    q = (
        select(EventMonth)
        .where(EventMonth.unit_id == unit_id)
        .order_by(EventMonth.month, EventMonth.category)
    )
    return [{"month": r.month, "category": r.category, "n": r.n} for r in session.scalars(q)]


def open_events_for(session: Session, unit_id: str) -> list[dict]:
    """The unit's disputes and hazards still open at the as-of date, oldest first."""
    q = select(OpenEvent).where(OpenEvent.unit_id == unit_id).order_by(OpenEvent.occurred_at)
    return [
        {
            "event_id": r.event_id,
            "category": r.category,
            "subtype": r.subtype,
            "occurred_at": r.occurred_at,
            "severity": r.severity,
            "escalated": r.escalated,
        }
        for r in session.scalars(q)
    ]
