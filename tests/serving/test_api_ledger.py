"""The Excel 台账: the pure writer and its download route."""

from __future__ import annotations

import io
from datetime import date
from urllib.parse import unquote

from openpyxl import load_workbook

from sanling.core.vocabulary import TIER_COLOURS
from sanling.serving.ledger import COLUMNS, write_ledger
from sanling.serving.store import create_followup, list_audit, session_scope


def _rows() -> list[dict]:
    base = {"unit_type": "village", "township": "城关镇", "reasons": []}
    return [
        {
            **base,
            "unit_id": "a",
            "unit_name": '=HYPERLINK("http://x","点我")',
            "tier": "red",
            "risk_score": 91.26,
            "reasons": [
                {"text_zh": "未化解矛盾纠纷3起"},
                {"text_zh": "-1+2"},
                {"text_zh": "近期信访1件"},
                {"text_zh": "第四条"},
            ],
        },
        {
            **base,
            "unit_id": "b",
            "unit_name": "南庄村",
            "tier": "orange",
            "risk_score": 60.0,
            "responsible_person": "李四",
        },
        {**base, "unit_id": "c", "unit_name": "@SUM(A1)", "tier": "yellow", "risk_score": 30.0},
        {
            **base,
            "unit_id": "d",
            "unit_name": "\tTAB",
            "unit_type": "enterprise",
            "tier": "blue",
            "risk_score": 3.0,
        },
    ]


def test_ledger_columns_colours_layout_and_formula_neutralisation():
    followups = [
        {
            "id": 1,
            "unit_id": "a",
            "screened_on": date(2023, 1, 2),
            "person": "张三",
            "findings": "旧记录",
            "measures": None,
            "status": "排查中",
            "deadline": None,
        },
        {
            "id": 2,
            "unit_id": "a",
            "screened_on": date(2023, 1, 9),
            "person": "张三",
            "findings": "+cmd",
            "measures": "调解",
            "status": "已整改",
            "deadline": date(2023, 2, 1),
        },
    ]
    wb = load_workbook(
        io.BytesIO(write_ledger(_rows(), followups, title="城关镇风险隐患排查整治台账（2022-12）"))
    )
    ws = wb.active
    assert [c.value for c in ws[1]] == list(COLUMNS)
    assert ws.max_row == 5
    a, b, c, d = ([cell.value for cell in ws[r]] for r in range(2, 6))
    assert a[0] == 1 and a[1].startswith("=") and a[4] == "红" and a[5] == 91.3
    assert a[6] == "未化解矛盾纠纷3起；-1+2；近期信访1件"  # top three reasons; inner text is not at the start
    assert (a[7], a[9], a[10], a[12]) == ("张三", "+cmd", "调解", "已整改")  # the latest follow-up
    assert a[8].date() == date(2023, 1, 9) and a[11].date() == date(2023, 2, 1)
    assert (b[7], b[12]) == ("李四", "未排查")  # responsible person when never screened
    assert c[1] == "@SUM(A1)" and d[1] == "\tTAB" and d[2] == "企事业单位"
    # Formula-like text is a text cell with Excel's hidden quote prefix: shown as typed, never run.
    assert all(ws.cell(r, 2).data_type == "s" and ws.cell(r, 2).quotePrefix for r in (2, 4, 5))
    assert ws.cell(2, 10).quotePrefix and not ws.cell(2, 11).quotePrefix
    fills = [ws.cell(r, 5).fill.fgColor.rgb[-6:] for r in range(2, 6)]
    # the one palette of the vocabulary, as on the pages
    assert fills == [TIER_COLOURS[t].lstrip("#").upper() for t in ("red", "orange", "yellow", "blue")]
    assert ws.freeze_panes == "A2"
    assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == 9  # A4
    assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.print_title_rows == "$1:$1"
    assert "城关镇" in ws.oddHeader.center.text


def test_ledger_download_for_a_township(client, world):
    with session_scope(world.engine) as s:
        create_followup(
            s, "140100001001", actor="t", screened_on="2023-01-03", person="王五", status="排查中"
        )
    r = client.get("/v1/risk-list.xlsx?min_tier=yellow", headers=world.headers("township"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == "台账_清徐县城关镇_2022-12.xlsx"
    ws = load_workbook(io.BytesIO(r.content)).active
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert [x[1] for x in rows] == ["西街社区", "东关村"]  # own township only, by risk
    assert [x[4] for x in rows] == ["红", "橙"]
    assert (rows[1][7], rows[1][12]) == ("王五", "排查中")
    with session_scope(world.engine) as s:
        (entry,) = list_audit(s, entity="scores")
        assert entry["action"] == "export" and entry["detail"]["rows"] == 2 and "township" in entry["actor"]
    other = client.get("/v1/risk-list.xlsx?township=河西乡", headers=world.headers("township"))
    assert other.status_code == 404
    everything = client.get("/v1/risk-list.xlsx", headers=world.headers("analyst"))
    assert unquote(everything.headers["content-disposition"].split("''")[1]) == "台账_全部_2022-12.xlsx"
    assert load_workbook(io.BytesIO(everything.content)).active.max_row == 5
