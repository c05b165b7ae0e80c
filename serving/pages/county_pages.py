"""The county and province pages: the monthly bulletin (通报, with its Excel download) and the
province's 三零 achievement view. Registered on the pages' router (:mod:`.routes`), whose sign-in,
rendering and scoping they share."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from sanling.serving.pages import queries as q
from sanling.serving.pages.achievement import achievement_rates
from sanling.serving.pages.bulletin import build_bulletin, bulletin_xlsx
from sanling.serving.pages.routes import DB, PagePrincipal, User, not_found, render, router
from sanling.serving.store.audit import record_audit


def _bulletin(session: Session, p: PagePrincipal, county: str, as_of: str):
    places = q.places(session, p)
    counties = sorted({c for c, _ in places})
    if not counties:
        return None, counties
    county = county if county in counties else counties[0]
    run = q.current_run(session, as_of or None)
    if run is None:
        return None, counties
    prev = q.previous_run(session, run)
    b = build_bulletin(
        county,
        run.as_of,
        q.county_score_rows(session, p, county, run),
        q.county_score_rows(session, p, county, prev) if prev else [],
        q.latest_followup_rows(session, p, county),
        previous_as_of=prev.as_of if prev else None,
    )
    return b, counties


@router.get("/bulletin", response_class=HTMLResponse)
def bulletin_page(request: Request, session: DB, p: User, county: str = "", as_of: str = "") -> HTMLResponse:
    b, counties = _bulletin(session, p, county, as_of)
    if b is None:
        return render(
            request,
            "error.html",
            p,
            status=404,
            title="月度通报",
            active="bulletin",
            heading="暂无通报",
            message="所选县区或月份尚无评分。",
        )
    return render(
        request,
        "bulletin.html",
        p,
        title="月度通报",
        active="bulletin",
        b=b,
        counties=counties,
        months=q.scored_months(session),
        download_url="/bulletin.xlsx?" + urlencode({"county": b.county, "as_of": b.as_of}),
    )


@router.get("/bulletin.xlsx")
def bulletin_download(request: Request, session: DB, p: User, county: str = "", as_of: str = "") -> Response:
    b, _ = _bulletin(session, p, county, as_of)
    if b is None:
        return not_found(request, p)
    record_audit(session, p.actor, "export", "bulletin", f"{b.county}:{b.as_of}", {"county": b.county})
    session.commit()
    filename = f"bulletin_{b.as_of}.xlsx"
    return Response(
        bulletin_xlsx(b),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/province", response_class=HTMLResponse)
def province_page(request: Request, session: DB, p: User) -> HTMLResponse:
    if p.role != "analyst":
        return not_found(request, p)
    run = q.current_run(session)
    if run is None:
        return render(
            request,
            "error.html",
            p,
            status=404,
            title="全省三零达标",
            active="province",
            heading="暂无数据",
            message="尚无评分。",
        )
    year = int(run.as_of[:4])
    months = [f"{y}-{m:02d}" for y in (year - 1, year) for m in range(1, 13)]
    units, ev = q.province_frames(session, months)
    return render(
        request,
        "province.html",
        p,
        title="全省三零达标",
        active="province",
        r=achievement_rates(units, ev, run.as_of),
    )
