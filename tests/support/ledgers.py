"""Township ledgers built in the tests: the same records as clean CSV files and as workbooks the way
townships keep them (a title row, a 填报单位/填报日期 row, a two-row header with merged group cells,
序号, dotted dates, 合计 and 说明 rows, a 填表说明 sheet, one workbook per period).

``clean_records()`` gives the records; ``write_clean`` and ``write_ledgers`` write the two forms of
them; ``sheet_html`` renders a worksheet (merged cells included) for a screenshot.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font

UNIT_HEADER = ["单位编码", "单位名称", "单位类型", "所属乡镇", "所属县区", "所属市", "人口"]
# The events ledger: (group cell over the columns or None, column header, clean column).
EVENT_LAYOUT: tuple[tuple[str | None, str, str], ...] = (
    ("基本信息", "事件编号", "event_id"),
    ("基本信息", "单位编码", "unit_id"),
    ("基本信息", "发生时间", "occurred_at"),
    (None, "事件类别", "category"),
    (None, "严重程度", "severity"),
    (None, "是否越级", "escalated"),
    ("办理情况", "化解时间", "resolved_at"),
)
NOTES = (
    "填表说明",
    "1. 本表由各乡镇（街道）综治中心每月5日前填报上月矛盾纠纷排查化解情况。",
    "2. 发生时间、化解时间按“年.月.日”填写，如 2021.3.5；未化解的，化解时间不填。",
    "3. 事件类别按矛盾纠纷、信访、治安案件、刑事案件、安全事故、火灾、风险隐患填写。",
)
TITLE_UNITS = "洪洞县“三零”单位创建底数台账"
TITLE_EVENTS = "洪洞县矛盾纠纷排查化解工作台账"


def clean_records() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(units, events) as clean text frames with the Chinese headers of a tidy export: 6 units of
    two townships and 36 events from 2018 to 2022, dates as ``YYYY-MM-DD``."""
    units = pd.DataFrame(
        {
            "单位编码": [f"1410240{k:05d}" for k in (1001, 1002, 1003, 2001, 2002, 2003)],
            "单位名称": ["东街村", "西街村", "南关社区", "甘亭村", "燕壁村", "洪洞煤业"],
            "单位类型": ["村", "村", "社区", "村", "村", "企事业单位"],
            "所属乡镇": ["大槐树镇"] * 3 + ["甘亭镇"] * 3,
            "所属县区": ["洪洞县"] * 6,
            "所属市": ["临汾市"] * 6,
            "人口": ["1260", "980", "5400", "2100", "1730", "320"],
        }
    )
    cats = ["矛盾纠纷", "信访", "治安案件", "矛盾纠纷", "风险隐患", "安全事故"]
    rows = []
    for k in range(36):
        year, month, day = 2018 + k // 8, 1 + (k * 5) % 12, 1 + (k * 7) % 28
        occurred = f"{year}-{month:02d}-{day:02d}"
        resolved = "" if k % 4 == 3 else f"{year}-{month:02d}-{min(day + 3, 28):02d}"
        rows.append(
            {
                "事件编号": f"HD{year}{month:02d}{k:04d}",
                "单位编码": units["单位编码"].iloc[k % 6],
                "发生时间": occurred,
                "事件类别": cats[k % 6],
                "严重程度": ["一般", "较大", "", "一般"][k % 4],
                "是否越级": "是" if k % 9 == 0 else "否",
                "化解时间": resolved,
            }
        )
    return units, pd.DataFrame(rows)


