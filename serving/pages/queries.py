"""The store reads and writes behind the pages, over the serving store's SQLAlchemy models.

Every function takes the ``Session`` and the signed-in :class:`PagePrincipal`; the township scope is
applied here, in SQL, so no page can forget it. A unit outside a township user's scope raises
:class:`RecordNotFound` — exactly what a unit that does not exist raises (the pages answer 404 to
both). Writes (follow-ups, 排查责任人) add an ``audit`` row with the before/after values."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from sanling.core.vocabulary import TIER_ZH, TIERS, UNIT_TYPE_ZH
from sanling.serving.pages.auth import PagePrincipal
from sanling.serving.store import followups, outcomes, scores, units
from sanling.serving.store.errors import RecordNotFound
from sanling.serving.store.scope import scope_clause
from sanling.serving.store.tables import (
    FOLLOWUP_STATUSES,
    EventMonth,
    Followup,
    ObservedTier,
    OpenEvent,
    Score,
    ScoreRun,
    Unit,
)

NOT_SCREENED = "未排查"
FOLLOWUP_FIELDS: tuple[str, ...] = ("screened_on", "person", "findings", "measures", "status", "deadline")


@dataclass(frozen=True)
class Run:
    """One scored month: the as-of date and the model version whose scores the pages show."""

    as_of: str
    model_version: str


@dataclass(frozen=True)
class ListFilters:
    county: str | None = None
    township: str | None = None
    tier: str | None = None  # minimum tier: red | orange | yellow
    unit_type: str | None = None
    status: str | None = None  # a follow-up status or 未排查
    q: str | None = None


# --- scope --------------------------------------------------------------------------------------


def _scoped_units(stmt: Select, p: PagePrincipal) -> Select:
    """``stmt`` restricted to the units of the principal's (county, township); analysts see all."""
    scope = p.scope
    return stmt.where(scope_clause(scope)) if scope is not None else stmt


def _listed(stmt: Select, p: PagePrincipal) -> Select:
    """As :func:`_scoped_units`, and only units still in their registry (an inactive unit keeps its
    page and history but leaves lists, counts and bulletins)."""
    return _scoped_units(stmt, p).where(Unit.active.is_(True))


def get_unit(session: Session, p: PagePrincipal, unit_id: str) -> Unit:
    """The unit, if it exists and lies within the principal's scope; else :class:`RecordNotFound`."""
    unit = session.scalar(_scoped_units(select(Unit).where(Unit.unit_id == unit_id), p))
    if unit is None:
        raise RecordNotFound(f"unit {unit_id!r} not found")
    return unit


def places(session: Session, p: PagePrincipal) -> list[tuple[str, str]]:
    """(county, township) pairs within scope, sorted — the selectors' options."""
    stmt = _listed(select(Unit.county, Unit.township).distinct(), p).order_by(Unit.county, Unit.township)
    return [(c, t) for c, t in session.execute(stmt)]


# --- runs ---------------------------------------------------------------------------------------


def current_run(session: Session, as_of: str | None = None) -> Run | None:
    """The run the pages show for ``as_of`` (default: the latest scored month) — the store's choice,
    the most recent run of that month; ``None`` when nothing is scored."""
    run = scores.current_run(session, as_of=as_of)
    return Run(run.as_of, run.model_version) if run else None


def previous_run(session: Session, run: Run) -> Run | None:
    """The run of the latest month before ``run`` (the comparison month), or ``None``."""
    row = session.execute(
        select(ScoreRun.as_of, ScoreRun.model_version)
        .where(ScoreRun.as_of < run.as_of)
        .order_by(ScoreRun.as_of.desc(), ScoreRun.id.desc())
        .limit(1)
    ).first()
    return Run(row[0], row[1]) if row else None


def scored_months(session: Session) -> list[str]:
    """Every scored month, latest first."""
    return [m for (m,) in session.execute(select(ScoreRun.as_of).distinct().order_by(ScoreRun.as_of.desc()))]


# --- the risk list ------------------------------------------------------------------------------


def _latest_followup_ids():
    return select(func.max(Followup.id).label("fid"), Followup.unit_id).group_by(Followup.unit_id).subquery()


def change_of(tier: str, prev_tier: str | None, has_prev_run: bool) -> tuple[str, str, str]:
    """(css class, symbol, title) of a unit's tier change since the previous month."""
    if not has_prev_run:
        return "same", "—", "无上月评分"
    if prev_tier is None:
        return "new", "新", "上月未列入评分"
    d = TIERS.index(tier) - TIERS.index(prev_tier)
    if d > 0:
        return "up", "↑", f"较上月{TIER_ZH[prev_tier]}色升级"
    if d < 0:
        return "down", "↓", f"较上月{TIER_ZH[prev_tier]}色降级"
    return "same", "—", "等级未变"


