"""The Excel 台账 (risk ledger) township offices print and file: one row per unit of the risk list
with its latest screening (双排查) and rectification. Pure: rows in, ``.xlsx`` bytes out."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

from sanling.core.vocabulary import TIER_COLOURS, TIER_TEXT_COLOURS, TIER_ZH, UNIT_TYPE_ZH
from sanling.serving.spreadsheet import append_row, cell_value

COLUMNS: tuple[str, ...] = (
    "序号",
    "单位名称",
    "单位类型",
    "所属乡镇",
    "预警等级",
    "风险分",
    "主要风险因素",
    "排查责任人",
    "排查时间",
    "排查情况",
    "整改措施",
    "整改时限",
    "整改状态",
)
WIDTHS: tuple[int, ...] = (6, 22, 10, 14, 9, 8, 48, 12, 12, 30, 30, 12, 10)
NOT_SCREENED = "未排查"


def _argb(hex_colour: str) -> str:
    """``#d93025`` → ``D93025`` (openpyxl's colour form)."""
    return hex_colour.lstrip("#").upper()


def _latest_by_unit(followups: Mapping[str, dict] | Iterable[dict] | None) -> dict[str, dict]:
    if followups is None:
        return {}
    if isinstance(followups, Mapping):
        return dict(followups)
    latest: dict[str, dict] = {}
    for f in followups:
        key = (f.get("screened_on") or date.min, f.get("id") or 0)
        cur = latest.get(f["unit_id"])
        if cur is None or key >= (cur.get("screened_on") or date.min, cur.get("id") or 0):
            latest[f["unit_id"]] = f
    return latest


def ledger_row(index: int, row: dict, followup: dict | None) -> list[Any]:
    """The 13 cells of one unit: score ``row`` (an explained score) and its latest ``followup``."""
    f = followup or {}
    reasons = "；".join(r.get("text_zh", "") for r in (row.get("reasons") or [])[:3] if r.get("text_zh"))
    return [
        index,
        row.get("unit_name"),
        UNIT_TYPE_ZH.get(row.get("unit_type") or "", row.get("unit_type")),
        row.get("township"),
        TIER_ZH.get(row.get("tier"), row.get("tier")),
        round(float(row["risk_score"]), 1),
        reasons,
        f.get("person") or row.get("responsible_person"),
        f.get("screened_on"),
        f.get("findings"),
        f.get("measures"),
        f.get("deadline"),
        f.get("status") or NOT_SCREENED,
    ]


def write_ledger(
    rows: list[dict],
    followups: Mapping[str, dict] | Iterable[dict] | None = None,
    title: str | None = None,
) -> bytes:
    """The 台账 workbook as bytes.

    ``rows``: explained scores in risk order (as :func:`serving.store.risk_list` returns them);
    ``followups``: ``{unit_id: followup}`` or any iterable of follow-up dicts (the latest per unit is
    used); ``title``: printed in the page header. One sheet, header frozen, A4 landscape, fit to width,
    header row repeated on every printed page.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "台账"
    latest = _latest_by_unit(followups)
    bold = Font(bold=True)
    thin = Side(style="thin", color="999999")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    ws.append(list(COLUMNS))
    for cell in ws[1]:
        cell.font = bold
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.fill = PatternFill("solid", fgColor="D9D9D9")
        cell.border = border
    tier_col = COLUMNS.index("预警等级") + 1
    fills = {
        t: (
            PatternFill("solid", fgColor=_argb(TIER_COLOURS[t])),
            Font(bold=True, color=_argb(TIER_TEXT_COLOURS[t])),
        )
        for t in TIER_COLOURS
    }
    wrap = Alignment(vertical="top", wrap_text=True)
    for i, row in enumerate(rows, start=1):
        append_row(ws, ledger_row(i, row, latest.get(row.get("unit_id"))))
        r = ws.max_row
        for cell in ws[r]:
            cell.border = border
            cell.alignment = wrap
        for c in (COLUMNS.index("排查时间") + 1, COLUMNS.index("整改时限") + 1):
            ws.cell(r, c).number_format = "yyyy-mm-dd"
        style = fills.get(row.get("tier"))
        if style is not None:
            cell = ws.cell(r, tier_col)
            cell.fill, cell.font = style
            cell.alignment = Alignment(horizontal="center", vertical="top")
    for i, w in enumerate(WIDTHS, start=1):
        ws.column_dimensions[ws.cell(1, i).column_letter].width = w
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages tall as needed
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"
    if title:
        # A header is never evaluated; "&" starts a header code (page number …), so it is doubled.
        ws.oddHeader.center.text = cell_value(title).replace("&", "&&")
    ws.oddFooter.center.text = "第 &P 页 / 共 &N 页"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
