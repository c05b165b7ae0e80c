"""Score runs and explained scores: written by ``sanling score``, read by the API and the pages.

A *run* is one (as_of, model_version) scoring of every unit. Re-scoring the same pair replaces it;
other months stay as history, which gives "change since last month". When several model versions
scored the same month, readers use the most recent run of that month.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, Select, bindparam, case, delete, insert, select
from sqlalchemy.orm import Session

from sanling.core.errors import DataError
from sanling.core.vocabulary import TIER_ZH, TIERS
from sanling.serving.store.db import BULK
from sanling.serving.store.tables import Score, ScoreRun, Unit, utcnow

AS_OF = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_REASON_KEYS = ("feature", "value", "contribution", "text_zh", "group")
_RANK = {t: i for i, t in enumerate(TIERS)}
_CHUNK = 5000


def _plain(v: Any) -> Any:
    """A JSON-safe Python value: numpy scalars unwrapped, NaN → None."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _factors(items: Any) -> list[dict]:
    return [{k: _plain(f.get(k)) for k in _REASON_KEYS if k in f} for f in (items or [])]


def _score_record(row: dict, as_of: str, version: str, now) -> dict:
    probs = row.get("probabilities") or {t: row.get(f"p_{t}") for t in TIERS}
    tier = row.get("tier")
    if tier not in _RANK:
        raise DataError(
            f"score for unit {row.get('unit_id')!r}: tier {tier!r} is not one of {', '.join(TIERS)}"
        )
    rec = {
        "unit_id": str(row["unit_id"]),
        "as_of": as_of,
        "model_version": version,
        "tier": tier,
        "risk_score": float(row["risk_score"]),
        "reasons": _factors(row.get("reasons")),
        "protective": _factors(row.get("protective")),
        "created_at": now,
    }
    for t in TIERS:
        rec[f"p_{t}"] = float(probs[t])
    rr = row.get("relative_risk") or {}
    rec["relative_red"] = _ratio(rr.get("red"))
    rec["relative_orange"] = _ratio(rr.get("orange_or_worse"))
    tier_set = row.get("tier_set")
    if tier_set is not None and any(t not in _RANK for t in tier_set):
        raise DataError(
            f"score for unit {row.get('unit_id')!r}: tier_set {tier_set!r} holds a tier outside {TIERS}"
        )
    rec["tier_set"] = None if tier_set is None else [str(t) for t in tier_set]
    effort = row.get("reporting_intensity")
    rec["reporting"] = None if effort is None else {k: _plain(v) for k, v in effort.items()}
    rec["late_records"] = _late_records(row.get("late_records"), row.get("unit_id"))
    return rec


_LATE_KEYS = ("events", "escalations", "corrections", "window_months")


def _late_records(value: Any, unit_id: Any) -> dict | None:
    """The score's ``late_records`` counts as plain non-negative ints (None when absent)."""
    if value is None:
        return None
    out = {}
    for k in _LATE_KEYS:
        v = _plain(value.get(k, 0))
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise DataError(f"score for unit {unit_id!r}: late_records.{k} {v!r} is not a count")
        out[k] = v
    return out


def _ratio(v: Any) -> float | None:
    v = _plain(v)
    return None if v is None else float(v)


