"""The store's tables (SQLAlchemy 2 declarative). The schema is shared with the pages and the
pipeline's ``score`` job — keep the names. Changes go through a new Alembic revision in
``serving/store/migrations/versions``; a test checks the migrations and these models agree."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

FOLLOWUP_STATUSES: tuple[str, ...] = ("待排查", "排查中", "已整改", "误报")
ROLES: tuple[str, ...] = ("analyst", "service", "township")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (Index("ix_units_county_township", "county", "township"),)

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_name: Mapped[str] = mapped_column(String(200))
    unit_type: Mapped[str] = mapped_column(String(16))
    township: Mapped[str] = mapped_column(String(100), index=True)
    county: Mapped[str] = mapped_column(String(100), index=True)
    city: Mapped[str] = mapped_column(String(100))
    responsible_person: Mapped[str | None] = mapped_column(String(100))  # 排查责任人, edited by staff
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The data folder the unit was last scored from, and whether that folder's registry still holds
    # it: a unit that left the registry keeps its history but leaves the lists.
    source: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class ScoreRun(Base):
    __tablename__ = "score_runs"
    __table_args__ = (Index("ix_score_runs_as_of_model_version", "as_of", "model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[str] = mapped_column(String(7))
    model_version: Mapped[str] = mapped_column(String(64))
    data_dir: Mapped[str | None] = mapped_column(Text)
    n_units: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    drift_warnings: Mapped[list] = mapped_column(JSON, default=list)
    # A month scored after the fact by ``sanling score``'s first run, for the forecast history.
    backfilled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (
        # The risk list reads one run sorted by risk: this index serves the filter and the order.
        Index("ix_scores_as_of_model_version_risk_score", "as_of", "model_version", "risk_score"),
        Index("ix_scores_unit_id", "unit_id"),
    )

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[str] = mapped_column(String(7), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    p_blue: Mapped[float] = mapped_column(Float)
    p_yellow: Mapped[float] = mapped_column(Float)
    p_orange: Mapped[float] = mapped_column(Float)
    p_red: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(8))
    risk_score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    protective: Mapped[list] = mapped_column(JSON, default=list)
    # P(red) and P(≥ orange) over the mean of the same unit type in the same county that month.
    relative_red: Mapped[float | None] = mapped_column(Float)
    relative_orange: Mapped[float | None] = mapped_column(Float)
    tier_set: Mapped[list | None] = mapped_column(JSON)  # conformal set of tiers, lowest first
    reporting: Mapped[dict | None] = mapped_column(JSON)  # reporting intensity against the peers
    # What the unit's figures held that was recorded after the fact: {"events", "escalations",
    # "corrections", "window_months"} (None when the data carry no reporting dates).
    late_records: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ObservedTier(Base):
    """The tier a unit's forecast window then met, per as-of month (closed windows only)."""

    __tablename__ = "observed_tiers"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[str] = mapped_column(String(7), primary_key=True)
    tier: Mapped[str] = mapped_column(String(8))


class EventMonth(Base):
    __tablename__ = "event_months"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class OpenEvent(Base):
    __tablename__ = "open_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(64))
    subtype: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime)
    severity: Mapped[int | None] = mapped_column(Integer)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    township: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    county: Mapped[str | None] = mapped_column(String(100))  # a township is (county, township)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PageSession(Base):
    """A sign-in to the pages: ended by logout, bound to the token's hash (not only its id)."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's session id
    token_id: Mapped[int] = mapped_column(Integer, ForeignKey("tokens.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Followup(Base):
    """双排查 / 整治清单: one screening of a unit and what was done about it."""

    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(String(64), ForeignKey("units.unit_id"), index=True)
    township: Mapped[str] = mapped_column(String(100), index=True)
    screened_on: Mapped[date | None] = mapped_column(Date)
    person: Mapped[str | None] = mapped_column(String(100))
    findings: Mapped[str | None] = mapped_column(Text)
    measures: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="待排查")
    deadline: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Audit(Base):
    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_entity_entity_id", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
