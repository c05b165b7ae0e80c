"""The optional followups table: read like the other tables, bad rows set aside with their reason,
and the store's records exported in the same form."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from sanling.core.errors import DataError
from sanling.pipeline.ingest.followups import export_frame, load_followups, normalise_followups

UNITS = ["140101001001", "140101001002"]


def test_chinese_headers_and_bad_rows_set_aside_with_their_reason():
    raw = pd.DataFrame(
        {
            "单位编码": ["140101001001", "140101001002", "999", "140101001001", "140101001002"],
            "排查日期": ["2022-03-05", "2022年4月1日", "2022-03-05", "not a day", "2022-05-01"],
            "状态": ["已整改", "误报", "排查中", "整改中", "办结"],
            "整改措施": ["调解", None, None, None, None],
        }
    )
    visits, rejects = normalise_followups(raw, UNITS, file="followups.csv")
    assert visits["unit_id"].tolist() == ["140101001001", "140101001002"]
    assert visits["visited_at"].dt.strftime("%Y-%m-%d").tolist() == ["2022-03-05", "2022-04-01"]
    assert visits["status"].tolist() == ["已整改", "误报"]
    assert rejects["row"].tolist() == [4, 5, 6]
    assert rejects["column"].tolist() == ["unit_id", "visited_at", "status"]
    assert "not in units" in rejects["reason"].iloc[0] and "排查中 / 整改中" in rejects["reason"].iloc[2]
    assert set(rejects["file"]) == {"followups.csv"}


def test_a_missing_required_column_is_one_line_naming_file_and_column():
    raw = pd.DataFrame({"unit_id": UNITS, "status": ["误报", "误报"]})
    with pytest.raises(DataError, match=r"followups\.csv: .*'visited_at'"):
        normalise_followups(raw, UNITS, file="followups.csv")


def test_load_reads_every_followups_file_and_is_none_without_one(tmp_path):
    assert load_followups(tmp_path, UNITS)[0] is None
    pd.DataFrame({"unit_id": [UNITS[0]], "visited_at": ["2022-01-02"], "status": ["排查中"]}).to_csv(
        tmp_path / "followups_2022.csv", index=False
    )
    pd.DataFrame({"unit_id": [UNITS[1]], "visited_at": ["2021-12-30"], "status": ["已整改"]}).to_csv(
        tmp_path / "followups_2021.csv", index=False
    )
    visits, rejects = load_followups(tmp_path, UNITS)
    assert sorted(visits["unit_id"]) == sorted(UNITS) and rejects.empty


def test_export_writes_visits_in_the_tables_form_and_reads_back(tmp_path):
    records = [
        {"unit_id": UNITS[0], "screened_on": date(2022, 3, 5), "status": "已整改", "measures": "调解"},
        {"unit_id": UNITS[1], "screened_on": None, "status": "待排查", "measures": None},  # not visited yet
        {"unit_id": UNITS[1], "screened_on": date(2022, 2, 1), "status": "误报", "measures": None},
    ]
    frame = export_frame(records)
    assert frame.columns.tolist() == ["unit_id", "visited_at", "status", "measures"]
    assert frame["visited_at"].tolist() == ["2022-02-01", "2022-03-05"]
    frame.to_csv(tmp_path / "followups.csv", index=False)
    visits, rejects = load_followups(tmp_path, UNITS)
    assert len(visits) == 2 and rejects.empty


def test_check_writes_the_rejects_beside_the_data_and_says_so(tmp_path):
    from sanling.pipeline.ingest.followups import check_followups

    units = pd.DataFrame({"unit_id": UNITS})
    assert check_followups(tmp_path, units, tmp_path) == (None, None)
    pd.DataFrame(
        {"unit_id": [UNITS[0], "999"], "visited_at": ["2022-01-02"] * 2, "status": ["误报"] * 2}
    ).to_csv(tmp_path / "followups.csv", index=False)
    visits, line = check_followups(tmp_path, units, tmp_path)
    assert len(visits) == 1 and "1 set aside" in line and "followups.csv row 3, unit_id" in line
    assert pd.read_csv(tmp_path / "followups_rejects.csv")["reason"].tolist() == ["unit_id not in units"]
