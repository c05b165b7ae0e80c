"""Township ledgers as they are kept (CONTRACT §1, docs/data-contract.md): title and 填报 rows above
the header, two-row merged headers, several files and sheets, 合计/说明/empty rows, GBK CSVs with a
title line, month-only dates — each read without hand-editing, with the expected summary."""

from __future__ import annotations

from pathlib import Path

import ledgers
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.styles import Border, Side

from sanling.core.errors import DataError
from sanling.pipeline.ingest import ledger, load_dataset
from sanling.pipeline.ingest.parsers import parse_dates
from sanling.pipeline.ingest.readers import locate_tables, read_table

UNITS, EVENTS = ledgers.clean_records()
ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"


def load(data: Path, tmp_path: Path):
    return load_dataset(data, home=tmp_path / "home")


def sheet(path: Path, rows: list[list[object]], title: str = "Sheet1", wb: Workbook | None = None) -> Path:
    book = wb or Workbook()
    ws = book.active if wb is None else book.create_sheet(title)
    ws.title = title
    for r in rows:
        ws.append(r)
    book.save(path)
    return path


# --- the "Done when" folder of issue 16 ------------------------------------------------------


@pytest.fixture(scope="module")
def done_when(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("done_when")
    clean = load(ledgers.write_clean(tmp / "clean", UNITS, EVENTS), tmp)
    kept = load(ledgers.write_ledgers(tmp / "ledgers", UNITS, EVENTS), tmp)
    return clean, kept


def test_ledgers_normalise_to_the_same_data_as_clean_csvs(done_when):
    clean, kept = done_when
    pd.testing.assert_frame_equal(kept.units, clean.units)
    pd.testing.assert_frame_equal(kept.events, clean.events)
    assert kept.report.units.accepted == len(UNITS) and kept.report.units.rejected == 0
    in_2020 = int((EVENTS["发生时间"].str[:4] == "2020").sum())
    assert kept.report.events.accepted == len(EVENTS) and kept.report.events.rejected == 0
    # The 2020 events are in both workbooks: the later file's rows win, the earlier ones are counted.
    assert kept.report.events.replaced_duplicates == in_2020 > 0


def test_ledgers_report_header_rows_skipped_rows_and_sheets(done_when):
    _, kept = done_when
    units = kept.report.units
    assert units.sources == [
        {
            "file": "units.xlsx",
            "sheet": "底数台账",
            "label": "units.xlsx",
            "header_rows": [3, 3],
            "records": len(UNITS),
            "skipped": {ledger.TOTAL: str(4 + len(UNITS))},
        }
    ]
    events = kept.report.events
    assert [s["label"] for s in events.sources] == [
        "events_2018-2020.xlsx [台账]",
        "events_2020-2022.xlsx [台账]",
    ]
    assert all(s["header_rows"] == [3, 4] for s in events.sources)
    first = events.sources[0]
    n = first["records"]
    blank, total, note = 5 + n // 2, 6 + n, 7 + n
    assert first["skipped"] == {ledger.EMPTY: str(blank), ledger.TOTAL: str(total), ledger.NOTE: str(note)}
    assert events.skipped_sheets == [
        {
            "file": "events_2018-2020.xlsx",
            "sheet": "填表说明",
            "reason": "no header with event_id, unit_id, occurred_at, category",
        },
        {
            "file": "events_2020-2022.xlsx",
            "sheet": "填表说明",
            "reason": "no header with event_id, unit_id, occurred_at, category",
        },
    ]
    text = kept.report.summary()
    assert "units.xlsx: 表头 header row 3 · 记录 records 6 · 跳过 skipped: 合计行 total row 10" in text
    assert f"events_2018-2020.xlsx [台账]: 表头 header rows 3–4 · 记录 records {n}" in text
    assert (
        "跳过的工作表 skipped sheets: events_2018-2020.xlsx [填表说明], events_2020-2022.xlsx [填表说明]"
        in text
    )


# --- header detection ---------------------------------------------------------------------------


def test_title_rows_above_the_header_of_units(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ledgers.write_units_ledger(data / "units.xlsx", UNITS)
    EVENTS.to_csv(data / "events.csv", index=False)
    ds = load(data, tmp_path)
    assert ds.units["unit_id"].tolist() == sorted(UNITS["单位编码"])
    # 序号 is layout, not a static attribute of the units.
    assert ds.report.units.attributes == {"人口": "numeric"}
    assert ds.report.units.sources[0]["header_rows"] == [3, 3]


def test_two_row_header_combined_where_the_pair_names_the_column():
    grid = pd.DataFrame(
        [
            ["台账", "", "", "", ""],
            ["基本信息", "", "", "化解", "事件类别"],
            ["事件编号", "单位编码", "发生\n时间", "时间", ""],
            ["E1", "U1", "2021.3.5", "2021.3.9", "信访"],
        ],
        dtype="str",
    )
    names = ledger.header_names(
        ("event_id", "unit_id", "occurred_at", "category", "resolved_at"),
        {
            "事件编号": "event_id",
            "单位编码": "unit_id",
            "发生时间": "occurred_at",
            "事件类别": "category",
            "化解时间": "resolved_at",
        },
    )
    header = ledger.find_header(grid, names)
    assert (header.first_row, header.last_row) == (2, 3)
    assert header.names == ["事件编号", "单位编码", "发生时间", "化解时间", "事件类别"]


def test_plain_header_in_row_one_is_read_as_before(tmp_path):
    data = ledgers.write_clean(tmp_path / "data", UNITS, EVENTS)
    ds = load(data, tmp_path)
    assert ds.report.events.sources[0]["header_rows"] == [1, 1]
    assert "表头 header" not in ds.report.summary()  # nothing unusual: no extra lines


# --- rows that are not data ----------------------------------------------------------------------


def test_totals_notes_and_empty_rows_are_skipped_the_rest_still_rejected(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    head = list(EVENTS.columns)
    good = EVENTS.head(3).values.tolist()
    rows = [
        ["矛盾纠纷排查化解台账"],
        head,
        good[0],
        [""] * len(head),
        good[1],
        ["小计", "", "", "", "2"],
        good[2],
        ["E-bad", UNITS["单位编码"][0], "2021.13.40", "信访", "", "否", ""],
        ["合 计", "4件"],
        ["备注：无"],
        ["填表人：张三", "", "审核人：李四"],
    ]
    sheet(data / "events.xlsx", rows, title="2021")
    ds = load(data, tmp_path)
    ev = ds.report.events
    assert ev.accepted == 3 and ev.rejected == 1
    assert ev.rejected_by_reason == {"occurred_at: not a date (or outside 1900–2100)": 1}
    assert ev.sources[0]["skipped"] == {
        ledger.EMPTY: "4",
        ledger.TOTAL: "6, 9",
        ledger.NOTE: "10–11",
    }
    assert ev.blank_rows == 1
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig")
    assert rejects[["file", "row"]].values.tolist() == [["events.xlsx", 8]]


def test_template_rows_with_only_a_running_number_are_empty(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    rows = [["序号", *EVENTS.columns], [1, *EVENTS.iloc[0]], [2], [3]]
    sheet(data / "events.xlsx", rows)
    ds = load(data, tmp_path)
    assert ds.report.events.accepted == 1 and ds.report.events.rejected == 0
    assert ds.report.events.sources[0]["skipped"] == {ledger.EMPTY: "3–4"}


# --- GBK CSV with a title line -------------------------------------------------------------------


def test_gbk_csv_with_a_title_line_and_a_total(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    body = EVENTS.head(4).to_csv(index=False)
    text = (
        "洪洞县矛盾纠纷排查化解工作台账\n填报单位：甘亭镇,,,,填报日期：2021年12月\n"
        + body
        + "合计,4件,,,,,\n"
    )
    (data / "events.csv").write_bytes(text.encode("gbk"))
    ds = load(data, tmp_path)
    ev = ds.report.events
    assert ev.encoding == "GBK/GB18030"
    assert ev.accepted == 4 and ev.rejected == 0
    assert ev.sources[0]["header_rows"] == [3, 3]
    assert ev.sources[0]["skipped"] == {ledger.TOTAL: "8"}
    assert (
        "events.csv: 表头 header row 3 · 记录 records 4 · 跳过 skipped: 合计行 total row 8"
        in ds.report.summary()
    )


# --- several files and sheets --------------------------------------------------------------------


def test_every_file_starting_with_the_table_name(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in (
        "units.csv",
        "events-城关镇.csv",
        "events_2021.xlsx",
        "events_10.csv",
        "events_2.csv",
        "truth.parquet",
        "event_updates.csv",
        "notes.txt",
    ):
        (data / name).write_bytes(b"x")
    found = locate_tables(data)
    assert [p.name for p in found["events"]] == [
        "events-城关镇.csv",
        "events_2.csv",
        "events_10.csv",
        "events_2021.xlsx",
    ]
    assert [p.name for p in found["units"]] == ["units.csv"]
    with_optional = locate_tables(data, optional=("event_updates", "followups"))
    assert [p.name for p in with_optional["event_updates"]] == ["event_updates.csv"]
    assert "followups" not in with_optional
    (data / "events_2.parquet").write_bytes(b"x")
    with pytest.raises(
        DataError, match=r"table 'events' is given twice \(events_2.csv and events_2.parquet\)"
    ):
        locate_tables(data)


def test_sheets_by_name_and_files_by_name_last_one_wins(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    head = list(EVENTS.columns)
    a, b = EVENTS.iloc[0].tolist(), EVENTS.iloc[1].tolist()
    changed = [*a[:4], "重大", *a[5:]]
    wb = Workbook()
    sheet(data / "events_1.xlsx", [head, changed], title="2月", wb=wb)  # later sheet name: wins
    sheet(data / "events_1.xlsx", [head, a, b], title="1月", wb=wb)
    ds = load(data, tmp_path)
    assert ds.report.events.replaced_duplicates == 1
    assert ds.events.set_index("event_id").loc[a[0], "severity"] == 3
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig")
    assert rejects[["file", "row", "reason"]].values.tolist() == [
        ["events_1.xlsx [1月]", 2, "duplicate event_id, replaced by events_1.xlsx [2月] row 2"]
    ]


def test_a_file_without_the_table_is_an_error_naming_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    EVENTS.to_csv(data / "events_a.csv", index=False)
    sheet(data / "events_b.xlsx", [["台账"], ["事件编号", "单位编码", "事件类别"], ["E1", "U", "信访"]])
    with pytest.raises(DataError) as e:
        load(data, tmp_path)
    assert str(e.value).startswith(
        "events_b.xlsx: missing required column 'occurred_at' (发生时间/发生日期 accepted as aliases); "
        "the header (row 2) has: 事件编号, 单位编码, 事件类别"
    )


def test_read_table_for_any_table(tmp_path):
    path = sheet(
        tmp_path / "followups_甘亭镇.xlsx",
        [
            ["双排查台账"],
            ["序号", "单位编码", "Visited_At", "STATUS", "整改措施"],
            [1, "U1", "2021.3", "整改中", "调解"],
            ["合计", "1"],
        ],
    )
    raw = read_table(
        "followups",
        locate_tables(tmp_path, (), optional=("followups",))["followups"],
        required=("unit_id", "visited_at", "status"),
        known=("unit_id", "visited_at", "status", "measures"),
    )
    assert raw.frame.columns.tolist() == ["单位编码", "Visited_At", "STATUS", "整改措施"]
    assert raw.frame.values.tolist() == [["U1", "2021.3", "整改中", "调解"]]
    assert raw.rows.tolist() == [3] and raw.parts[0].skipped == {ledger.TOTAL: [4]}
    with pytest.raises(ValueError, match="give the required and known columns"):
        read_table("followups", [path])


# --- dates -------------------------------------------------------------------------------------


def test_dotted_and_month_only_dates():
    got = parse_dates(
        pd.Series(["2021.3.5", "2021.03.05", "2021.03", "2021年3月", "2021.3.5 14:20", "2021.13"])
    )
    assert got.values.tolist()[:5] == [
        pd.Timestamp("2021-03-05"),
        pd.Timestamp("2021-03-05"),
        pd.Timestamp("2021-03-01"),
        pd.Timestamp("2021-03-01"),
        pd.Timestamp("2021-03-05 14:20"),
    ]
    assert got.month_only.tolist() == [False, False, True, True, False, False]
    assert got.invalid.tolist() == [False] * 5 + [True]


def test_month_only_resolved_in_the_month_of_the_event(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    events = EVENTS.head(3).copy()
    events["发生时间"] = ["2021-03-15", "2021-03-15", "2021-03-15"]
    events["化解时间"] = ["2021年3月", "2021.04", "2021.02"]
    events.to_csv(data / "events.csv", index=False)
    ds = load(data, tmp_path)
    got = ds.events.set_index("event_id")["resolved_at"]
    ids = events["事件编号"]
    assert got[ids[0]] == pd.Timestamp("2021-03-15") and got[ids[1]] == pd.Timestamp("2021-04-01")
    assert ds.report.events.rejected_by_reason == {"resolved_at: before occurred_at": 1}
    assert ds.report.events.warnings == {
        "resolved_at: month only, in the month of occurred_at; set to occurred_at": 1
    }


# --- shuffling files and sheets changes nothing ---------------------------------------------------


def _stored(folder: Path, tmp: Path) -> dict[str, bytes]:
    ds = load(folder, tmp)
    return {p.name: p.read_bytes() for p in sorted(ds.workdir.iterdir()) if p.suffix in (".parquet", ".csv")}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.lists(st.integers(0, 3), min_size=len(EVENTS), max_size=len(EVENTS)),
    again=st.lists(st.integers(-1, 3), min_size=len(EVENTS), max_size=len(EVENTS)),
    orders=st.tuples(st.permutations(range(2)), st.permutations(range(2)), st.permutations(range(2))),
)
def test_shuffling_files_and_sheets_changes_nothing(tmp_path_factory, where, again, orders):
    """Events split at random over two workbooks × two sheets (some repeated in a second place, as
    overlapping deliveries are): the stored Parquet and rejects are the same whatever the order of
    the sheets in each workbook and of the files written, and the data equal the clean CSVs'."""
    tmp = tmp_path_factory.mktemp("shuffle")
    home = np.asarray(where)
    copy = np.asarray(again)
    stored = []
    for shuffled in (False, True):
        folder = tmp / ("shuffled" if shuffled else "plain")
        folder.mkdir()
        ledgers.write_units_ledger(folder / "units.xlsx", UNITS)
        files = orders[0] if shuffled else (0, 1)
        for f in files:
            sheets = [(f"{2018 + s}年", EVENTS[(home == 2 * f + s) | (copy == 2 * f + s)]) for s in (0, 1)]
            if shuffled:
                sheets = [sheets[i] for i in orders[1 + f]]
            ledgers.write_events_ledger(folder / f"events_{f}.xlsx", EVENTS, sheets=sheets)
        stored.append(_stored(folder, tmp))
    assert stored[0] == stored[1]
    clean = load(ledgers.write_clean(tmp / "clean", UNITS, EVENTS), tmp)
    plain = load(tmp / "plain", tmp)
    pd.testing.assert_frame_equal(plain.events, clean.events)
    pd.testing.assert_frame_equal(plain.units, clean.units)
    assert plain.report.events.replaced_duplicates == int(((copy >= 0) & (copy != home)).sum())


# --- the screenshot in docs/data-contract.md -------------------------------------------------------


@pytest.mark.browser
def test_ledger_screenshot_for_the_docs(tmp_path):
    """Renders the 台账 sheet of a ledger workbook (merged cells as Excel shows them) in headless
    Chromium to ``tests/_artifacts/ledger_events.png``, the picture in docs/data-contract.md."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail("Debian chromium is not installed: run `make browser`", pytrace=False)
    from playwright.sync_api import sync_playwright

    folder = ledgers.write_ledgers(tmp_path / "ledgers", UNITS, EVENTS)
    page_html = ledgers.sheet_html(folder / "events_2018-2020.xlsx", "台账")
    # 基本信息 spans its three columns; 序号 and the three ungrouped names span both header rows.
    assert page_html.count("colspan=3") == 1 and page_html.count("rowspan=2") == 4
    out = ARTIFACTS / "ledger_events.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 400}, locale="zh-CN")
        page.set_content(page_html)
        page.locator("table").screenshot(path=str(out))
        browser.close()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_formatted_empty_rows_at_the_end_of_a_sheet_are_not_rows(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    wb = Workbook()
    ws = wb.active
    ws.append(list(EVENTS.columns))
    ws.append(EVENTS.iloc[0].tolist())
    ws.append([])
    ws.append(EVENTS.iloc[1].tolist())
    for r in range(5, 200):  # borders drawn far below the data
        ws.cell(r, 1).border = Border(bottom=Side(style="thin"))
    wb.save(data / "events.xlsx")
    ds = load(data, tmp_path)
    assert ds.report.events.accepted == 2
    assert ds.report.events.sources[0]["skipped"] == {ledger.EMPTY: "3"}


def test_row_ranges_are_short():
    assert ledger.row_ranges([9, 3, 4, 5, 11, 12]) == "3–5, 9, 11–12"
    assert ledger.row_ranges([]) == ""
    assert ledger.row_ranges(range(1, 100, 2), limit=3) == "1, 3, 5 (+47 more rows)"


def test_a_header_repeated_page_by_page_is_skipped(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    UNITS.to_csv(data / "units.csv", index=False)
    wb = Workbook()
    ws = wb.active
    upper = ["序号", "基本信息", None, None, "事件类别", "严重程度", "是否越级", "办理情况"]
    lower = [None, "事件编号", "单位编码", "发生时间", None, None, None, "化解时间"]
    columns = ["事件编号", "单位编码", "发生时间", "事件类别", "严重程度", "是否越级", "化解时间"]
    for k in range(4):
        if k % 2 == 0:  # the two header rows again on each printed page
            ws.append(upper)
            ws.append(lower)
        ws.append([k + 1, *EVENTS.iloc[k][columns]])
    wb.save(data / "events.xlsx")
    ds = load(data, tmp_path)
    assert ds.report.events.accepted == 4 and ds.report.events.rejected == 0
    assert ds.report.events.sources[0]["header_rows"] == [1, 2]
    assert ds.report.events.sources[0]["skipped"] == {ledger.HEADER: "5–6"}
