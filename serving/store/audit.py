"""The audit trail: who changed, exported or signed in to what, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sanling.serving.store.tables import Audit, utcnow


def record_audit(
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one audit row (``action``: create, update, delete, login, export, promote …) to the session."""
    session.add(
        Audit(
            at=utcnow(),
            actor=actor,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            detail=detail or {},
        )
    )


def list_audit(
    session: Session, entity: str | None = None, entity_id: str | int | None = None, limit: int = 200
) -> list[dict]:
    """Audit rows, newest first, optionally for one entity (table) and id."""
    q = select(Audit).order_by(Audit.id.desc()).limit(limit)
    if entity is not None:
        q = q.where(Audit.entity == entity)
    if entity_id is not None:
        q = q.where(Audit.entity_id == str(entity_id))
    return [
        {
            "id": a.id,
            "at": a.at,
            "actor": a.actor,
            "action": a.action,
            "entity": a.entity,
            "entity_id": a.entity_id,
            "detail": a.detail,
        }
        for a in session.scalars(q)
    ]
