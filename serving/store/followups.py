"""双排查 / 整治清单: staff record each screening of a unit and its rectification. Every create, update
and delete writes an audit row with the values before and after."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sanling.core.errors import DataError
from sanling.core.text import clean_text
from sanling.serving.store.audit import record_audit
from sanling.serving.store.errors import RecordNotFound
from sanling.serving.store.scope import Scope, scope_clause, unit_in_scope
from sanling.serving.store.tables import FOLLOWUP_STATUSES, Followup, Unit, utcnow

EDITABLE = ("screened_on", "person", "findings", "measures", "status", "deadline")
_CHUNK = 5000


def _date(value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise DataError(f"follow-up {field}: {value!r} is not a date (YYYY-MM-DD)") from None


def _clean(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise DataError(f"follow-up: unknown field(s) {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for k, v in changes.items():
        if k in ("screened_on", "deadline"):
            out[k] = _date(v, k)
        elif k == "status":
            if v not in FOLLOWUP_STATUSES:
                raise DataError(f"follow-up status {v!r} is not one of {', '.join(FOLLOWUP_STATUSES)}")
            out[k] = v
        else:  # free text: control characters out (Word pastes \x0b), see sanling.core.text
            v = None if v is None else clean_text(str(v), multiline=k != "person").strip()
            out[k] = v or None
    return out


def followup_dict(f: Followup) -> dict:
    return {
        "id": f.id,
        "unit_id": f.unit_id,
        "township": f.township,
        "screened_on": f.screened_on,
        "person": f.person,
        "findings": f.findings,
        "measures": f.measures,
        "status": f.status,
        "deadline": f.deadline,
        "created_by": f.created_by,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
    }


def _jsonable(d: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in d.items()}


def _get(session: Session, followup_id: int, scope: Scope | None) -> Followup:
    # Scoped by the unit's *current* township: after a unit moves, its records move with it.
    f = session.get(Followup, followup_id)
    if f is None or (scope is not None and not unit_in_scope(session.get(Unit, f.unit_id), scope)):
        raise RecordNotFound(f"follow-up {followup_id} not found")
    return f


def create_followup(
    session: Session, unit_id: str, *, actor: str, scope: Scope | None = None, **fields: Any
) -> dict:
    """Record a screening of ``unit_id`` (fields: screened_on, person, findings, measures, status,
    deadline); returns it as a dict. ``scope`` restricts to that township's units (others are
    :class:`RecordNotFound`, like missing ones). The follow-up takes the unit's township."""
    unit = session.get(Unit, unit_id)
    if not unit_in_scope(unit, scope):
        raise RecordNotFound(f"unit {unit_id!r} not found")
    values = _clean({"status": "待排查", **fields})
    now = utcnow()
    f = Followup(
        unit_id=unit_id, township=unit.township, created_by=actor, created_at=now, updated_at=now, **values
    )
    session.add(f)
    session.flush()
    record_audit(
        session, actor, "create", "followups", f.id, {"unit_id": unit_id, "after": _jsonable(values)}
    )
    return followup_dict(f)


def update_followup(
    session: Session, followup_id: int, *, actor: str, scope: Scope | None = None, **changes: Any
) -> dict:
    """Change some fields of a follow-up; returns it. Audits only what actually changed (before/after)."""
    f = _get(session, followup_id, scope)
    values = _clean(changes)
    before = {k: getattr(f, k) for k in values if getattr(f, k) != values[k]}
    after = {k: values[k] for k in before}
    if before:
        for k, v in after.items():
            setattr(f, k, v)
        f.updated_at = utcnow()
        record_audit(
            session,
            actor,
            "update",
            "followups",
            f.id,
            {"unit_id": f.unit_id, "before": _jsonable(before), "after": _jsonable(after)},
        )
        session.flush()
    return followup_dict(f)


def delete_followup(session: Session, followup_id: int, *, actor: str, scope: Scope | None = None) -> None:
    """Delete a follow-up, keeping its last values in the audit trail."""
    f = _get(session, followup_id, scope)
    record_audit(
        session,
        actor,
        "delete",
        "followups",
        f.id,
        {"unit_id": f.unit_id, "before": _jsonable({k: getattr(f, k) for k in EDITABLE})},
    )
    session.delete(f)
    session.flush()


def get_followup(session: Session, followup_id: int, scope: Scope | None = None) -> dict | None:
    """The follow-up as a dict, or ``None`` when it does not exist or its unit is outside ``scope``."""
    try:
        return followup_dict(_get(session, followup_id, scope))
    except RecordNotFound:
        return None


def list_followups(
    session: Session,
    scope: Scope | None = None,
    unit_id: str | None = None,
    status: str | None = None,
    limit: int | None = 500,
) -> list[dict]:
    """Follow-ups, newest screening first, filtered by scope (the unit's current township), unit
    and status."""
    q = select(Followup).order_by(Followup.screened_on.desc().nulls_last(), Followup.id.desc())
    if scope is not None:
        q = q.join(Unit, Unit.unit_id == Followup.unit_id).where(scope_clause(scope))
    if unit_id is not None:
        q = q.where(Followup.unit_id == unit_id)
    if status is not None:
        q = q.where(Followup.status == status)
    if limit is not None:
        q = q.limit(limit)
    return [followup_dict(f) for f in session.scalars(q)]


def latest_followups(
    session: Session, unit_ids: list[str] | None = None, scope: Scope | None = None
) -> dict[str, dict]:
    """The most recently recorded follow-up of each unit (within ``scope``): ``{unit_id: followup}``."""
    latest = select(func.max(Followup.id))
    if scope is not None:
        latest = latest.join(Unit, Unit.unit_id == Followup.unit_id).where(scope_clause(scope))
    ids: list[int] = []
    if unit_ids is None:
        ids = list(session.scalars(latest.group_by(Followup.unit_id)))
    else:
        for i in range(0, len(unit_ids), _CHUNK):
            chunk = latest.where(Followup.unit_id.in_(unit_ids[i : i + _CHUNK])).group_by(Followup.unit_id)
            ids.extend(session.scalars(chunk))
    out: dict[str, dict] = {}
    for i in range(0, len(ids), _CHUNK):
        for f in session.scalars(select(Followup).where(Followup.id.in_(ids[i : i + _CHUNK]))):
            out[f.unit_id] = followup_dict(f)
    return out
