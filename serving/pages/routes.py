"""The township staff pages (docs/operations.md ``GET /``): sign-in, the risk list, unit pages, follow-up
records, the monthly bulletin and the province view. Server-rendered Jinja2, Chinese throughout,
no external resources. The store work lives in :mod:`serving.pages.queries`; this module only parses
requests, checks the session and CSRF, and renders."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from sanling.core.months import months_back
from sanling.core.vocabulary import CATEGORIES_ZH, TIER_COLOURS, TIER_ZH, TIERS, UNIT_TYPE_ZH, UNIT_TYPES
from sanling.serving.api.deps import SessionDep
from sanling.serving.pages import queries as q
from sanling.serving.pages.auth import (
    LOGIN_CSRF_COOKIE,
    PagePrincipal,
    csrf_for_session,
    csrf_ok,
    new_login_csrf,
    principal_from_request,
    principal_from_token,
)
from sanling.serving.pages.charts import (
    contribution_chart,
    event_grid,
    tier_strip_svg,
)
from sanling.serving.pages.wording import (
    hits_sentence,
    intensity_sentence,
    late_records_note,
    record_sentence,
    relative_sentence,
    tier_set_text,
)
from sanling.serving.security import SESSION_COOKIE, SESSION_MAX_AGE, read_session, sign_session
from sanling.serving.store.audit import record_audit
from sanling.serving.store.errors import RecordNotFound
from sanling.serving.store.scope import AmbiguousTownship, resolve_place
from sanling.serving.store.sessions import end_session, open_session
from sanling.serving.store.tables import FOLLOWUP_STATUSES

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["tier_colours"] = TIER_COLOURS  # one palette: the CSS variables come from it
router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
# Numbers from the URL are bounded, so a huge one is a 422 and never reaches SQL (an overflow, a 500).
MAX_PAGE = 100_000
FollowupId = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
HISTORY_MONTHS = 24
SEVERITY_ZH = {1: "一般", 2: "较大", 3: "重大", 4: "特别重大"}
# Pages render only local resources; inline styles are used for chart widths.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# --- plumbing -----------------------------------------------------------------------------------

DB = SessionDep


def _signed_in(request: Request, session: DB) -> PagePrincipal:
    p = principal_from_request(request, session)
    if p is None:
        # 303 to the sign-in form; the default handler keeps the Location header.
        raise HTTPException(status_code=303, headers={"Location": "/login"})
    return p


User = Annotated[PagePrincipal, Depends(_signed_in)]


def _pct(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def render(request: Request, name: str, p: PagePrincipal | None, status: int = 200, **ctx) -> HTMLResponse:
    cookie = request.cookies.get(SESSION_COOKIE)
    if "csrf" not in ctx:
        ctx["csrf"] = csrf_for_session(cookie, request.app.state.secret_key) if (cookie and p) else ""
    resp = templates.TemplateResponse(request, name, {"principal": p, "pct": _pct, **ctx}, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def not_found(request: Request, p: PagePrincipal | None) -> HTMLResponse:
    """The 404 page — the same for a unit that does not exist and one outside the user's township."""
    return render(
        request,
        "error.html",
        p,
        status=404,
        title="未找到",
        heading="未找到该页面或单位",
        message="该单位不存在，或不在您的管辖范围内。",
    )


def forbidden_csrf(request: Request, p: PagePrincipal | None) -> HTMLResponse:
    return render(
        request,
        "error.html",
        p,
        status=403,
        title="请求被拒绝",
        heading="请求被拒绝",
        message="表单已过期或来源不明（CSRF 校验失败）。请返回页面后重新提交。",
    )


@router.get("/static/pages/{path:path}", name="pages_static")
def pages_static(path: str) -> FileResponse:
    target = (STATIC / path).resolve()
    if not target.is_file() or STATIC.resolve() not in target.parents:
        raise HTTPException(status_code=404)
    return FileResponse(target, headers={"Cache-Control": "public, max-age=3600"})


# --- sign-in ------------------------------------------------------------------------------------


def _login_form(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    token = new_login_csrf()
    resp = render(request, "login.html", None, status=status, title="登录", csrf=token, error=error)
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=_cookie_secure(request),
        max_age=3600,
    )
    return resp


