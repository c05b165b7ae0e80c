"""Lists ordered tier first, relative risk and tier sets stored with each score, and the forecast
history (what was forecast, what then happened) on SQLite and PostgreSQL and through the API."""

from __future__ import annotations

import pandas as pd
import pytest

from sanling.core.errors import DataError
from sanling.serving.store import (
    forecast_history,
    get_score,
    replace_observed_tiers,
    risk_list,
    save_scores,
    session_scope,
    upsert_units,
)

UNITS = pd.DataFrame(
    {
        "unit_id": ["v1", "v2", "v3", "c1", "e1"],
        "unit_name": ["东关村", "西关村", "南庄村", "西街社区", "晋兴煤业"],
        "unit_type": ["village", "village", "village", "community", "enterprise"],
        "township": ["城关镇", "城关镇", "河西乡", "城关镇", "河西乡"],
        "county": ["清徐县", "清徐县", "清徐县", "阳曲县", "清徐县"],
        "city": ["太原市"] * 5,
    }
)
P = {"blue": 0.5, "yellow": 0.2, "orange": 0.2, "red": 0.1}


def row(unit_id: str, tier: str, risk: float, **extra) -> dict:
    return {"unit_id": unit_id, "tier": tier, "risk_score": risk, "probabilities": P, "reasons": [], **extra}


def seed(session) -> None:
    upsert_units(session, UNITS)
    for i, month in enumerate(["2022-09", "2022-10", "2022-11"]):
        save_scores(
            session,
            {"as_of": month, "model_version": "1", "backfilled": True},
            [row("v1", ["blue", "orange", "red"][i], 10.0 + i), row("v2", "yellow", 20.0)],
        )
    save_scores(
        session,
        {"as_of": "2022-12", "model_version": "1"},
        [
            # an orange unit with a higher score than two red ones: tier comes first
            row(
                "v1",
                "red",
                31.9,
                relative_risk={"red": 2.4, "orange_or_worse": 1.3},
                tier_set=["orange", "red"],
            ),
            row(
                "v2", "orange", 70.0, relative_risk={"red": 0.8, "orange_or_worse": 1.1}, tier_set=["orange"]
            ),
            row("v3", "red", 45.0),
            row("c1", "yellow", 80.0),
            row("e1", "blue", 2.0),
        ],
    )
    replace_observed_tiers(
        session, [("v1", "2022-09", "yellow"), ("v1", "2022-10", "orange"), ("v2", "2022-10", "blue")]
    )


def test_lists_are_ordered_by_tier_then_risk_score(engine):
    with session_scope(engine) as s:
        seed(s)
        rows = risk_list(s, limit=None)
        assert [(r["unit_id"], r["tier"]) for r in rows] == [
            ("v3", "red"),
            ("v1", "red"),
            ("v2", "orange"),
            ("c1", "yellow"),
            ("e1", "blue"),
        ]
        assert [r["unit_id"] for r in risk_list(s, county="阳曲县")] == ["c1"]
        assert [r["unit_id"] for r in risk_list(s, county="清徐县", township="城关镇")] == ["v1", "v2"]


def test_relative_risk_and_tier_set_round_trip(engine):
    with session_scope(engine) as s:
        seed(s)
        v1 = get_score(s, "v1")
        assert v1["relative_risk"] == {"red": 2.4, "orange_or_worse": 1.3}
        assert v1["tier_set"] == ["orange", "red"]
        assert get_score(s, "v3")["relative_risk"] == {"red": None, "orange_or_worse": None}
        assert get_score(s, "v3")["tier_set"] is None
        assert (
            v1["change"] == "same" and v1["previous_tier"] == "red"
        )  # the backfilled November is last month
        with pytest.raises(DataError, match="tier_set"):
            save_scores(
                s, {"as_of": "2022-12", "model_version": "2"}, [row("v1", "red", 1.0, tier_set=["purple"])]
            )


def test_history_pairs_each_forecast_with_what_then_happened(engine):
    with session_scope(engine) as s:
        seed(s)
        h = forecast_history(s, "v1", before="2022-12")
        assert h == [
            {"as_of": "2022-09", "tier": "blue", "observed_tier": "yellow"},
            {"as_of": "2022-10", "tier": "orange", "observed_tier": "orange"},
            {"as_of": "2022-11", "tier": "red", "observed_tier": None},  # its window is still open
        ]
        assert [m["as_of"] for m in forecast_history(s, "v1", before="2022-12", months=2)] == [
            "2022-10",
            "2022-11",
        ]
        replace_observed_tiers(s, [("v1", "2022-11", "red")])  # a later run replaces the table
        assert [m["observed_tier"] for m in forecast_history(s, "v1", before="2022-12")] == [
            None,
            None,
            "red",
        ]
        with pytest.raises(DataError, match="not one of"):
            replace_observed_tiers(s, [("v1", "2022-11", "purple")])


def test_the_api_serves_history_relative_risk_and_the_tier_first_list(client, world):
    with session_scope(world.engine) as s:
        seed(s)
    r = client.get("/v1/units/v1/risk", headers=world.headers("analyst"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["relative_risk"] == {"red": 2.4, "orange_or_worse": 1.3}
    assert body["tier_set"] == ["orange", "red"]
    assert [(m["as_of"], m["tier"], m["observed_tier"]) for m in body["history"]] == [
        ("2022-09", "blue", "yellow"),
        ("2022-10", "orange", "orange"),
        ("2022-11", "red", None),
    ]
    listed = client.get("/v1/risk-list?county=清徐县&limit=10", headers=world.headers("analyst")).json()
    tiers = [x["tier"] for x in listed]
    assert tiers == sorted(tiers, key=["blue", "yellow", "orange", "red"].index, reverse=True)
    assert {x["county"] for x in listed} == {"清徐县"}
    assert all("relative_risk" in x for x in listed)