def risk_rows(
    session: Session,
    p: PagePrincipal,
    run: Run,
    prev: Run | None,
    f: ListFilters,
    limit: int = 50,
    offset: int = 0,
    n_reasons: int = 3,
) -> tuple[list[dict], int]:
    """The filtered risk list of ``run``, ordered by tier (red first), then risk (highest first): one
    page of rows and the total. Each row: unit fields, tier, risk_score, P(red) and its ratio to the
    peers', prev_tier, the first ``n_reasons`` reason texts, responsible_person, status (latest
    follow-up's, or 未排查) and latest followup id."""
    prev_s = aliased(Score)
    latest = _latest_followup_ids()
    stmt = (
        select(Unit, Score, prev_s.tier, Followup.status, Followup.id)
        .join(
            Score,
            and_(
                Score.unit_id == Unit.unit_id,
                Score.as_of == run.as_of,
                Score.model_version == run.model_version,
            ),
        )
        .outerjoin(latest, latest.c.unit_id == Unit.unit_id)
        .outerjoin(Followup, Followup.id == latest.c.fid)
    )
    if prev is not None:
        stmt = stmt.outerjoin(
            prev_s,
            and_(
                prev_s.unit_id == Unit.unit_id,
                prev_s.as_of == prev.as_of,
                prev_s.model_version == prev.model_version,
            ),
        )
    else:
        stmt = stmt.outerjoin(prev_s, and_(prev_s.unit_id == Unit.unit_id, prev_s.as_of.is_(None)))
    stmt = _listed(stmt, p)
    if f.county:
        stmt = stmt.where(Unit.county == f.county)
    if f.township:
        stmt = stmt.where(Unit.township == f.township)
    if f.tier in TIERS:
        stmt = stmt.where(Score.tier.in_(TIERS[TIERS.index(f.tier) :]))
    if f.unit_type:
        stmt = stmt.where(Unit.unit_type == f.unit_type)
    if f.status == NOT_SCREENED:
        stmt = stmt.where(Followup.id.is_(None))
    elif f.status in FOLLOWUP_STATUSES:
        stmt = stmt.where(Followup.status == f.status)
    if f.q:
        stmt = stmt.where(
            or_(Unit.unit_name.contains(f.q.strip(), autoescape=True), Unit.unit_id == f.q.strip())
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = (scores.tier_rank(Score.tier).desc(), Score.risk_score.desc(), Unit.unit_id)
    page = session.execute(stmt.order_by(*order).limit(limit).offset(offset))
    rows = []
    for unit, score, prev_tier, status, fid in page:
        rows.append(
            {
                "unit_id": unit.unit_id,
                "unit_name": unit.unit_name,
                "unit_type": unit.unit_type,
                "unit_type_zh": UNIT_TYPE_ZH.get(unit.unit_type, unit.unit_type),
                "township": unit.township,
                "county": unit.county,
                "tier": score.tier,
                "risk_score": float(score.risk_score),
                "p_red": float(score.p_red),
                "relative_red": score.relative_red,
                "prev_tier": prev_tier,
                "reasons": [r.get("text_zh", "") for r in (score.reasons or [])[:n_reasons]],
                "responsible_person": unit.responsible_person,
                "status": status or NOT_SCREENED,
                "followup_id": fid,
            }
        )
    return rows, int(total)


def tier_counts(
    session: Session, p: PagePrincipal, run: Run, county: str | None = None, township: str | None = None
) -> dict[str, int]:
    """Units per tier of ``run`` within scope (and the county/township chosen)."""
    stmt = _listed(
        select(Score.tier, func.count())
        .join(Unit, Unit.unit_id == Score.unit_id)
        .where(Score.as_of == run.as_of, Score.model_version == run.model_version),
        p,
    )
    if county:
        stmt = stmt.where(Unit.county == county)
    if township:
        stmt = stmt.where(Unit.township == township)
    counts = dict(session.execute(stmt.group_by(Score.tier)).all())
    return {t: int(counts.get(t, 0)) for t in TIERS}


# --- one unit -----------------------------------------------------------------------------------


def unit_score(session: Session, unit_id: str, run: Run | None) -> Score | None:
    if run is None:
        return None
    return session.get(Score, (unit_id, run.as_of, run.model_version))


def tier_history(session: Session, unit_id: str, months: list[str]) -> dict[str, str]:
    """``YYYY-MM`` → tier over ``months``; where several model versions scored a month, the latest wins."""
    rows = session.execute(
        select(Score.as_of, Score.tier)
        .where(Score.unit_id == unit_id, Score.as_of.in_(months))
        .order_by(Score.as_of, Score.created_at)
    )
    return {m: t for m, t in rows}


def observed_tiers(session: Session, unit_id: str, months: list[str]) -> dict[str, str]:
    """``YYYY-MM`` → the tier the unit's window after that month then met (closed windows only)."""
    return outcomes.observed_for(session, unit_id, months)


def red_hits(
    session: Session, p: PagePrincipal, run: Run, county: str | None = None, township: str | None = None
) -> tuple[int, int | None]:
    """Of ``run``'s red warnings within scope (and the county/township chosen): how many units were
    warned red and how many of them then met red (``None`` while that window is still open)."""
    warned = _listed(
        select(Score.unit_id, ObservedTier.tier)
        .join(Unit, Unit.unit_id == Score.unit_id)
        .outerjoin(ObservedTier, and_(ObservedTier.unit_id == Score.unit_id, ObservedTier.as_of == run.as_of))
        .where(Score.as_of == run.as_of, Score.model_version == run.model_version, Score.tier == "red"),
        p,
    )
    if county:
        warned = warned.where(Unit.county == county)
    if township:
        warned = warned.where(Unit.township == township)
    rows = session.execute(warned).all()
    if rows and all(t is None for _, t in rows):
        return len(rows), None
    return len(rows), sum(t == "red" for _, t in rows)


def event_month_rows(session: Session, unit_id: str, months: list[str]) -> list[dict]:
    rows = session.execute(
        select(EventMonth.month, EventMonth.category, EventMonth.n).where(
            EventMonth.unit_id == unit_id, EventMonth.month.in_(months)
        )
    )
    return [{"month": m, "category": c, "n": n} for m, c, n in rows]


def open_events(session: Session, unit_id: str) -> list[OpenEvent]:
    return list(
        session.scalars(
            select(OpenEvent).where(OpenEvent.unit_id == unit_id).order_by(OpenEvent.occurred_at.desc())
        )
    )


def unit_followups(session: Session, unit_id: str) -> list[Followup]:
    return list(
        session.scalars(
            select(Followup)
            .where(Followup.unit_id == unit_id)
            .order_by(Followup.screened_on.desc(), Followup.id.desc())
        )
    )


# --- writes, with audit -------------------------------------------------------------------------


def get_followup(session: Session, p: PagePrincipal, followup_id: int) -> dict:
    """The follow-up, if within scope (township users: their own township only)."""
    fu = followups.get_followup(session, followup_id, scope=p.scope)
    if fu is None:
        raise RecordNotFound(f"follow-up {followup_id} not found")
    return fu


def create_followup(session: Session, p: PagePrincipal, unit_id: str, values: dict) -> dict:
    """Record a screening of a unit (values: :data:`FOLLOWUP_FIELDS`); the store audits it."""
    return followups.create_followup(session, unit_id, actor=p.actor, scope=p.scope, **values)


def update_followup(session: Session, p: PagePrincipal, followup_id: int, values: dict) -> dict:
    """Change a follow-up within scope; the store audits the changed fields before and after."""
    return followups.update_followup(session, followup_id, actor=p.actor, scope=p.scope, **values)


def set_responsible(session: Session, p: PagePrincipal, unit_id: str, person: str | None) -> dict:
    """Set a unit's 排查责任人 within scope (the store audits it with before/after)."""
    return units.set_responsible_person(session, unit_id, person, actor=p.actor, scope=p.scope)


# --- bulletin and province inputs ---------------------------------------------------------------


def county_score_rows(session: Session, p: PagePrincipal, county: str, run: Run) -> list[dict]:
    """The county's scores of ``run`` (within scope) as dicts for :func:`bulletin.build_bulletin`."""
    stmt = _listed(
        select(
            Unit.unit_id,
            Unit.unit_name,
            Unit.unit_type,
            Unit.township,
            Score.tier,
            Score.risk_score,
            Score.reasons,
        )
        .join(
            Score,
            and_(
                Score.unit_id == Unit.unit_id,
                Score.as_of == run.as_of,
                Score.model_version == run.model_version,
            ),
        )
        .where(Unit.county == county),
        p,
    )
    return [dict(r._mapping) for r in session.execute(stmt)]


def latest_followup_rows(session: Session, p: PagePrincipal, county: str) -> list[dict]:
    """The latest follow-up (``unit_id, status``) of each unit of the county within scope."""
    latest = _latest_followup_ids()
    stmt = _scoped_units(
        select(Followup.unit_id, Followup.status)
        .join(latest, latest.c.fid == Followup.id)
        .join(Unit, Unit.unit_id == Followup.unit_id)
        .where(Unit.county == county),
        p,
    )
    return [dict(r._mapping) for r in session.execute(stmt)]


def province_frames(session: Session, months: list[str]):
    """(units, event_months) as DataFrames for :func:`achievement.achievement_rates`, restricted to the
    red-rule categories and ``months``."""
    import pandas as pd

    from sanling.serving.pages.achievement import RED_RULE_CATEGORIES

    unit_frame = pd.DataFrame(
        session.execute(select(Unit.unit_id, Unit.unit_type, Unit.city).where(Unit.active.is_(True))).all(),
        columns=["unit_id", "unit_type", "city"],
    )
    ev = pd.DataFrame(
        session.execute(
            select(EventMonth.unit_id, EventMonth.month, EventMonth.category, EventMonth.n).where(
                EventMonth.category.in_(RED_RULE_CATEGORIES), EventMonth.month.in_(months), EventMonth.n > 0
            )
        ).all(),
        columns=["unit_id", "month", "category", "n"],
    )
    return unit_frame, ev.astype({"unit_id": str, "month": str, "category": str, "n": "int64"})
