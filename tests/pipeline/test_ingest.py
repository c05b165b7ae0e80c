"""Ingestion of a data directory end to end: readers, encodings, formats, errors, storage, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from sanling.core.errors import DataError
from sanling.pipeline.ingest import Dataset, IngestReport, load_dataset, validate_dir
from sanling.pipeline.ingest import dataset as dataset_module
from sanling.pipeline.ingest.store import dataset_dir

REPO = Path(__file__).resolve().parents[2]

UNITS_ZH = {
    "单位编码": ["140105001001", "140105001002", "140105001003"],
    "单位名称": ["北格村", "南城社区", "晋能煤业"],
    "单位类型": ["村", "社区", "企事业单位"],
    "所属乡镇": ["北格镇", "坞城街道", "北格镇"],
    "所属县区": ["小店区"] * 3,
    "所属市": ["太原市"] * 3,
    "人口": ["1200", "5400", "300"],
}
EVENTS_ZH = {
    "事件编号": ["E1", "E2", "E3", "E4"],
    "单位编码": ["140105001001", "140105001002", "140105001001", "140105001003"],
    "发生时间": ["2021-03-05 14:00:00", "2021/3/6", "2021年3月7日", "2021-04-01"],
    "事件类别": ["矛盾纠纷", "信访", "dispute", "安全事故"],
    "严重程度": ["1", "较大", "", "4"],
    "是否越级": ["否", "是", "", "N"],
    "伤亡人数": ["0", "", "0", "2"],
    "化解时间": ["2021-03-10", "", "", "2021-04-02 09:30:00"],
}


def write_csv(path: Path, data: dict[str, list[str]], encoding: str = "utf-8") -> Path:
    pd.DataFrame(data, dtype="str").to_csv(path, index=False, encoding=encoding)
    return path


def world(
    tmp_path: Path, units: dict | None = None, events: dict | None = None, encoding: str = "utf-8"
) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    write_csv(data / "units.csv", units or UNITS_ZH, encoding)
    write_csv(data / "events.csv", events or EVENTS_ZH, encoding)
    return data


def load(data: Path, tmp_path: Path, **kw) -> Dataset:
    return load_dataset(data, home=tmp_path / "home", **kw)


def with_rows(base: dict[str, list[str]], **extra: list[str]) -> dict[str, list[str]]:
    """``base`` with more rows appended (column → values; missing columns filled with "")."""
    n = len(next(iter(extra.values())))
    return {c: v + extra.get(c, [""] * n) for c, v in base.items()}


# --- formats and encodings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "label"), [("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with BOM"), ("gbk", "GBK/GB18030")]
)
def test_chinese_headers_in_every_encoding(tmp_path, encoding, label):
    ds = load(world(tmp_path, encoding=encoding), tmp_path)
    assert ds.report.units.encoding == label and ds.report.events.encoding == label
    assert ds.units["unit_name"].tolist() == ["北格村", "南城社区", "晋能煤业"]
    assert ds.units["unit_type"].tolist() == ["village", "community", "enterprise"]
    assert ds.events["category"].tolist() == ["dispute", "petition", "dispute", "safety_accident"]
    assert ds.events["occurred_at"].tolist() == [
        pd.Timestamp("2021-03-05 14:00"),
        pd.Timestamp("2021-03-06"),
        pd.Timestamp("2021-03-07"),
        pd.Timestamp("2021-04-01"),
    ]
    assert ds.events["severity"].tolist() == [1, 2, pd.NA, 4]
    assert ds.events["escalated"].tolist() == [False, True, False, False]
    assert ds.events["casualties"].tolist() == [0, 0, 0, 2]
    assert ds.report.events.rejected == 0


def test_tab_separated_csv_is_recognised(tmp_path):
    data = world(tmp_path)
    pd.DataFrame(EVENTS_ZH, dtype="str").to_csv(data / "events.csv", index=False, sep="\t")
    ds = load(data, tmp_path)
    assert ds.report.events.accepted == 4 and ds.events["subtype"].isna().all()


def test_output_schema_matches_the_contract(tmp_path):
    ds = load(world(tmp_path), tmp_path)
    assert list(ds.units.columns) == [
        "unit_id",
        "unit_name",
        "unit_type",
        "township",
        "county",
        "city",
        "lat",
        "lon",
        "人口",
    ]
    assert {c: str(t) for c, t in ds.units.dtypes.items()} == {
        "unit_id": "str", "unit_name": "str", "unit_type": "str", "township": "str", "county": "str",
        "city": "str", "lat": "float64", "lon": "float64", "人口": "float64",
    }  # fmt: skip
    assert {c: str(t) for c, t in ds.events.dtypes.items()} == {
        "event_id": "str", "unit_id": "str", "occurred_at": "datetime64[ns]", "category": "str",
        "subtype": "str", "severity": "Int8", "count": "int32", "escalated": "bool",
        "casualties": "int32", "resolved_at": "datetime64[ns]", "reported_at": "datetime64[ns]",
        "escalated_at": "datetime64[ns]",
    }  # fmt: skip
    assert ds.events["count"].tolist() == [1, 1, 1, 1]
    assert ds.units["unit_id"].is_monotonic_increasing
    assert ds.events["occurred_at"].is_monotonic_increasing


def test_xlsx_with_excel_serial_dates_and_numeric_codes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    wb = Workbook()
    ws = wb.active
    ws.append(["unit_id", "unit_name", "unit_type", "township", "county", "city", "households"])
    ws.append([140105001001, "北格村", "村", "北格镇", "小店区", "太原市", 410])
    ws.append([140105001002, "南城社区", "community", "坞城街道", "小店区", "太原市", 1800.0])
    wb.save(data / "units.xlsx")
    wb = Workbook()
    ws = wb.active
    ws.append(["事件编号", "单位编码", "发生时间", "事件类别", "化解时间", "是否越级"])
    ws.append(["E1", 140105001001, datetime(2021, 3, 5, 14, 0), "fire", 44261, True])  # real datetime cell
    ws.append(["E2", "140105001002", 44260, "hazard", None, False])  # serial number 44260 = 2021-03-05
    ws.append(["E3", 140105001002, "44262.5", "信访", "2021-03-08", "是"])  # serial as text, with noon
    wb.save(data / "events.xlsx")
    ds = load(data, tmp_path)
    assert ds.report.units.format == "xlsx"
    assert ds.units["unit_id"].tolist() == ["140105001001", "140105001002"]
    assert ds.units["households"].tolist() == [410.0, 1800.0]
    ev = ds.events.set_index("event_id")
    assert ev.loc["E1", "occurred_at"] == pd.Timestamp("2021-03-05 14:00")
    assert ev.loc["E1", "resolved_at"] == pd.Timestamp("2021-03-06")
    assert ev.loc["E2", "occurred_at"] == pd.Timestamp("2021-03-05")
    assert ev.loc["E3", "occurred_at"] == pd.Timestamp("2021-03-07 12:00")
    assert ev.loc[["E1", "E2", "E3"], "escalated"].tolist() == [True, False, True]


def test_parquet_with_typed_columns(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    units = pd.DataFrame(UNITS_ZH).rename(columns={"单位编码": "unit_id"})
    units["unit_id"] = units["unit_id"].astype("int64")  # codes stored as numbers
    # Nullable dtypes with pd.NA, as other Parquet writers produce them.
    units["单位名称"] = units["单位名称"].astype("string")
    units["employees"] = pd.array([None, None, 120], dtype="Int64")
    units["industry"] = pd.array([None, None, "煤炭"], dtype="string")
    units.to_parquet(data / "units.parquet")
    events = pd.DataFrame(
        {
            "event_id": ["E1", "E2"],
            "unit_id": [140105001001, 140105001003],
            "occurred_at": pd.DatetimeIndex(
                [pd.Timestamp("2021-03-05 08:00"), pd.Timestamp("2021-03-06")]
            ).tz_localize("UTC"),
            "category": ["criminal", "fire"],
            "severity": [2, 3],
            "count": [3, 1],
            "escalated": [True, False],
        }
    )
    events.to_parquet(data / "events.parquet")
    (data / "truth.parquet").write_bytes(b"not even parquet: other files are ignored")
    ds = load(data, tmp_path)
    assert ds.events["unit_id"].tolist() == ["140105001001", "140105001003"]
    assert ds.events["occurred_at"].tolist() == [
        pd.Timestamp("2021-03-05 16:00"),
        pd.Timestamp("2021-03-06 08:00"),
    ]
    assert ds.events["count"].tolist() == [3, 1]
    assert ds.units["employees"].tolist()[2] == 120.0 and ds.units["employees"].isna().sum() == 2
    assert str(ds.units["industry"].dtype) == "str" and ds.units["industry"].tolist()[2] == "煤炭"
    assert str(ds.units["unit_name"].dtype) == "str"
    assert ds.report.events_by_category["criminal"] == 3
    assert ds.report.events.rows_read == 2


# --- unusable input ---------------------------------------------------------------------------


def test_missing_required_column_names_file_column_and_aliases(tmp_path):
    events = {k: v for k, v in EVENTS_ZH.items() if k != "发生时间"}
    with pytest.raises(DataError) as e:
        load(world(tmp_path, events=events), tmp_path)
    msg = str(e.value)
    assert msg.startswith(
        "events.csv: missing required column 'occurred_at' (发生时间/发生日期 accepted as aliases)"
    )
    assert "\n" not in msg


def test_missing_table_and_both_formats(tmp_path):
    data = world(tmp_path)
    (data / "events.csv").unlink()
    with pytest.raises(DataError, match=r"missing table 'events' \(expected one of events.csv, events.xlsx"):
        load(data, tmp_path)
    write_csv(data / "events.csv", EVENTS_ZH)
    pd.DataFrame({"unit_id": ["1"]}).to_parquet(data / "units.parquet")
    with pytest.raises(DataError, match=r"table 'units' is given twice \(units.csv and units.parquet\)"):
        load(data, tmp_path)


def test_not_a_directory(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load(tmp_path / "nowhere", tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("events.csv", b"", "events.csv: the file is empty"),
        ("events.csv", "事件编号,单位编码,发生时间,事件类别\n".encode(), "events.csv: no data rows"),
        ("events.csv", b"event_id,unit_id\x00\x01\x02", "events.csv: not a text CSV file"),
        (
            "events.csv",
            b"\xff\xfe\xfa\x80\x80\x80,\x81\n",
            "events.csv: cannot decode as UTF-8 or GBK/GB18030",
        ),
        (
            "events.csv",
            b'event_id,unit_id,occurred_at,category\nE1,1,"2021-01-01,dispute\n',
            "events.csv: cannot parse as CSV",
        ),
        ("events.xlsx", b"PK\x03\x04 broken zip", "events.xlsx: cannot read as an Excel workbook"),
        ("events.parquet", b"PAR1 broken", "events.parquet: cannot read as Parquet"),
    ],
)
def test_unreadable_files(tmp_path, name, content, message):
    data = world(tmp_path)
    (data / "events.csv").unlink()
    (data / name).write_bytes(content)
    with pytest.raises(DataError) as e:
        load(data, tmp_path)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_duplicate_columns_are_an_error(tmp_path):
    units = dict(UNITS_ZH) | {"unit_id": UNITS_ZH["单位编码"]}
    with pytest.raises(
        DataError, match=r"units.csv: column 'unit_id' is given twice \('单位编码' and 'unit_id'\)"
    ):
        load(world(tmp_path, units=units), tmp_path)


def test_no_row_accepted_is_an_error_and_keeps_rejects(tmp_path):
    events = dict(EVENTS_ZH) | {"单位编码": ["X1", "X2", "X3", "X4"]}
    with pytest.raises(
        DataError, match=r"events.csv: no row accepted \(4 rejected: 4 × unit_id: unknown unit_id"
    ):
        load(world(tmp_path, events=events), tmp_path)
    workdir = dataset_dir(tmp_path / "home", tmp_path / "data")
    assert len(pd.read_csv(workdir / "rejects.csv", encoding="utf-8-sig")) == 4
    assert not (workdir / "report.json").exists()


# --- rejects ---------------------------------------------------------------------------------


BAD_EVENTS = with_rows(
    EVENTS_ZH,
    事件编号=["B1", "B2", "B3", "B4", "B5", "B6", "B7", "E1"],
    单位编码=["140105001001", "999", "140105001001", "140105001001", "140105001001", "140105001001", "140105001001", "140105001003"],
    发生时间=["2021-03-05", "2021-03-05", "2021-02-30", "2021-03-05", "2021-03-05", "2021-03-05", "2021-03-05", "2021-05-01"],
    事件类别=["traffic", "dispute", "dispute", "dispute", "dispute", "dispute", "dispute", "fire"],
    严重程度=["", "", "", "5", "", "", "", ""],
    伤亡人数=["", "", "", "", "-1", "", "", ""],
    化解时间=["", "", "", "", "", "2021-03-01", "2021-03-05", ""],
    是否越级=["", "", "", "", "", "", "也许", ""],
)  # fmt: skip


def test_each_broken_row_is_set_aside_with_its_reason(tmp_path):
    ds = load(world(tmp_path, events=BAD_EVENTS), tmp_path)
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    by_row = rejects.set_index("row")
    # Source rows: the header is row 1, so BAD_EVENTS' fifth record (B1) is on row 6.
    assert by_row.loc["6", "reason"].startswith("unknown category") and by_row.loc["6", "value"] == "traffic"
    assert (
        by_row.loc["7", "reason"] == "unknown unit_id (not an accepted unit)"
        and by_row.loc["7", "value"] == "999"
    )
    assert by_row.loc["8", "column"] == "occurred_at" and by_row.loc["8", "reason"].startswith("not a date")
    assert by_row.loc["9", "column"] == "severity" and by_row.loc["9", "value"] == "5"
    assert (
        by_row.loc["10", "column"] == "casualties" and by_row.loc["10", "reason"] == "not a whole number ≥ 0"
    )
    assert by_row.loc["11", "column"] == "resolved_at" and by_row.loc["11", "reason"] == "before occurred_at"
    assert by_row.loc["12", "column"] == "escalated"
    assert by_row.loc["2", "kind"] == "replaced_duplicate"
    assert by_row.loc["2", "reason"] == "duplicate event_id, replaced by row 13"
    assert json.loads(by_row.loc["7", "record"])["单位编码"] == "999"
    assert ds.report.events.rejected == 7 and ds.report.events.replaced_duplicates == 1
    e1 = ds.events.set_index("event_id").loc["E1"]
    assert e1["category"] == "fire" and e1["unit_id"] == "140105001003"
    assert ds.report.events.rejected_by_reason["resolved_at: before occurred_at"] == 1


def test_custom_categories_extend_the_taxonomy(tmp_path):
    cats = {
        "dispute": "矛盾纠纷",
        "petition": "信访",
        "fire": "火灾",
        "safety_accident": "安全事故",
        "traffic": "交通事故",
    }
    ds = load(world(tmp_path, events=BAD_EVENTS), tmp_path, categories=cats)
    assert "B1" in set(ds.events["event_id"])
    assert ds.report.events_by_category["traffic"] == 1
    assert ds.report.categories == cats


def test_counting_invariant_for_each_table(tmp_path):
    units = with_rows(UNITS_ZH, 单位编码=["140105001002", "", "140105001009"], 单位名称=["新", "x", "y"], 单位类型=["村", "村", "乡"], 所属乡镇=["a"] * 3, 所属县区=["b"] * 3, 所属市=["c"] * 3)  # fmt: skip
    ds = load(world(tmp_path, units=units, events=BAD_EVENTS), tmp_path)
    for t, frame in ((ds.report.units, ds.units), (ds.report.events, ds.events)):
        assert t.rows_read == t.accepted + t.rejected + t.replaced_duplicates
        assert t.accepted == len(frame)
    assert (ds.report.units.rejected, ds.report.units.replaced_duplicates) == (2, 1)
    assert ds.units.set_index("unit_id").loc["140105001002", "unit_name"] == "新"
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig")
    assert len(rejects) == sum(
        t.rejected + t.replaced_duplicates for t in (ds.report.units, ds.report.events)
    )


def test_row_numbers_follow_the_file_across_blank_lines(tmp_path):
    data = world(tmp_path)
    text = (data / "events.csv").read_text(encoding="utf-8").splitlines()
    text.insert(2, "")  # a blank line 3
    text.append("E9,140105001001,not a date,fire,,,,")
    (data / "events.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    ds = load(data, tmp_path)
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig")
    assert rejects["row"].tolist() == [len(text)]
    assert ds.report.events.blank_rows == 1


# --- storage and cache ------------------------------------------------------------------------


def _files(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(workdir.iterdir())}


def test_stored_layout_and_idempotence(tmp_path, monkeypatch):
    data = world(tmp_path, events=BAD_EVENTS)
    first = load(data, tmp_path)
    assert first.workdir == dataset_dir(tmp_path / "home", data)
    assert first.workdir.name.startswith("data-") and len(first.workdir.name) == len("data-") + 8
    assert sorted(p.name for p in first.workdir.iterdir()) == [
        "events.parquet",
        "rejects.csv",
        "report.json",
        "units.parquet",
    ]
    assert (first.workdir / "rejects.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    before = _files(first.workdir)

    # The second load reads the cache: parsing is not even attempted.
    def refuse(*a, **k):
        raise AssertionError("re-parsed although the input is unchanged")

    monkeypatch.setattr(dataset_module, "normalise_events", refuse)
    again = load(data, tmp_path)
    assert again.report.from_cache
    pd.testing.assert_frame_equal(again.events, first.events)
    pd.testing.assert_frame_equal(again.units, first.units)
    assert again.report.to_dict() | {"from_cache": False} == first.report.to_dict()
    assert _files(first.workdir) == before
    monkeypatch.undo()

    # A fresh parse of the same input writes the same bytes.
    (first.workdir / "report.json").unlink()
    os.utime(data / "events.csv", ns=(1, 1))  # a new mtime alone does not matter either
    third = load(data, tmp_path)
    assert not third.report.from_cache
    assert _files(first.workdir) == before


def test_changed_input_or_taxonomy_is_parsed_again(tmp_path):
    data = world(tmp_path)
    first = load(data, tmp_path)
    write_csv(data / "events.csv", {k: v[:3] for k, v in EVENTS_ZH.items()})
    second = load(data, tmp_path)
    assert not second.report.from_cache and len(second.events) == 3 and len(first.events) == 4
    third = load(data, tmp_path, categories={"dispute": "矛盾纠纷", "petition": "信访"})
    assert not third.report.from_cache and third.report.events.rejected == 0
    assert set(third.events["category"]) == {"dispute", "petition"}


def test_validate_dir_uses_settings_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SANLING_HOME", str(tmp_path / "envhome"))
    report = validate_dir(world(tmp_path))
    assert isinstance(report, IngestReport)
    assert Path(report.workdir).parent == (tmp_path / "envhome" / "datasets").resolve()
    assert IngestReport.from_dict(json.loads((Path(report.workdir) / "report.json").read_text())) == report


def test_summary_lists_counts_reasons_ranges_and_months(tmp_path):
    ds = load(world(tmp_path, events=BAD_EVENTS), tmp_path)
    text = ds.report.summary()
    assert "读取 read 12 · 接受 accepted 4 · 拒绝 rejected 7 · 重复替换 replaced duplicates 1" in text
    assert "resolved_at: before occurred_at" in text
    assert str(ds.workdir / "rejects.csv") in text
    assert "events from 2021-03-06 to 2021-05-01 (3 个月 months)" in text
    assert "村 village 1 · 社区 community 1 · 企事业单位 enterprise 1" in text
    month_rows = [line for line in text.splitlines() if line.strip().startswith("2021-0")]
    assert [r.split()[0] for r in month_rows] == ["2021-03", "2021-04", "2021-05"]
    assert month_rows[0].split()[-1] == "2"  # March: E2 and E3; E1 was replaced by its May row, B* rejected


# --- command line -----------------------------------------------------------------------------


def _sanling(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"SANLING_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "sanling.pipeline.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_validate_exit_codes(tmp_path):
    data = world(tmp_path)
    ok = _sanling("validate", str(data), home=tmp_path / "home")
    assert ok.returncode == 0, ok.stderr
    assert "接受 accepted 4" in ok.stdout
    (data / "events.csv").write_text("事件编号,单位编码\nE1,140105001001\n", encoding="utf-8")
    bad = _sanling("validate", str(data), home=tmp_path / "home")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr + bad.stdout
    assert bad.stderr.strip().startswith("sanling: events.csv: missing required columns 'occurred_at'")
    assert len(bad.stderr.strip().splitlines()) == 1
