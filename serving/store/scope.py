"""The township scope of a township user: (county, township). Names such as 城关镇 repeat across
counties and are different townships, so every scoped read and write checks both, and a filter by a
township name alone is completed with its county or refused when several counties use the name."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from sanling.core.errors import DataError
from sanling.serving.store.tables import Unit


class Scope(NamedTuple):
    """The township a township user may read and write."""

    county: str
    township: str


def unit_in_scope(unit: Unit | None, scope: Scope | None) -> bool:
    """Whether ``unit`` exists and lies in ``scope`` (``None``: no restriction) — by the unit's
    *current* township, so records follow a unit that moves."""
    if unit is None:
        return False
    return scope is None or (unit.county == scope.county and unit.township == scope.township)


def scope_clause(scope: Scope) -> ColumnElement[bool]:
    """The SQL condition "the unit lies in ``scope``" over :class:`Unit` columns."""
    return and_(Unit.county == scope.county, Unit.township == scope.township)


class AmbiguousTownship(DataError):
    """A township named without its county, where that name is a township of several counties."""

    def __init__(self, township: str, counties: list[str]):
        self.township, self.counties = township, counties
        super().__init__(
            f"township {township!r} exists in {len(counties)} counties ({', '.join(counties)}): "
            "name the county too (county=…)"
        )


def resolve_place(
    session: Session, county: str | None, township: str | None
) -> tuple[str | None, str | None]:
    """The (county, township) a filter means. A township named without its county is completed with
    the one county that has a township of that name; a name several counties use raises
    :class:`AmbiguousTownship` (listing them) instead of merging their units. A name no county uses
    is returned as it is (it matches nothing)."""
    if township is None or county is not None:
        return county, township
    counties = list(
        session.scalars(select(Unit.county).where(Unit.township == township).distinct().order_by(Unit.county))
    )
    if len(counties) > 1:
        raise AmbiguousTownship(township, counties)
    return (counties[0] if counties else None), township
