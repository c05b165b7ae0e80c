"""What then happened: the observed tier of each unit's forecast window, per as-of month — the other
half of the forecast-vs-outcome history on the unit pages and in ``GET /v1/units/{id}/risk``.

Written by every ``sanling score`` run from the final record (a later run revises a month whose
late reports arrived since); a month whose window is still open has no row, and reads as ``None``.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from sanling.core.errors import DataError
from sanling.core.vocabulary import TIERS
from sanling.serving.store.db import BULK, insert_rows
from sanling.serving.store.tables import ObservedTier, Score, ScoreRun, Unit


def replace_observed_tiers(
    session: Session, rows: list[tuple[str, str, str]], source: str | None = None
) -> int:
    """Replace the table with ``rows`` of (unit_id, as_of YYYY-MM, tier); returns the rows written.
    With ``source`` (a data folder, after ``upsert_units(..., source=...)``) only that folder's units'
    rows are replaced, so scoring another folder keeps this one's outcomes."""
    _check_tiers(rows)  # before clearing: rows that fail leave the table as it was, in any session
    clear_observed_tiers(session, source)
    return append_observed_tiers(session, rows)


def clear_observed_tiers(session: Session, source: str | None = None) -> None:
    """Delete the rows :func:`replace_observed_tiers` replaces; :func:`append_observed_tiers` then
    writes the new ones in batches, in the same transaction (``score --dask``: one per partition)."""
    if source is None:
        session.execute(delete(ObservedTier), execution_options=BULK)
    else:
        of_source = select(Unit.unit_id).where(Unit.source == str(source))
        session.execute(
            delete(ObservedTier).where(ObservedTier.unit_id.in_(of_source)), execution_options=BULK
        )


def append_observed_tiers(session: Session, rows: list[tuple[str, str, str]]) -> int:
    """Insert ``rows`` after :func:`clear_observed_tiers`; returns the rows written."""
    _check_tiers(rows)
    return insert_rows(
        session, ObservedTier.__table__, ("unit_id", "as_of", "tier"), [tuple(r) for r in rows]
    )


def _check_tiers(rows: list[tuple[str, str, str]]) -> None:
    bad = next((r for r in rows if r[2] not in TIERS), None)
    if bad is not None:
        raise DataError(
            f"observed tier for unit {bad[0]!r} at {bad[1]}: {bad[2]!r} is not one of {', '.join(TIERS)}"
        )


# Built once (it runs on every GET of a unit): building the statement cost more than running it.
_S, _R, _O = Score.__table__, ScoreRun.__table__, ObservedTier.__table__
_HISTORY = (
    select(_S.c.as_of, _S.c.tier, _O.c.tier)
    .join(_R, (_R.c.as_of == _S.c.as_of) & (_R.c.model_version == _S.c.model_version))
    .outerjoin(_O, (_O.c.unit_id == _S.c.unit_id) & (_O.c.as_of == _S.c.as_of))
    .where(_S.c.unit_id == bindparam("unit_id"), _S.c.as_of < bindparam("before"))
    .order_by(_S.c.as_of, _R.c.id)
)


def forecast_history(session: Session, unit_id: str, before: str, months: int = 24) -> list[dict]:
    """Up to ``months`` scored months before ``before``, oldest first: ``{"as_of", "tier",
    "observed_tier"}`` — the forecast of the most recent run of each month and what then happened
    (``None`` while the window is open)."""
    by_month: dict[str, dict] = {}
    for as_of, tier, observed in session.execute(_HISTORY, {"unit_id": unit_id, "before": before}).all():
        by_month[as_of] = {"as_of": as_of, "tier": tier, "observed_tier": observed}
    return list(by_month.values())[-months:]


def observed_for(session: Session, unit_id: str, months: list[str]) -> dict[str, str]:
    """``YYYY-MM`` → observed tier of the unit over ``months`` (months with an open window absent)."""
    q = select(ObservedTier.as_of, ObservedTier.tier).where(
        ObservedTier.unit_id == unit_id, ObservedTier.as_of.in_(months)
    )
    return dict(session.execute(q).all())
