"""Reading stored scores: one unit, the risk list, and the list as an Excel 台账.

Township tokens see their own township only: another township's unit is 404 exactly like a missing
one, and a risk list asked for another township is 404 (``township 'X' not found``). A township name
that several counties use needs its county (``county=``): alone it is 422, naming the counties."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Response

from sanling.serving.api.deps import CallerDep, PrincipalDep, SessionDep
from sanling.serving.api.schemas import (
    AS_OF_PATTERN,
    ERROR_RESPONSES,
    ExplainedScore,
    Tier,
    UnitRisk,
    UnitType,
)
from sanling.serving.ledger import write_ledger
from sanling.serving.store.audit import record_audit
from sanling.serving.store.followups import latest_followups
from sanling.serving.store.outcomes import forecast_history
from sanling.serving.store.scope import resolve_place
from sanling.serving.store.scores import current_run, get_score, risk_list
from sanling.serving.store.tokens import Principal

router = APIRouter(prefix="/v1", tags=["risk"], responses=ERROR_RESPONSES)

AsOf = Annotated[
    str | None, Query(pattern=AS_OF_PATTERN, description="YYYY-MM; default the latest scored month")
]
MAX_LIST = 10_000
HISTORY_MONTHS = 24


def _check_month(session, as_of: str | None) -> None:
    if as_of is not None and current_run(session, as_of) is None:
        raise HTTPException(404, f"no scores for as_of {as_of}")


def _place(
    session, principal: Principal, county: str | None, township: str | None
) -> tuple[str | None, str | None]:
    """The (county, township) a list is restricted to: a township token's own, whatever it asks for
    (asking for another township or county is 404, as if it did not exist); for the other roles the
    place asked for, a township named alone completed with its county — or 422 listing the counties
    when several have a township of that name, rather than one list of all of them."""
    own = principal.scope
    if own is None:
        return resolve_place(session, county, township)
    if (township is not None and township != own.township) or (county is not None and county != own.county):
        raise HTTPException(404, f"township {township or county!r} not found")
    return own.county, own.township


@router.get("/units/{unit_id}/risk", response_model=UnitRisk)
async def unit_risk(unit_id: str, caller: CallerDep, as_of: AsOf = None) -> dict:
    """One unit's explained score (docs/operations.md), with its change since the previous month and
    ``history``: up to 24 earlier months of forecast tier and observed tier."""
    return await caller.run(_unit_risk, unit_id, as_of)


def _unit_risk(session, principal: Principal, unit_id: str, as_of: str | None) -> dict:
    _check_month(session, as_of)
    own = principal.scope
    score = get_score(
        session,
        unit_id,
        as_of=as_of,
        township=own.township if own else None,
        county=own.county if own else None,
    )
    if score is None:
        raise HTTPException(404, f"unit {unit_id!r} not found")
    score["history"] = forecast_history(session, unit_id, before=score["as_of"], months=HISTORY_MONTHS)
    return score


def _list(session, principal: Principal, township, county, min_tier, unit_type, limit, as_of) -> list[dict]:
    _check_month(session, as_of)
    county, township = _place(session, principal, county, township)
    return risk_list(
        session,
        township=township,
        county=county,
        min_tier=min_tier,
        unit_type=unit_type,
        limit=limit,
        as_of=as_of,
    )


@router.get("/risk-list", response_model=list[ExplainedScore])
async def get_risk_list(
    caller: CallerDep,
    township: str | None = None,
    county: str | None = None,
    min_tier: Tier | None = None,
    unit_type: UnitType | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    as_of: AsOf = None,
) -> list[dict]:
    """Units ordered by tier (red first), then risk_score (highest first), explained; filter by
    ``county=`` and/or ``township=``; an empty list before the first ``score`` run."""
    return await caller.run(_list, township, county, min_tier, unit_type, limit, as_of)


@router.get(
    "/risk-list.xlsx",
    response_class=Response,
    responses={200: {"content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}},
)
def get_risk_ledger(
    principal: PrincipalDep,
    session: SessionDep,
    township: str | None = None,
    county: str | None = None,
    min_tier: Tier | None = None,
    unit_type: UnitType | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = MAX_LIST,
    as_of: AsOf = None,
) -> Response:
    """The same list as an Excel 台账 with each unit's latest follow-up; named ``台账_<县区><乡镇>_<as_of>.xlsx``."""
    rows = _list(session, principal, township, county, min_tier, unit_type, limit, as_of)
    county, scope = _place(session, principal, county, township)
    month = rows[0]["as_of"] if rows else (as_of or "")
    followups = latest_followups(session, [r["unit_id"] for r in rows]) if rows else {}
    place = f"{county or ''}{scope}" if scope else (county or "全部")
    title = f"{place}风险隐患排查整治台账（{month}）"
    data = write_ledger(rows, followups, title=title)
    record_audit(
        session,
        principal.actor,
        "export",
        "scores",
        None,
        {
            "format": "xlsx",
            "township": scope,
            "county": county,
            "min_tier": min_tier,
            "unit_type": unit_type,
            "as_of": month,
            "rows": len(rows),
        },
    )
    filename = f"台账_{place}_{month}.xlsx"
    disposition = f"attachment; filename=\"ledger_{month}.xlsx\"; filename*=UTF-8''{quote(filename)}"
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )
