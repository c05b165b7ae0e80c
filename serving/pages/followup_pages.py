"""The 双排查 follow-up forms of the unit page: add a visit, edit one, set the unit's responsible
person. Registered on the pages' router (:mod:`.routes`); every write checks the CSRF token and the
unit's current township, and is audited by the store."""

from __future__ import annotations

from datetime import date

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sanling.core.text import clean_text
from sanling.serving.pages import queries as q
from sanling.serving.pages.auth import csrf_ok
from sanling.serving.pages.routes import (
    DB,
    FollowupId,
    User,
    forbidden_csrf,
    not_found,
    render,
    router,
    unit_context,
)
from sanling.serving.store.errors import RecordNotFound
from sanling.serving.store.tables import FOLLOWUP_STATUSES


def _field(form: dict, name: str, multiline: bool = True) -> str:
    """A form field as clean text: control characters (Word's ``\x0b`` …) out, stripped; a file
    upload or a missing field is ``""``."""
    value = form.get(name)
    return clean_text(value, multiline=multiline).strip() if isinstance(value, str) else ""


def _parse_followup(form: dict) -> tuple[dict, str | None]:
    """Form fields → follow-up values, or the first problem in Chinese."""

    def day(name: str, label: str, required: bool) -> date | None:
        raw = _field(form, name)
        if not raw:
            if required:
                raise ValueError(f"请填写{label}。")
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{label}格式不正确（应为 年-月-日）。") from None

    try:
        values = {
            "screened_on": day("screened_on", "排查日期", True),
            "deadline": day("deadline", "整改时限", False),
            "person": _field(form, "person", multiline=False)[:100],
            "findings": _field(form, "findings")[:2000] or None,
            "measures": _field(form, "measures")[:2000] or None,
            "status": _field(form, "status", multiline=False),
        }
    except ValueError as e:
        return {}, str(e)
    if not values["person"]:
        return {}, "请填写排查责任人。"
    if values["status"] not in FOLLOWUP_STATUSES:
        return {}, "状态须为：" + "、".join(FOLLOWUP_STATUSES) + "。"
    if values["deadline"] and values["deadline"] < values["screened_on"]:
        return {}, "整改时限不能早于排查日期。"
    return values, None


@router.post("/units/{unit_id}/followups")
async def add_followup(request: Request, unit_id: str, session: DB, p: User) -> Response:
    form = dict(await request.form())
    if not csrf_ok(request, form.get("csrf_token")):
        return forbidden_csrf(request, p)
    try:
        values, error = _parse_followup(form)
        if error:
            return render(
                request,
                "unit.html",
                p,
                status=400,
                flash=error,
                flash_kind="error",
                **unit_context(session, p, unit_id),
            )
        q.create_followup(session, p, unit_id, values)
    except RecordNotFound:
        return not_found(request, p)
    session.commit()
    return RedirectResponse(f"/units/{unit_id}?saved=1#followups", status_code=303)


@router.get("/followups/{followup_id}/edit", response_class=HTMLResponse)
def edit_followup_page(request: Request, followup_id: FollowupId, session: DB, p: User) -> HTMLResponse:
    try:
        fu = q.get_followup(session, p, followup_id)
        return _edit_form(request, session, p, fu, today=date.today().isoformat())
    except RecordNotFound:
        return not_found(request, p)


def _edit_form(request: Request, session: DB, p: User, fu: dict, status: int = 200, **extra) -> HTMLResponse:
    """The edit form of one follow-up record (with a flash message when a submission was refused)."""
    return render(
        request,
        "followup_edit.html",
        p,
        status=status,
        title="修改排查记录",
        active="list",
        fu=fu,
        unit=q.get_unit(session, p, fu["unit_id"]),
        statuses=FOLLOWUP_STATUSES,
        **extra,
    )


@router.post("/followups/{followup_id}")
async def edit_followup(request: Request, followup_id: FollowupId, session: DB, p: User) -> Response:
    form = dict(await request.form())
    if not csrf_ok(request, form.get("csrf_token")):
        return forbidden_csrf(request, p)
    try:
        fu = q.get_followup(session, p, followup_id)
        values, error = _parse_followup(form)
        if error:
            return _edit_form(request, session, p, fu, status=400, flash=error, flash_kind="error")
        q.update_followup(session, p, followup_id, values)
    except RecordNotFound:
        return not_found(request, p)
    session.commit()
    return RedirectResponse(f"/units/{fu['unit_id']}#followups", status_code=303)


@router.post("/units/{unit_id}/responsible")
async def set_responsible(request: Request, unit_id: str, session: DB, p: User) -> Response:
    form = dict(await request.form())
    if not csrf_ok(request, form.get("csrf_token")):
        return forbidden_csrf(request, p)
    try:
        q.set_responsible(
            session, p, unit_id, _field(form, "responsible_person", multiline=False)[:100] or None
        )
    except RecordNotFound:
        return not_found(request, p)
    session.commit()
    return RedirectResponse(f"/units/{unit_id}", status_code=303)
