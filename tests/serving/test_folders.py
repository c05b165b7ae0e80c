"""One store, several data folders (issue 13): scoring folder B keeps folder A's scores and event
history; units that left their folder's registry turn inactive and leave the lists, keeping their
history."""

from __future__ import annotations

import pandas as pd
from api_world import UNITS, score_row

from sanling.serving.store import (
    event_months_for,
    get_score,
    open_events_for,
    replace_event_history,
    risk_list,
    save_scores,
    session_scope,
    upsert_units,
)

A, B = "/data/清徐县", "/data/阳曲县"
UNITS_B = pd.DataFrame(
    {
        "unit_id": ["140122001001", "140122001002"],
        "unit_name": ["阳曲城关村", "阳曲东村"],
        "unit_type": ["village", "village"],
        "township": ["城关镇", "城关镇"],
        "county": ["阳曲县", "阳曲县"],
        "city": ["太原市", "太原市"],
    }
)


def _history(units: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = list(units["unit_id"])
    months = pd.DataFrame({"unit_id": ids, "month": "2022-12", "category": "dispute", "n": 2})
    opens = pd.DataFrame(
        {
            "event_id": [f"e-{u}" for u in ids],
            "unit_id": ids,
            "category": "dispute",
            "occurred_at": pd.Timestamp("2022-12-03"),
        }
    )
    return months, opens


def _score(engine, units: pd.DataFrame, source: str) -> None:
    with session_scope(engine) as s:
        upsert_units(s, units, source=source)
        save_scores(
            s,
            {"as_of": "2022-12", "model_version": "1", "data_dir": source},
            [score_row(u, "orange", 60.0) for u in units["unit_id"]],
        )
        replace_event_history(s, *_history(units), source=source)


def test_scoring_a_second_folder_keeps_the_first_ones_history(engine):
    _score(engine, UNITS, A)
    _score(engine, UNITS_B, B)
    _score(engine, UNITS_B, B)  # re-scoring B replaces B only
    with session_scope(engine) as s:
        listed = {r["unit_id"] for r in risk_list(s, limit=None)}
        assert listed == set(UNITS["unit_id"]) | set(UNITS_B["unit_id"])
        for u in [*UNITS["unit_id"], *UNITS_B["unit_id"]]:
            assert event_months_for(s, u) == [{"month": "2022-12", "category": "dispute", "n": 2}], u
            assert [e["event_id"] for e in open_events_for(s, u)] == [f"e-{u}"]


def test_units_that_left_the_registry_leave_the_lists_and_keep_their_history(engine):
    _score(engine, UNITS, A)
    gone = "140100002001"
    _score(engine, UNITS[UNITS["unit_id"] != gone], A)
    with session_scope(engine) as s:
        listed = {r["unit_id"] for r in risk_list(s, limit=None)}
        assert gone not in listed and len(listed) == len(UNITS) - 1
        assert get_score(s, gone, as_of="2022-12")["unit_id"] == gone  # its page and history stay
        assert event_months_for(s, gone) == [{"month": "2022-12", "category": "dispute", "n": 2}]
    _score(engine, UNITS, A)  # back in the registry: back on the list
    with session_scope(engine) as s:
        assert gone in {r["unit_id"] for r in risk_list(s, limit=None)}