def save_scores(session: Session, run: dict, rows: list[dict]) -> int:
    """Store one scoring run and its explained scores; returns the run id.

    ``run``: ``as_of`` (YYYY-MM), ``model_version``, optional ``data_dir``, ``drift_warnings`` (list of
    str). ``rows``: one dict per unit with ``unit_id``, ``tier``, ``risk_score``, the probabilities
    either as ``probabilities={"blue": …}`` or ``p_blue`` … ``p_red``, and ``reasons`` /
    ``protective`` lists of ``{"feature","value","contribution","text_zh","group"}``; optionally
    ``relative_risk`` ``{"red", "orange_or_worse"}``, ``tier_set`` (tier names) and ``late_records``
    ``{"events", "escalations", "corrections", "window_months"}``. ``run["backfilled"]``
    marks a month scored after the fact (the forecast history). An earlier run of the same
    (as_of, model_version) is replaced — with ``data_dir``, only for the folder's current units and
    ``rows`` (upsert the units with ``source=data_dir`` first), so several data folders share one
    store; other months are kept.
    """
    as_of, version = str(run.get("as_of", "")), str(run.get("model_version", ""))
    if not AS_OF.match(as_of):
        raise DataError(f"score run: as_of {as_of!r} is not YYYY-MM")
    if not version:
        raise DataError("score run: model_version is empty")
    now = utcnow()
    records = [_score_record(r, as_of, version, now) for r in rows]
    same_run = (Score.as_of == as_of) & (Score.model_version == version)
    source = run.get("data_dir")
    if source is None:
        session.execute(delete(Score).where(same_run), execution_options=BULK)
        session.execute(
            delete(ScoreRun).where(ScoreRun.as_of == as_of, ScoreRun.model_version == version),
            execution_options=BULK,
        )
    else:
        # One store, several data folders: replace only this folder's units (those it scored before,
        # which ``upsert_units`` tagged with the folder, and those in ``rows``); keep the others'.
        source = str(source)
        of_source = select(Unit.unit_id).where(Unit.source == source, Unit.active.is_(True))
        session.execute(delete(Score).where(same_run, Score.unit_id.in_(of_source)), execution_options=BULK)
        ids = [r["unit_id"] for r in records]
        for i in range(0, len(ids), _CHUNK):
            session.execute(
                delete(Score).where(same_run, Score.unit_id.in_(ids[i : i + _CHUNK])), execution_options=BULK
            )
        session.execute(
            delete(ScoreRun).where(
                ScoreRun.as_of == as_of, ScoreRun.model_version == version, ScoreRun.data_dir == source
            )
        )
    score_run = ScoreRun(
        as_of=as_of,
        model_version=version,
        data_dir=None if run.get("data_dir") is None else str(run["data_dir"]),
        n_units=len(records),
        created_at=now,
        drift_warnings=[str(w) for w in run.get("drift_warnings") or []],
        backfilled=bool(run.get("backfilled", False)),
    )
    session.add(score_run)
    for i in range(0, len(records), _CHUNK):
        session.execute(insert(Score), records[i : i + _CHUNK])
    session.flush()
    return score_run.id


def append_scores(session: Session, run_id: int, rows: list[dict]) -> int:
    """Add explained scores to a run that :func:`save_scores` opened (with the first batch or none):
    a scorer that receives a month's scores in batches writes each as it arrives. Returns the run's
    number of units so far."""
    run = session.get(ScoreRun, run_id)
    if run is None:
        raise DataError(f"score run {run_id} does not exist")
    now = utcnow()
    records = [_score_record(r, run.as_of, run.model_version, now) for r in rows]
    for i in range(0, len(records), _CHUNK):
        session.execute(insert(Score), records[i : i + _CHUNK])
    run.n_units = (run.n_units or 0) + len(records)
    session.flush()
    return run.n_units


def current_run(
    session: Session, as_of: str | None = None, model_version: str | None = None
) -> ScoreRun | None:
    """The run readers use: the most recent run of ``as_of`` (default: the latest month scored)."""
    q = select(ScoreRun).order_by(ScoreRun.as_of.desc(), ScoreRun.id.desc()).limit(1)
    if as_of is not None:
        q = q.where(ScoreRun.as_of == as_of)
    if model_version is not None:
        q = q.where(ScoreRun.model_version == model_version)
    return session.scalars(q).first()


def _previous_run(session: Session, as_of: str) -> ScoreRun | None:
    q = (
        select(ScoreRun)
        .where(ScoreRun.as_of < as_of)
        .order_by(ScoreRun.as_of.desc(), ScoreRun.id.desc())
        .limit(1)
    )
    return session.scalars(q).first()