def write_clean(folder: Path, units: pd.DataFrame, events: pd.DataFrame) -> Path:
    """``units.csv`` and ``events.csv`` (UTF-8) in ``folder``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    units.to_csv(folder / "units.csv", index=False)
    events.to_csv(folder / "events.csv", index=False)
    return folder


def dotted(date: str) -> str:
    """``2021-03-05`` → ``2021.3.5``, the way a clerk types it."""
    if not date:
        return ""
    y, m, d = date.split("-")
    return f"{y}.{int(m)}.{int(d)}"


def write_units_ledger(path: Path, units: pd.DataFrame) -> None:
    """The units as a one-sheet ledger: title, 填报 row, header in row 3 with 序号, a 合计 row."""
    wb = Workbook()
    ws = wb.active
    ws.title = "底数台账"
    width = len(UNIT_HEADER) + 1
    ws.append([TITLE_UNITS])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    ws.append(["填报单位：洪洞县委政法委", None, None, None, None, "填报日期：2022年12月31日"])
    ws.append(["序号", *UNIT_HEADER])
    for k, rec in enumerate(units[UNIT_HEADER].itertuples(index=False), start=1):
        ws.append([k, *rec])
    ws.append(["合计", f"{len(units)}个", None, None, None, None, None, None])
    _style(ws, width)
    wb.save(path)


def write_events_ledger(
    path: Path, events: pd.DataFrame, *, sheets: Sequence[tuple[str, pd.DataFrame]] | None = None
) -> None:
    """Events as a ledger workbook: a 填表说明 sheet, then one 台账 sheet (or ``sheets``: title →
    events) each with a title, a 填报 row, a two-row merged header, 序号, dotted dates, an empty
    row, a 合计 row and a 说明 line."""
    wb = Workbook()
    notes = wb.active
    notes.title = "填表说明"
    for line in NOTES:
        notes.append([line])
    for title, part in sheets or [("台账", events)]:
        _events_sheet(wb.create_sheet(title), part)
    wb.save(path)


def _events_sheet(ws, events: pd.DataFrame) -> None:
    width = len(EVENT_LAYOUT) + 1
    ws.append([TITLE_EVENTS])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    ws.append(["填报单位：洪洞县综治中心", None, None, None, None, None, "填报日期：2022年12月31日"])
    upper: list[str | None] = ["序号"]
    lower: list[str | None] = [None]
    for group, name, _ in EVENT_LAYOUT:
        upper.append(group if group and group not in upper else (None if group else name))
        lower.append(name if group else None)
    ws.append(upper)
    ws.append(lower)
    for c in range(1, width + 1):  # merge each group across its columns, each plain name down
        if lower[c - 1] is None:
            ws.merge_cells(start_row=3, start_column=c, end_row=4, end_column=c)
    for group in dict.fromkeys(g for g, _, _ in EVENT_LAYOUT if g):
        cols = [i + 2 for i, (g, _, _) in enumerate(EVENT_LAYOUT) if g == group]
        if len(cols) > 1:
            ws.merge_cells(start_row=3, start_column=cols[0], end_row=3, end_column=cols[-1])
    half = len(events) // 2
    for k, rec in enumerate(events.itertuples(index=False), start=1):
        row = dict(zip(events.columns, rec, strict=True))
        cells = [k]
        for _, name, _ in EVENT_LAYOUT:
            value = row[name]
            cells.append(dotted(value) if name in ("发生时间", "化解时间") else value)
        ws.append(cells)
        if k == half:
            ws.append([])  # an empty row between the data
    ws.append(["合计", f"{len(events)}件"])
    ws.append(["说明：本表数据截至填报日期，未化解事件化解时间不填。"])
    ws.merge_cells(start_row=ws.max_row, start_column=1, end_row=ws.max_row, end_column=width)
    _style(ws, width)


def _style(ws, width: int) -> None:
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    for c in range(width):
        ws.column_dimensions[chr(ord("A") + c)].width = 14 if c else 6


def write_ledgers(folder: Path, units: pd.DataFrame, events: pd.DataFrame) -> Path:
    """The "Done when" folder of issue 16: ``units.xlsx`` and ``events_2018-2020.xlsx`` /
    ``events_2020-2022.xlsx`` (the 2020 events in both); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    write_units_ledger(folder / "units.xlsx", units)
    year = events["发生时间"].str[:4].astype(int)
    write_events_ledger(folder / "events_2018-2020.xlsx", events[year <= 2020])
    write_events_ledger(folder / "events_2020-2022.xlsx", events[year >= 2020])
    return folder


def sheet_html(path: Path, sheet: str) -> str:
    """A worksheet as an HTML table the way Excel shows it (merged cells spanning, grid lines,
    column letters and row numbers), for a screenshot in the docs."""
    ws = load_workbook(path)[sheet]
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    hidden: set[tuple[int, int]] = set()
    for rng in ws.merged_cells.ranges:
        spans[(rng.min_row, rng.min_col)] = (rng.max_row - rng.min_row + 1, rng.max_col - rng.min_col + 1)
        hidden |= {
            (r, c) for r in range(rng.min_row, rng.max_row + 1) for c in range(rng.min_col, rng.max_col + 1)
        } - {(rng.min_row, rng.min_col)}
    letters = "".join(f"<th>{chr(ord('A') + c)}</th>" for c in range(ws.max_column))
    out = [f"<tr><th></th>{letters}</tr>"]
    for r in range(1, ws.max_row + 1):
        cells = [f"<th>{r}</th>"]
        for c in range(1, ws.max_column + 1):
            if (r, c) in hidden:
                continue
            rs, cs = spans.get((r, c), (1, 1))
            value = ws.cell(r, c).value
            bold = " class='b'" if r <= 4 and value is not None else ""
            text = "" if value is None else html.escape(str(value))
            cells.append(f"<td rowspan={rs} colspan={cs}{bold}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    style = (
        "body{font-family:'Noto Sans CJK SC',sans-serif;font-size:13px;margin:8px}"
        "table{border-collapse:collapse}td,th{border:1px solid #c8c8c8;padding:2px 6px;white-space:nowrap}"
        "th{background:#f0f0f0;color:#555;font-weight:normal}td.b{font-weight:bold;text-align:center}"
    )
    return f"<html><head><meta charset='utf-8'><style>{style}</style></head><body><table>{''.join(out)}</table></body></html>"
