"""The pure normalisation stage on tiny in-memory frames: checks, defaults, dedupe, the invariant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanling.core.errors import DataError
from sanling.core.vocabulary import CATEGORIES_ZH
from sanling.pipeline.ingest.normalise import REJECT_COLUMNS, normalise_events, normalise_units


def units_frame(**override) -> pd.DataFrame:
    base = {
        "unit_id": ["U1", "U2", "U3"],
        "unit_name": ["甲村", "乙社区", "丙公司"],
        "unit_type": ["行政村", "COMMUNITY", "企业"],
        "township": ["T1", "T1", "T2"],
        "county": ["C"] * 3,
        "city": ["S"] * 3,
    }
    return pd.DataFrame(base | override, dtype="str")


def events_frame(**override) -> pd.DataFrame:
    n = len(next(iter(override.values()))) if override else 2
    base = {
        "event_id": [f"E{i}" for i in range(n)],
        "unit_id": ["U1"] * n,
        "occurred_at": ["2022-01-10"] * n,
        "category": ["dispute"] * n,
    }
    return pd.DataFrame(base | override, dtype="str")


def run_events(frame: pd.DataFrame, units=("U1", "U2", "U3"), categories=CATEGORIES_ZH):
    return normalise_events(frame, unit_ids=pd.Index(units), categories=categories, file="events.csv")


def test_unit_types_attributes_and_coordinates():
    raw = units_frame(
        lat=["37.8", "91", ""],
        lon=["112.5", "abc", "113"],
        population=["1,200", "300", ""],  # a thousands separator makes the column text
        mediators=["3", "", "1.5"],
    )
    out = normalise_units(raw, file="units.csv")
    assert out.frame["unit_type"].tolist() == ["village", "community", "enterprise"]
    assert out.frame["lat"].tolist()[0] == 37.8 and np.isnan(out.frame["lat"].tolist()[1])
    assert np.isnan(out.frame["lon"].tolist()[1]) and out.frame["lon"].tolist()[2] == 113.0
    assert out.warnings == {
        "lat: not a number or outside ±90, left empty": 1,
        "lon: not a number or outside ±180, left empty": 1,
    }
    assert out.attributes == {"population": "text", "mediators": "numeric"}
    assert out.frame["mediators"].dtype == "float64" and str(out.frame["population"].dtype) == "str"
    assert len(out.rejects) == 0


def test_unit_rejects_and_duplicates():
    raw = units_frame(unit_id=["U1", "U1", ""], unit_type=["村", "镇", "村"])
    out = normalise_units(raw, file="units.csv")
    # Row 3 (U1, 镇) is rejected, so it does not replace row 2: a broken re-delivery erases nothing.
    assert out.frame["unit_id"].tolist() == ["U1"] and out.frame["unit_type"].tolist() == ["village"]
    assert out.rejects[["row", "column", "reason"]].values.tolist() == [
        [3, "unit_type", "unknown unit type (village/community/enterprise or 村/社区/企事业单位)"],
        [4, "unit_id", "missing value"],
    ]
    assert list(out.rejects.columns) == list(REJECT_COLUMNS)


def test_later_valid_duplicate_replaces_earlier():
    raw = units_frame(unit_id=["U1", "U2", "U1"], unit_name=["旧", "乙", "新"])
    out = normalise_units(raw)
    assert out.frame.set_index("unit_id").loc["U1", "unit_name"] == "新"
    assert out.replaced == 1 and out.rejects["reason"].tolist() == ["duplicate unit_id, replaced by row 4"]


def test_event_defaults_and_words():
    raw = events_frame(
        severity=["特别重大", ""],
        count=["", "3"],
        escalated=["有", ""],
        casualties=["", "2"],
        subtype=[" 邻里纠纷 ", ""],
        resolved_at=["", "2022-02-01"],
        note=["x", "y"],  # not in the contract: ignored and reported
    )
    out = run_events(raw)
    ev = out.frame.set_index("event_id")
    assert ev["severity"].tolist() == [4, pd.NA]
    assert ev["count"].tolist() == [1, 3]
    assert ev["escalated"].tolist() == [True, False]
    assert ev["casualties"].tolist() == [0, 2]
    assert ev.loc["E0", "subtype"] == "邻里纠纷" and pd.isna(ev.loc["E1", "subtype"])
    assert pd.isna(ev.loc["E0", "resolved_at"]) and ev.loc["E1", "resolved_at"] == pd.Timestamp("2022-02-01")
    assert out.ignored_columns == ("note",)


def test_resolved_same_day_date_only_is_set_to_occurred():
    raw = events_frame(
        occurred_at=["2022-01-10 15:30", "2022-01-10 15:30"], resolved_at=["2022-01-10", "2022-01-10 15:00"]
    )
    out = run_events(raw)
    assert out.frame["resolved_at"].tolist() == [pd.Timestamp("2022-01-10 15:30")]
    assert out.rejects["reason"].tolist() == ["before occurred_at"]
    assert out.warnings == {"resolved_at: date only, on the day of occurred_at; set to occurred_at": 1}


def test_several_problems_in_one_row_are_all_named():
    raw = events_frame(unit_id=["U9"], occurred_at=["never"], category=["dispute"], casualties=["-3"])
    out = run_events(raw)
    row = out.rejects.iloc[0]
    assert (row["column"], row["reason"]) == ("unit_id", "unknown unit_id (not an accepted unit)")
    assert (
        row["other_reasons"]
        == "occurred_at: not a date (or outside 1900–2100); casualties: not a whole number ≥ 0"
    )
    assert row["value"] == "U9"


def test_categories_canonical_any_case_or_chinese():
    raw = events_frame(category=["PETITION", "治安案件", "Fire ", "矛盾"])
    out = run_events(raw)
    assert sorted(out.frame["category"]) == ["fire", "petition", "public_security"]
    assert out.rejects["value"].tolist() == ["矛盾"]


def test_required_column_missing_lists_all_of_them():
    raw = events_frame().drop(columns=["occurred_at", "category"])
    with pytest.raises(DataError) as e:
        run_events(raw)
    assert str(e.value).startswith(
        "events.csv: missing required columns 'occurred_at' (发生时间/发生日期 accepted as aliases), "
        "'category' (事件类别/事件类型 accepted as aliases)"
    )


def test_events_are_sorted_by_time_then_id():
    raw = events_frame(
        event_id=["b", "a", "c"],
        occurred_at=["2022-01-02", "2022-01-02", "2022-01-01 23:59"],
        unit_id=["U1"] * 3,
    )
    assert run_events(raw).frame["event_id"].tolist() == ["c", "a", "b"]


# Each cell drawn from good and bad spellings; whatever the mix, every row is accounted for once.
CELLS = {
    "event_id": st.sampled_from(["E1", "E2", "E3", "E4", "", " E1 "]),
    "unit_id": st.sampled_from(["U1", "U2", "U9", ""]),
    "occurred_at": st.sampled_from(
        ["2022-01-10", "2022/1/9 08:00", "44570", "2022-13-01", "", "2021年12月31日"]
    ),
    "category": st.sampled_from(["dispute", "信访", "FIRE", "traffic", ""]),
    "severity": st.sampled_from(["", "1", "4", "5", "重大", "x"]),
    "count": st.sampled_from(["", "1", "7", "0", "2.5"]),
    "escalated": st.sampled_from(["", "是", "N", "maybe"]),
    "casualties": st.sampled_from(["", "0", "3", "-1"]),
    "resolved_at": st.sampled_from(["", "2022-01-09", "2022-02-01", "soon"]),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries(CELLS), min_size=1, max_size=25))
def test_every_row_is_accepted_rejected_or_replaced_exactly_once(rows):
    raw = pd.DataFrame(rows, dtype="str")
    out = run_events(raw, units=("U1", "U2"))
    assert out.rows_read == len(out.frame) + out.rejected + out.replaced
    assert out.rejects["row"].is_unique
    accepted_ids = out.frame["event_id"]
    assert accepted_ids.is_unique
    replaced = out.rejects[out.rejects["kind"] == "replaced_duplicate"]
    assert set(replaced["value"]) <= set(accepted_ids)
    assert out.frame["unit_id"].isin(["U1", "U2"]).all()
    assert (out.frame["count"] >= 1).all() and (out.frame["casualties"] >= 0).all()
    resolved = out.frame.dropna(subset=["resolved_at"])
    assert (resolved["resolved_at"] >= resolved["occurred_at"]).all()