def latest_as_of(session: Session, model_version: str | None = None) -> str | None:
    """The latest month with stored scores (of ``model_version`` if given), or ``None``."""
    run = current_run(session, model_version=model_version)
    return run.as_of if run else None


def run_dict(run: ScoreRun) -> dict:
    return {
        "id": run.id,
        "as_of": run.as_of,
        "model_version": run.model_version,
        "data_dir": run.data_dir,
        "n_units": run.n_units,
        "created_at": run.created_at,
        "drift_warnings": list(run.drift_warnings or []),
        "backfilled": bool(run.backfilled),
    }


def scored_months(session: Session, data_dir: str | None = None) -> list[str]:
    """Every month with a stored run (any model version), oldest first — of one data folder when
    ``data_dir`` is given (another folder's history says nothing about this one's)."""
    q = select(ScoreRun.as_of).distinct().order_by(ScoreRun.as_of)
    if data_dir is not None:
        q = q.where(ScoreRun.data_dir == str(data_dir))
    return [m for (m,) in session.execute(q)]


def latest_run(session: Session) -> dict | None:
    """The latest scoring run (month, model version, drift warnings …) as a dict, or ``None``."""
    run = current_run(session)
    return run_dict(run) if run else None


def list_runs(session: Session) -> list[dict]:
    """Every stored run, newest month first."""
    q = select(ScoreRun).order_by(ScoreRun.as_of.desc(), ScoreRun.id.desc())
    return [run_dict(r) for r in session.scalars(q)]


def _change(tier: str, prev_tier: str | None) -> str:
    if prev_tier is None:
        return "new"
    d = _RANK[tier] - _RANK.get(prev_tier, _RANK[tier])
    return "up" if d > 0 else "down" if d < 0 else "same"


def explained(score: Any, unit: Any, prev_tier: str | None = None, prev_risk: float | None = None) -> dict:
    """The docs/operations.md explained score (plus unit_type, county, protective, responsible person, the
    change since the previous month — ``change`` is up / down / same by tier, or new — the relative
    risk against the unit's peers and the conformal tier set)."""
    return {
        "unit_id": unit.unit_id,
        "unit_name": unit.unit_name,
        "unit_type": unit.unit_type,
        "township": unit.township,
        "county": unit.county,
        "as_of": score.as_of,
        "tier": score.tier,
        "tier_zh": TIER_ZH[score.tier],
        "risk_score": score.risk_score,
        "probabilities": {  # spelt out: getattr on built names cost a fifth of a list's rows
            "blue": score.p_blue,
            "yellow": score.p_yellow,
            "orange": score.p_orange,
            "red": score.p_red,
        },
        "reasons": score.reasons or [],
        "protective": score.protective or [],
        "model_version": score.model_version,
        "responsible_person": unit.responsible_person,
        "previous_tier": prev_tier,
        "previous_risk_score": prev_risk,
        "risk_score_change": None if prev_risk is None else round(score.risk_score - prev_risk, 4),
        "change": _change(score.tier, prev_tier),
        "relative_risk": {"red": score.relative_red, "orange_or_worse": score.relative_orange},
        "tier_set": score.tier_set,
        "reporting_intensity": score.reporting,
        "late_records": score.late_records,
    }


def tier_rank(column: Any) -> Any:
    """SQL: the tier's rank (blue 0 … red 3), for lists ordered by tier first (red first)."""
    return case(_RANK, value=column, else_=-1)


def previous_score(session: Session, unit_id: str, as_of: str) -> dict | None:
    """The unit's score in the latest run before ``as_of`` (``as_of``, ``tier``, ``risk_score``,
    ``model_version``), or ``None`` when it has none."""
    run = _previous_run(session, as_of)
    if run is None:
        return None
    s = session.get(Score, (unit_id, run.as_of, run.model_version))
    if s is None:
        return None
    return {"as_of": s.as_of, "tier": s.tier, "risk_score": s.risk_score, "model_version": s.model_version}


