"""The unit registry in the store: upserted by ``sanling score``; the responsible person is edited by
township staff and survives every re-import."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sanling.core.errors import DataError
from sanling.core.text import clean_text
from sanling.core.vocabulary import UNIT_REQUIRED
from sanling.serving.store.audit import record_audit
from sanling.serving.store.errors import RecordNotFound
from sanling.serving.store.scope import Scope, scope_clause, unit_in_scope
from sanling.serving.store.tables import Unit, utcnow

_CHUNK = 5000


def _column(frame: pd.DataFrame, name: str) -> list:
    return frame[name].astype("string").to_numpy(dtype=object, na_value=None).tolist()


def upsert_units(session: Session, units: pd.DataFrame, source: str | None = None) -> int:
    """Insert or update units from the normalised registry (docs/data-contract.md columns).

    Takes the units frame (extra columns ignored) and the data folder it came from; returns the
    number of rows written. Every unit written is active. With ``source``, the units that folder
    listed before and lists no longer are marked inactive: they leave the lists, while their
    scores, events and follow-ups stay. The ``responsible_person`` typed in by staff is kept unless
    the frame carries that column.
    """
    missing = [c for c in UNIT_REQUIRED if c not in units.columns]
    if missing:
        raise DataError(f"units table for the store lacks column(s): {', '.join(missing)}")
    cols = list(UNIT_REQUIRED) + (["responsible_person"] if "responsible_person" in units.columns else [])
    values = {c: _column(units, c) for c in cols}
    if any(v is None for v in values["unit_id"]):
        raise DataError("units table for the store has an empty unit_id")
    now = utcnow()
    records = [
        dict(zip(cols, row, strict=True), updated_at=now, source=source, active=True)
        for row in zip(*values.values(), strict=True)
    ]
    if not records:
        return 0
    _write(session, records, cols)
    if source is not None:
        # Every unit of this upsert carries ``now``: the folder's older rows are the ones it dropped.
        session.execute(
            update(Unit)
            .where(Unit.source == source, Unit.updated_at < now, Unit.active.is_(True))
            .values(active=False)
        )
    return len(records)


def _write(session: Session, records: list[dict], cols: list[str]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # any other backend: slower, but correct
        for r in records:
            session.merge(Unit(**r))
        session.flush()
        return
    stmt = insert(Unit)
    changed = {c: stmt.excluded[c] for c in [*cols[1:], "updated_at", "source", "active"]}
    stmt = stmt.on_conflict_do_update(index_elements=["unit_id"], set_=changed)
    for i in range(0, len(records), _CHUNK):
        session.execute(stmt, records[i : i + _CHUNK])


def get_unit(session: Session, unit_id: str, scope: Scope | None = None) -> dict | None:
    """One unit's registry row as a dict, or ``None`` if it does not exist (or is outside ``scope``)."""
    unit = session.get(Unit, unit_id)
    if not unit_in_scope(unit, scope):
        return None
    return unit_dict(unit)


def unit_dict(unit: Unit) -> dict:
    return {
        "unit_id": unit.unit_id,
        "unit_name": unit.unit_name,
        "unit_type": unit.unit_type,
        "township": unit.township,
        "county": unit.county,
        "city": unit.city,
        "responsible_person": unit.responsible_person,
        "updated_at": unit.updated_at,
    }


def existing_unit_ids(session: Session, unit_ids: list[str], scope: Scope | None = None) -> set[str]:
    """Which of ``unit_ids`` exist (and, with ``scope``, lie in that county's township)."""
    found: set[str] = set()
    for i in range(0, len(unit_ids), _CHUNK):
        q = select(Unit.unit_id).where(Unit.unit_id.in_(unit_ids[i : i + _CHUNK]))
        if scope is not None:
            q = q.where(scope_clause(scope))
        found.update(session.scalars(q))
    return found


def list_townships(session: Session, county: str | None = None) -> list[dict]:
    """Distinct (city, county, township) triples, sorted — for the analysts' selectors."""
    q = (
        select(Unit.city, Unit.county, Unit.township)
        .distinct()
        .order_by(Unit.city, Unit.county, Unit.township)
    )
    if county is not None:
        q = q.where(Unit.county == county)
    return [{"city": c, "county": k, "township": t} for c, k, t in session.execute(q)]


def set_responsible_person(
    session: Session, unit_id: str, person: str | None, *, actor: str, scope: Scope | None = None
) -> dict:
    """Set a unit's 排查责任人 (audited). ``scope`` restricts the edit to that township's units;
    outside it the unit is :class:`RecordNotFound`, like a missing one."""
    unit = session.get(Unit, unit_id)
    if not unit_in_scope(unit, scope):
        raise RecordNotFound(f"unit {unit_id!r} not found")
    person = clean_text(person or "", multiline=False).strip() or None
    before = unit.responsible_person
    unit.responsible_person = person
    unit.updated_at = utcnow()
    record_audit(
        session,
        actor,
        "update",
        "units",
        unit_id,
        {"before": {"responsible_person": before}, "after": {"responsible_person": person}},
    )
    session.flush()
    return unit_dict(unit)