def _cookie_secure(request: Request) -> bool:
    settings = getattr(request.app.state, "settings", None)
    return bool(getattr(settings, "cookie_secure", False))


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, session: DB) -> Response:
    if principal_from_request(request, session) is not None:
        return RedirectResponse("/list", status_code=303)
    return _login_form(request)


@router.post("/login")
def login(
    request: Request, session: DB, token: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
) -> Response:
    if not csrf_ok(request, csrf_token, login=True):
        return _login_form(request, "登录表单已过期，请重试。", status=403)
    p, reason = principal_from_token(session, token)
    if p is None:
        return _login_form(request, reason, status=401)
    record_audit(session, p.actor, "login", "tokens", p.token_id, {"via": "pages"})
    session_id = open_session(session, p.token_id, SESSION_MAX_AGE)
    session.commit()
    resp = RedirectResponse("/list", status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        sign_session(session_id, request.app.state.secret_key),
        httponly=True,
        samesite="lax",
        secure=_cookie_secure(request),
        max_age=SESSION_MAX_AGE,
        path="/",
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout(request: Request, session: DB, p: User, csrf_token: Annotated[str, Form()] = "") -> Response:
    if not csrf_ok(request, csrf_token):
        return forbidden_csrf(request, p)
    # Ended on the server: a copy of the cookie is worth nothing afterwards.
    end_session(
        session, read_session(request.cookies.get(SESSION_COOKIE), request.app.state.secret_key) or ""
    )
    session.commit()
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# --- the risk list ------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
@router.get("/list", response_class=HTMLResponse)
def risk_list_page(
    request: Request,
    session: DB,
    p: User,
    county: str = "",
    township: str = "",
    tier: str = "",
    unit_type: str = "",
    status: str = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    as_of: str = "",
) -> HTMLResponse:
    search = request.query_params.get("q", "")  # ``q`` names the queries module here
    f = q.ListFilters(
        county=county or None,
        township=(township or None) if p.role != "township" else None,
        tier=tier if tier in TIERS else None,
        unit_type=unit_type if unit_type in UNIT_TYPES else None,
        status=status or None,
        q=search.strip() or None,
    )
    notice = ""
    if f.township and not f.county:  # a name alone: its county, or a question when several have it
        try:
            f = replace(f, county=resolve_place(session, None, f.township)[0])
        except AmbiguousTownship as e:
            notice = f"“{e.township}”在{len(e.counties)}个县（区）都有：{'、'.join(e.counties)}。请先选择县（区）。"
    run = q.current_run(session, as_of or None)
    place_rows = q.places(session, p)
    counties = sorted({c for c, _ in place_rows})
    ctx = {
        "title": "风险清单",
        "active": "list",
        "f": f,
        "counties": counties,
        "townships": place_rows,
        "unit_types": [(t, UNIT_TYPE_ZH[t]) for t in UNIT_TYPES],
        "statuses": [*FOLLOWUP_STATUSES, q.NOT_SCREENED],
        "scope_label": p.township if p.role == "township" else (f.township or f.county or "全部"),
        "place_notice": notice,
    }
    if run is None or notice:
        return render(
            request,
            "list.html",
            p,
            **ctx,
            as_of=None,
            previous_as_of=None,
            rows=[],
            total=0,
            tier_counts=[],
            pages=0,
            page=1,
            first=0,
            last=0,
            export_url="#",
            page_url=str,
        )
    prev = q.previous_run(session, run)
    page = max(1, page)
    rows, total = q.risk_rows(session, p, run, prev, f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    for r in rows:
        r["tier_zh"] = TIER_ZH[r["tier"]]
        r["change"], r["change_symbol"], r["change_title"] = q.change_of(
            r["tier"], r["prev_tier"], prev is not None
        )
        r["relative"] = relative_sentence(r["p_red"], r["relative_red"], r["unit_type"])
    counts = q.tier_counts(session, p, run, f.county, f.township)
    hits = hits_sentence(prev.as_of, *q.red_hits(session, p, prev, f.county, f.township)) if prev else ""
    params = {
        k: v
        for k, v in {
            "county": f.county,
            "township": f.township,
            "tier": f.tier,
            "unit_type": f.unit_type,
            "status": f.status,
            "q": f.q,
        }.items()
        if v
    }
    export = {
        "as_of": run.as_of,
        **{
            k: v
            for k, v in {
                "county": f.county,
                "township": f.township or p.township,
                "min_tier": f.tier,
                "unit_type": f.unit_type,
            }.items()
            if v
        },
    }
    return render(
        request,
        "list.html",
        p,
        **ctx,
        as_of=run.as_of,
        previous_as_of=prev.as_of if prev else None,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        first=(page - 1) * PAGE_SIZE + 1 if total else 0,
        last=(page - 1) * PAGE_SIZE + len(rows),
        tier_counts=[{"tier": t, "tier_zh": TIER_ZH[t], "n": counts[t]} for t in reversed(TIERS)],
        export_url="/v1/risk-list.xlsx?" + urlencode(export),
        export_partial=bool(f.status or f.q),
        page_url=lambda n: "/list?" + urlencode({**params, "page": n}),
        hits=hits,
    )


# --- one unit -----------------------------------------------------------------------------------


def unit_context(session: Session, p: PagePrincipal, unit_id: str) -> dict:
    unit = q.get_unit(session, p, unit_id)
    run = q.current_run(session)
    score = q.unit_score(session, unit_id, run)
    prev = q.previous_run(session, run) if run else None
    prev_score = q.unit_score(session, unit_id, prev)
    as_of = run.as_of if run else date.today().strftime("%Y-%m")
    months = months_back(as_of, HISTORY_MONTHS)
    forecast, observed = q.tier_history(session, unit_id, months), q.observed_tiers(session, unit_id, months)
    change = (
        q.change_of(score.tier, prev_score.tier if prev_score else None, prev is not None)
        if score
        else ("same", "", "")
    )
    open_ev = [
        {
            "occurred_at": e.occurred_at.date().isoformat() if e.occurred_at else "—",
            "category_zh": CATEGORIES_ZH.get(e.category, e.category),
            "subtype": e.subtype,
            "severity_zh": SEVERITY_ZH.get(e.severity, "—"),
            "escalated": e.escalated,
        }
        for e in q.open_events(session, unit_id)
    ]
    return {
        "title": unit.unit_name,
        "active": "list",
        "unit": {
            "unit_id": unit.unit_id,
            "unit_name": unit.unit_name,
            "township": unit.township,
            "county": unit.county,
            "city": unit.city,
            "responsible_person": unit.responsible_person,
            "unit_type_zh": UNIT_TYPE_ZH.get(unit.unit_type, unit.unit_type),
        },
        "score": None
        if score is None
        else {
            "as_of": score.as_of,
            "tier": score.tier,
            "tier_zh": TIER_ZH[score.tier],
            "risk_score": score.risk_score,
            "model_version": score.model_version,
            "sentence": relative_sentence(score.p_red, score.relative_red, unit.unit_type),
            "tier_set": tier_set_text(score.tier_set or []),
            "intensity": intensity_sentence(score.reporting, unit.unit_type),
            "late": late_records_note(score.late_records),
        },
        "change": change[0],
        "change_symbol": change[1],
        "change_title": change[2],
        "probs": []
        if score is None
        else [
            {"tier": t, "tier_zh": TIER_ZH[t], "p": getattr(score, f"p_{t}"), "colour": TIER_COLOURS[t]}
            for t in reversed(TIERS)
        ],
        "contribution_chart": contribution_chart(score.reasons or [], score.protective or [])
        if score
        else "",
        "months": months,
        "tier_strip": tier_strip_svg(forecast, months, observed),
        "record": record_sentence(forecast, observed),
        "grid": event_grid(q.event_month_rows(session, unit_id, months), months),
        "open_events": open_ev,
        "followups": q.unit_followups(session, unit_id),
        "statuses": FOLLOWUP_STATUSES,
        "today": date.today().isoformat(),
    }


@router.get("/units/{unit_id}", response_class=HTMLResponse)
def unit_page(request: Request, unit_id: str, session: DB, p: User) -> HTMLResponse:
    try:
        ctx = unit_context(session, p, unit_id)
    except RecordNotFound:
        return not_found(request, p)
    return render(request, "unit.html", p, **ctx)