def _run_and_previous(by_month: bool) -> tuple[Any, Any, Any, Any]:
    """``(cur, cur_id, prev, prev_id)``: aliases of ``score_runs`` for the run readers use and the
    latest run of an earlier month, and the scalar subqueries that pick their ids — the run readers
    use is the latest (of ``:as_of`` when ``by_month``); join ``cur`` on ``cur_id``, ``prev`` on
    ``prev_id`` (correlated with ``cur``)."""
    runs, cur, earlier, prev = (ScoreRun.__table__.alias(n) for n in ("r", "cur", "earlier", "prev_run"))
    cur_id = select(runs.c.id).order_by(runs.c.as_of.desc(), runs.c.id.desc()).limit(1)
    if by_month:
        cur_id = cur_id.where(runs.c.as_of == bindparam("as_of"))
    prev_id = (
        select(earlier.c.id)
        .where(earlier.c.as_of < cur.c.as_of)
        .order_by(earlier.c.as_of.desc(), earlier.c.id.desc())
        .limit(1)
        .correlate(cur)
        .scalar_subquery()
    )
    return cur, cur_id.scalar_subquery(), prev, prev_id


@lru_cache(maxsize=8)
def _unit_statement(by_month: bool, by_township: bool, by_county: bool = False) -> Select:
    """The single-unit read as one statement, built once per filter combination (building SQLAlchemy
    statements costs more than running them): the unit's score in the run readers use, its unit row,
    and its score in the latest run of an earlier month — one round trip."""
    s, u, p = Score.__table__, Unit.__table__, Score.__table__.alias("prev")
    cur, cur_id, prev_run, prev_id = _run_and_previous(by_month)
    q = (
        select(
            *s.c,
            *(c for c in u.c if c.name not in s.c),
            p.c.tier.label("prev_tier"),
            p.c.risk_score.label("prev_risk"),
        )
        .select_from(s)
        .join(
            cur,
            (cur.c.id == cur_id) & (cur.c.as_of == s.c.as_of) & (cur.c.model_version == s.c.model_version),
        )
        .join(u, u.c.unit_id == s.c.unit_id)
        .outerjoin(prev_run, prev_run.c.id == prev_id)
        .outerjoin(
            p,
            (p.c.unit_id == s.c.unit_id)
            & (p.c.as_of == prev_run.c.as_of)
            & (p.c.model_version == prev_run.c.model_version),
        )
        .where(s.c.unit_id == bindparam("unit_id"))
    )
    if by_township:
        q = q.where(u.c.township == bindparam("township"))
    if by_county:
        q = q.where(u.c.county == bindparam("county"))
    return q


def get_score(
    session: Session,
    unit_id: str,
    as_of: str | None = None,
    township: str | None = None,
    county: str | None = None,
) -> dict | None:
    """One unit's explained score at ``as_of`` (default: the latest month), or ``None`` when there is
    none — also when the unit lies outside ``township`` (and ``county``: a township is the pair),
    which must look the same to the caller."""
    params = {"unit_id": unit_id}
    if as_of is not None:
        params["as_of"] = as_of
    if township is not None:
        params["township"] = township
    if county is not None:
        params["county"] = county
    statement = _unit_statement(as_of is not None, township is not None, county is not None)
    row = session.execute(statement, params).first()
    if row is None:
        return None
    return explained(row, row, row.prev_tier, row.prev_risk)


def unit_history(session: Session, unit_id: str) -> list[dict]:
    """The unit's score per month (the most recent run of each month), oldest first."""
    q = (
        select(Score.as_of, Score.model_version, Score.tier, Score.risk_score, ScoreRun.id)
        .join(ScoreRun, (ScoreRun.as_of == Score.as_of) & (ScoreRun.model_version == Score.model_version))
        .where(Score.unit_id == unit_id)
        .order_by(Score.as_of, ScoreRun.id)
    )
    by_month: dict[str, dict] = {}
    for as_of, version, tier, risk, _ in session.execute(q):
        by_month[as_of] = {"as_of": as_of, "model_version": version, "tier": tier, "risk_score": risk}
    return list(by_month.values())


