"""What was known when, at ingestion: 登记时间 / 越级时间 columns and the optional ``event_updates``
and ``unit_history`` files — aliases, rejects with reasons, counts and the ``validate`` summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from sanling.pipeline.ingest import load_dataset

UNITS = {
    "单位编码": ["U1", "U2", "U3"],
    "单位名称": ["北格村", "南城社区", "晋能煤业"],
    "单位类型": ["村", "社区", "企事业单位"],
    "所属乡镇": ["北格镇", "坞城街道", "北格镇"],
    "所属县区": ["小店区"] * 3,
    "所属市": ["太原市"] * 3,
    "调解员": ["2", "3", "0"],
}
EVENTS = {
    "事件编号": ["E1", "E2", "E3", "E4", "E5", "E6"],
    "单位编码": ["U1", "U2", "U1", "U3", "U1", "U2"],
    "发生时间": ["2021-03-05 14:00:00", "2021-03-06", "2021-03-07", "2021-04-01", "2021-04-02", "2021-05-02"],
    "事件类别": ["矛盾纠纷", "信访", "dispute", "安全事故", "信访", "信访"],
    "是否越级": ["否", "是", "", "否", "", "是"],
    "伤亡人数": ["0", "", "0", "1", "", ""],
    "登记时间": ["2021-03-05", "2021-05-20", "2021-03-01", "", "2021-04-02", "2021年5月9日"],
    "越级时间": ["", "2021-04-15", "", "", "2021-06-01", "not a date"],
}
UPDATES = {
    "事件编号": ["E4", "E4", "E9", "E1", "E2", "E1", "E4"],
    "更正字段": ["伤亡人数", "severity", "casualties", "颜色", "escalated", "casualties", "casualties"],
    "更正值": ["3", "重大", "1", "红", "也许", "2", "1"],
    "更正时间": [
        "2021-05-03",
        "2021-05-04",
        "2021-05-05",
        "2021-05-06",
        "2021-05-07",
        "2021-02-01",
        "2021-06-01",
    ],
}
HISTORY = {
    "单位编码": ["U1", "U1", "U2", "U9", "U3", "U2"],
    "属性": ["调解员", "调解员", "grid_workers", "调解员", "township", "调解员"],
    "值": ["2", "4", "5", "1", "北格镇", "3"],
    "生效日期": ["2020-01-01", "2021-04-01", "2021-01-01", "2021-01-01", "2021-01-01", "昨天"],
}


def _data(tmp_path: Path, *, updates: bool = True, history: bool = True) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    pd.DataFrame(UNITS, dtype="str").to_csv(d / "units.csv", index=False)
    pd.DataFrame(EVENTS, dtype="str").to_csv(d / "events.csv", index=False, encoding="gb18030")
    if updates:
        pd.DataFrame(UPDATES, dtype="str").to_csv(d / "event_updates.csv", index=False, encoding="utf-8-sig")
    if history:
        pd.DataFrame(HISTORY, dtype="str").to_csv(d / "unit_history.csv", index=False)
    return d


def test_report_and_escalation_dates_with_chinese_headers(tmp_path):
    ds = load_dataset(_data(tmp_path, updates=False, history=False), home=tmp_path / "home")
    ev = ds.events.set_index("event_id")
    assert (
        str(ev["reported_at"].dtype) == "datetime64[ns]" and str(ev["escalated_at"].dtype) == "datetime64[ns]"
    )
    assert ev.loc["E2", "reported_at"] == pd.Timestamp("2021-05-20")
    assert ev.loc["E4", "reported_at"] == ev.loc["E4", "occurred_at"]  # not given: when it happened
    assert ev.loc["E2", "escalated_at"] == pd.Timestamp("2021-04-15")
    assert bool(ev.loc["E5", "escalated"])  # an escalation date means escalated
    assert pd.isna(ev.loc["E1", "escalated_at"])
    assert ev.loc["E1", "reported_at"] == ev.loc["E1", "occurred_at"]  # date only, same day: that moment
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    by_row = rejects.set_index("row")
    assert by_row.loc["4", "column"] == "reported_at" and by_row.loc["4", "reason"] == "before occurred_at"
    assert by_row.loc["7", "column"] == "escalated_at" and "not a date" in by_row.loc["7", "reason"]
    assert ds.report.events.rows_read == ds.report.events.accepted + ds.report.events.rejected == 6


def test_optional_files_are_normalised_with_rejects_and_counts(tmp_path):
    ds = load_dataset(_data(tmp_path), home=tmp_path / "home")
    up = ds.updates
    assert list(up.columns) == ["event_id", "field", "value", "recorded_at"]
    assert up[["event_id", "field", "value"]].values.tolist() == [
        ["E4", "casualties", "3"],
        ["E4", "severity", "3"],
        ["E4", "casualties", "1"],
    ]
    rejects = pd.read_csv(ds.workdir / "rejects.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    upd = rejects[rejects["table"] == "event_updates"].set_index("row")
    assert upd.loc["4", "reason"] == "unknown event_id (not an accepted event)"
    assert upd.loc["5", "column"] == "field" and upd.loc["5", "reason"].startswith("unknown field")
    assert upd.loc["6", "column"] == "value" and upd.loc["6", "reason"] == "not a value of that field's type"
    assert upd.loc["7", "reason"] == "before the event's occurred_at"
    r = ds.report.event_updates
    assert (r.rows_read, r.accepted, r.rejected) == (7, 3, 4)

    hist = ds.history
    assert hist[["unit_id", "attribute", "value"]].values.tolist() == [
        ["U1", "调解员", "2"],
        ["U1", "调解员", "4"],
        ["U2", "grid_workers", "5"],
    ]
    h = rejects[rejects["table"] == "unit_history"].set_index("row")
    assert h.loc["5", "reason"] == "unknown unit_id (not an accepted unit)"
    assert h.loc["6", "column"] == "attribute" and "identity column" in h.loc["6", "reason"]
    assert h.loc["7", "column"] == "valid_from"
    assert (ds.report.unit_history.rows_read, ds.report.unit_history.accepted) == (6, 3)

    again = load_dataset(_data(tmp_path), home=tmp_path / "home")  # the stored result, same tables
    assert again.report.from_cache
    pd.testing.assert_frame_equal(again.updates, ds.updates)
    pd.testing.assert_frame_equal(again.history, ds.history)


def test_validate_prints_delays_and_corrections(tmp_path):
    data = _data(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "sanling.pipeline.cli", "validate", str(data)],
        capture_output=True,
        text=True,
        env={"SANLING_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert (
        "续报更正 event_updates (event_updates.csv, UTF-8 with BOM): 读取 read 7 · 接受 accepted 3 · 拒绝 rejected 4"
        in text
    )
    assert "属性变更 unit_history (unit_history.csv, UTF-8): 读取 read 6 · 接受 accepted 3" in text
    # E1 0 d, E2 75 d, E4 0 d, E5 0 d (E3 and E6 rejected): median 0, one of four after its month.
    assert "登记延迟 reporting delay (days after occurred_at, 4 events): 中位数 median 0" in text
    assert "当月之后登记 after the month ended 25.0%" in text
    assert "越级延迟 escalation delay" in text
    assert "更正 corrections by field: casualties 2 · severity 1" in text


def test_old_files_keep_their_meaning(tmp_path):
    data = _data(tmp_path, updates=False, history=False)
    frame = pd.read_csv(data / "events.csv", dtype=str, encoding="gb18030").drop(
        columns=["登记时间", "越级时间"]
    )
    frame.to_csv(data / "events.csv", index=False)
    ds = load_dataset(data, home=tmp_path / "home")
    assert ds.updates is None and ds.history is None
    assert (ds.events["reported_at"] == ds.events["occurred_at"]).all()
    esc = ds.events["escalated"]
    assert (ds.events.loc[esc, "escalated_at"] == ds.events.loc[esc, "occurred_at"]).all()
    assert ds.events.loc[~esc, "escalated_at"].isna().all()
    assert "登记延迟" not in ds.report.summary()
