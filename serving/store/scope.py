"""The township scope of a township user: (county, township). Names such as 城关镇 repeat across
counties and are different townships, so every scoped read and write checks both."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import ColumnElement, and_

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