def risk_list(
    session: Session,
    township: str | None = None,
    county: str | None = None,
    min_tier: str | None = None,
    unit_type: str | None = None,
    limit: int | None = 100,
    as_of: str | None = None,
    offset: int = 0,
) -> list[dict]:
    """Explained scores of one month (default: the latest), filtered, ordered by tier (red first), then
    risk_score descending (ties by unit_id), with the previous month's tier joined in. ``limit=None``
    returns all."""
    if min_tier is not None and min_tier not in _RANK:
        raise DataError(f"min_tier {min_tier!r} is not one of {', '.join(TIERS)}")
    runs = session.execute(_runs_statement(as_of is not None), {"as_of": as_of}).first()
    if runs is None:
        return []
    params = {
        "as_of": runs.as_of,
        "version": runs.model_version,
        "prev_as_of": runs.prev_as_of or "",
        "prev_version": runs.prev_version or "",
        "offset": offset,
        "limit": 2**31 - 1 if limit is None else limit,
    }
    filters = {"township": township, "county": county, "unit_type": unit_type}
    params.update({k: v for k, v in filters.items() if v is not None})
    tiers = None if min_tier is None else TIERS[_RANK[min_tier] :]
    if tiers is not None:
        params["tiers"] = list(tiers)
    q = _list_statement(*(v is not None for v in filters.values()), tiers is not None)
    return [explained(row, row, row.prev_tier, row.prev_risk) for row in session.execute(q, params).all()]


@lru_cache(maxsize=2)
def _runs_statement(by_month: bool) -> Select:
    """The run readers use (the latest, or the latest of ``:as_of``) and the latest run of an earlier
    month, as one prebuilt statement: ``as_of, model_version, prev_as_of, prev_version``."""
    cur, cur_id, prev, prev_id = _run_and_previous(by_month)
    return (
        select(
            cur.c.as_of,
            cur.c.model_version,
            prev.c.as_of.label("prev_as_of"),
            prev.c.model_version.label("prev_version"),
        )
        .select_from(cur)
        .outerjoin(prev, prev.c.id == prev_id)
        .where(cur.c.id == cur_id)
    )


_LIST_UNIT_COLUMNS = ("unit_name", "unit_type", "township", "county", "responsible_person")


@lru_cache(maxsize=32)
def _list_statement(by_township: bool, by_county: bool, by_unit_type: bool, by_tier: bool) -> Select:
    """The risk list as one Core statement of only the columns shown, built once per filter
    combination: ORM instances and unused columns cost more than the query itself (measured:
    a township list of 50 went from 3.7 ms to well under half of it)."""
    s, u, p = Score.__table__, Unit.__table__, Score.__table__.alias("prev")
    q = (
        select(
            *(c for c in s.c if c.name != "created_at"),
            *(u.c[n] for n in _LIST_UNIT_COLUMNS),
            p.c.tier.label("prev_tier"),
            p.c.risk_score.label("prev_risk"),
        )
        .select_from(s)
        .join(u, u.c.unit_id == s.c.unit_id)
        .outerjoin(
            p,
            (p.c.unit_id == s.c.unit_id)
            & (p.c.as_of == bindparam("prev_as_of"))
            & (p.c.model_version == bindparam("prev_version")),
        )
        .where(s.c.as_of == bindparam("as_of"), s.c.model_version == bindparam("version"))
        .where(u.c.active.is_(True))  # units that left their registry leave the lists
    )
    if by_township:
        q = q.where(u.c.township == bindparam("township"))
    if by_county:
        q = q.where(u.c.county == bindparam("county"))
    if by_unit_type:
        q = q.where(u.c.unit_type == bindparam("unit_type"))
    if by_tier:
        q = q.where(s.c.tier.in_(bindparam("tiers", expanding=True)))
    return (
        q.order_by(tier_rank(s.c.tier).desc(), s.c.risk_score.desc(), s.c.unit_id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
