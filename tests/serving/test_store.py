"""Store round trips on SQLite and PostgreSQL: migrations, units, score runs, history, follow-ups with
their audit trail, and tokens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, func, inspect, select

from sanling.core.errors import ConfigError, DataError
from sanling.serving.security import hash_token
from sanling.serving.store import (
    RecordNotFound,
    Scope,
    create_followup,
    create_token,
    delete_followup,
    event_months_for,
    get_score,
    latest_as_of,
    latest_followups,
    list_audit,
    list_followups,
    open_events_for,
    open_session,
    previous_score,
    principal_for,
    principal_for_session,
    replace_event_history,
    revoke_token,
    risk_list,
    save_scores,
    session_scope,
    set_responsible_person,
    update_followup,
    upsert_units,
)
from sanling.serving.store.db import downgrade, make_engine, upgrade
from sanling.serving.store.tables import Audit, Base, Score, ScoreRun, Token

TABLES = {
    "units",
    "score_runs",
    "scores",
    "observed_tiers",
    "event_months",
    "open_events",
    "tokens",
    "sessions",
    "followups",
    "audit",
}


def _row(unit_id: str, tier: str, risk: float, **extra) -> dict:
    return {
        "unit_id": unit_id,
        "tier": tier,
        "risk_score": risk,
        "p_blue": 0.4,
        "p_yellow": 0.3,
        "p_orange": 0.2,
        "p_red": 0.1,
        "reasons": [],
        **extra,
    }


def test_migrations_upgrade_an_empty_database_to_the_models(db_url):
    engine = make_engine(db_url)
    try:
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()
        upgrade(engine, "head")
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diffs = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
        assert diffs == []
        assert version == "0005"
        index_cols = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("scores")}
        assert ("as_of", "model_version", "risk_score") in index_cols and ("unit_id",) in index_cols
    finally:
        engine.dispose()


def test_upsert_units_updates_registry_and_keeps_responsible_person(engine, seed):
    with session_scope(engine) as s:
        seed(s)
        set_responsible_person(s, "140100001001", "王建国", actor="tester")
    renamed = pd.DataFrame(
        {
            "unit_id": ["140100001001"],
            "unit_name": ["东关新村"],
            "unit_type": ["village"],
            "township": ["城关镇"],
            "county": ["清徐县"],
            "city": ["太原市"],
        }
    )
    with session_scope(engine) as s:
        assert upsert_units(s, renamed) == 1
    with session_scope(engine) as s:
        score = get_score(s, "140100001001")
        assert score["unit_name"] == "东关新村"
        assert score["responsible_person"] == "王建国"
        audit = list_audit(s, entity="units", entity_id="140100001001")
        assert audit[0]["detail"]["after"] == {"responsible_person": "王建国"}
        with pytest.raises(RecordNotFound):
            set_responsible_person(s, "140100001001", "李四", actor="t", scope=Scope("清徐县", "河西乡"))
    with session_scope(engine) as s, pytest.raises(DataError, match="lacks column"):
        upsert_units(s, renamed.drop(columns=["township"]))


def test_save_scores_replaces_the_same_run_and_keeps_history(engine, seed):
    with session_scope(engine) as s:
        seed(s)
    with session_scope(engine) as s:
        # Re-score 2022-12 with version 1: only two units this time, different values.
        save_scores(
            s,
            {"as_of": "2022-12", "model_version": "1"},
            [_row("140100001001", "yellow", 33.0), _row("140100002001", "orange", 66.0)],
        )
    with session_scope(engine) as s:
        n_dec = s.scalar(select(func.count()).select_from(Score).where(Score.as_of == "2022-12"))
        n_nov = s.scalar(select(func.count()).select_from(Score).where(Score.as_of == "2022-11"))
        runs = s.scalars(select(ScoreRun).order_by(ScoreRun.as_of)).all()
        assert (n_dec, n_nov) == (2, 4)
        assert [(r.as_of, r.n_units) for r in runs] == [("2022-11", 4), ("2022-12", 2)]
        assert latest_as_of(s) == "2022-12"
        cur = get_score(s, "140100001001")
        assert (cur["tier"], cur["risk_score"]) == ("yellow", 33.0)
        assert cur["probabilities"] == {"blue": 0.4, "yellow": 0.3, "orange": 0.2, "red": 0.1}
        assert previous_score(s, "140100001001", "2022-12")["tier"] == "yellow"  # November's
        assert (cur["previous_tier"], cur["change"], cur["risk_score_change"]) == ("yellow", "same", -7.0)
        assert get_score(s, "140100001002") is None  # not in the replacing run
        assert get_score(s, "140100001002", as_of="2022-11")["tier"] == "red"
        assert get_score(s, "140100001002", as_of="2022-11")["change"] == "new"


def test_risk_list_sorts_filters_and_joins_last_month(engine, seed):
    with session_scope(engine) as s:
        seed(s)
        all_rows = risk_list(s, limit=None)
        assert [r["risk_score"] for r in all_rows] == [95.0, 85.0, 70.0, 10.0]
        assert [r["change"] for r in all_rows] == ["up", "same", "up", "down"]
        own = risk_list(s, township="城关镇")
        assert {r["township"] for r in own} == {"城关镇"} and len(own) == 2
        assert [r["tier"] for r in risk_list(s, min_tier="orange")] == ["red", "red", "orange"]
        assert [r["unit_id"] for r in risk_list(s, unit_type="enterprise")] == ["91140100MA0001"]
        assert len(risk_list(s, limit=1)) == 1
        assert [r["risk_score"] for r in risk_list(s, as_of="2022-11")][:1] == [90.0]
        assert risk_list(s, as_of="2021-01") == []
        assert get_score(s, "140100002001", township="城关镇") is None  # outside the township
        with pytest.raises(DataError, match="min_tier"):
            risk_list(s, min_tier="purple")


def test_a_newer_model_version_of_the_same_month_is_served(engine, seed):
    with session_scope(engine) as s:
        seed(s)
        save_scores(s, {"as_of": "2022-12", "model_version": "2"}, [_row("140100001001", "blue", 1.0)])
    with session_scope(engine) as s:
        assert get_score(s, "140100001001")["model_version"] == "2"
        assert get_score(s, "140100001001")["risk_score"] == 1.0
        assert s.scalar(select(func.count()).select_from(Score).where(Score.model_version == "1")) == 8


def test_save_scores_rejects_bad_input_and_stores_numpy_values(engine, seed):
    with session_scope(engine) as s:
        seed(s)
        with pytest.raises(DataError, match="tier 'purple'"):
            save_scores(s, {"as_of": "2022-12", "model_version": "1"}, [_row("140100001001", "purple", 1.0)])
    with session_scope(engine) as s, pytest.raises(DataError, match="YYYY-MM"):
        save_scores(s, {"as_of": "2022-13", "model_version": "1"}, [])
    reasons = [
        {"feature": "x", "value": np.float32(np.nan), "contribution": np.float64(0.5), "text_zh": "说明"}
    ]
    with session_scope(engine) as s:
        save_scores(
            s,
            {"as_of": "2023-01", "model_version": "1"},
            [_row("140100001001", "red", np.float64(77.5), reasons=reasons)],
        )
    with session_scope(engine) as s:
        got = get_score(s, "140100001001")
        assert got["reasons"] == [{"feature": "x", "value": None, "contribution": 0.5, "text_zh": "说明"}]
        assert got["previous_tier"] == "orange"  # December stays history


def test_replace_event_history_replaces_both_tables(engine, seed):
    months = pd.DataFrame(
        {
            "unit_id": ["140100001001"] * 2,
            "month": ["2022-11", "2022-12"],
            "category": ["dispute", "petition"],
            "n": np.array([3, 1], dtype="int64"),
        }
    )
    opened = pd.DataFrame(
        {
            "event_id": ["E1"],
            "unit_id": ["140100001001"],
            "category": ["dispute"],
            "subtype": ["邻里纠纷"],
            "occurred_at": pd.to_datetime(["2022-12-03 10:00"]),
            "severity": pd.array([2], dtype="Int8"),
            "escalated": [True],
        }
    )
    with session_scope(engine) as s:
        seed(s)
        assert replace_event_history(s, months, opened) == (2, 1)
    with session_scope(engine) as s:
        assert replace_event_history(s, months.iloc[:1], opened.iloc[:0]) == (1, 0)
    with session_scope(engine) as s:
        assert event_months_for(s, "140100001001") == [{"month": "2022-11", "category": "dispute", "n": 3}]
        assert open_events_for(s, "140100001001") == []
        with pytest.raises(DataError, match="occurred_at"):
            replace_event_history(s, months, opened.drop(columns=["occurred_at"]))
    with session_scope(engine) as s:
        replace_event_history(s, months, opened)
    with session_scope(engine) as s:
        (ev,) = open_events_for(s, "140100001001")
        assert (ev["subtype"], ev["severity"], ev["escalated"], ev["occurred_at"].day) == (
            "邻里纠纷",
            2,
            True,
            3,
        )


def test_followups_are_audited_and_scoped_to_the_township(engine, seed):
    with session_scope(engine) as s:
        seed(s)
        f = create_followup(
            s,
            "140100001001",
            actor="张三 (township #1)",
            scope=Scope("清徐县", "城关镇"),
            screened_on="2023-01-05",
            person="张三",
            findings="土地纠纷2起",
            status="排查中",
        )
        fid = f["id"]
    with session_scope(engine) as s:
        update_followup(
            s,
            fid,
            actor="张三 (township #1)",
            scope=Scope("清徐县", "城关镇"),
            status="已整改",
            measures="=cmd|' /C calc'!A0",
            person="张三",
        )
        update_followup(s, fid, actor="张三 (township #1)", status="已整改")  # no change → no audit row
    with session_scope(engine) as s:
        rows = s.scalars(select(Audit).where(Audit.entity == "followups").order_by(Audit.id)).all()
        assert [r.action for r in rows] == ["create", "update"]
        assert rows[0].detail["after"]["screened_on"] == "2023-01-05"
        assert rows[1].detail["before"] == {"status": "排查中", "measures": None}
        assert rows[1].detail["after"]["status"] == "已整改"
        assert rows[1].actor == "张三 (township #1)"
        assert [x["status"] for x in list_followups(s, scope=Scope("清徐县", "城关镇"))] == ["已整改"]
        assert list_followups(s, scope=Scope("清徐县", "河西乡")) == []
        assert latest_followups(s, ["140100001001", "140100002001"])["140100001001"]["id"] == fid
        with pytest.raises(RecordNotFound):
            update_followup(s, fid, actor="x", scope=Scope("清徐县", "河西乡"), status="误报")
        with pytest.raises(RecordNotFound):
            create_followup(s, "140100001001", actor="x", scope=Scope("阳曲县", "城关镇"))
        with pytest.raises(RecordNotFound):
            create_followup(s, "no-such-unit", actor="x")
        with pytest.raises(DataError, match="status"):
            update_followup(s, fid, actor="x", status="完成")
        with pytest.raises(DataError, match="not a date"):
            update_followup(s, fid, actor="x", deadline="next week")
        with pytest.raises(DataError, match="unknown field"):
            update_followup(s, fid, actor="x", township_override="y")
    with session_scope(engine) as s:
        delete_followup(s, fid, actor="analyst (analyst #2)")
    with session_scope(engine) as s:
        assert list_followups(s) == []
        last = list_audit(s, entity="followups", entity_id=fid)[0]
        assert last["action"] == "delete" and last["detail"]["before"]["status"] == "已整改"


def test_tokens_are_stored_hashed_and_can_be_revoked(engine):
    with session_scope(engine) as s:
        raw = create_token(s, "township", "城关镇", name="张三", county="清徐县")
        other = create_token(s, "service")
    with session_scope(engine) as s:
        stored = s.scalars(select(Token).order_by(Token.id)).all()
        assert stored[0].token_hash == hash_token(raw) and raw not in {t.token_hash for t in stored}
        p = principal_for(s, raw)
        assert (p.role, p.township, p.scope, p.name) == ("township", "城关镇", ("清徐县", "城关镇"), "张三")
        assert principal_for(s, other).scope is None
        assert principal_for(s, raw + "x") is None and principal_for(s, "") is None
        sid = open_session(s, p.token_id, 3600)
        assert principal_for_session(s, sid) == p
        assert revoke_token(s, p.token_id) is True
    with session_scope(engine) as s:
        assert principal_for(s, raw) is None and principal_for_session(s, sid) is None
        assert revoke_token(s, p.token_id) is False
        assert s.get(Token, p.token_id).last_used_at is not None
        with pytest.raises(ConfigError, match="needs --township"):
            create_token(s, "township")
        with pytest.raises(ConfigError, match="only to township tokens"):
            create_token(s, "analyst", "城关镇")
        with pytest.raises(ConfigError, match="role 'admin'"):
            create_token(s, "admin")


def test_migration_0002_gives_township_tokens_their_county_only_when_unambiguous(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    with engine.begin() as conn:
        for uid, town, county in [
            ("1", "城关镇", "清徐县"),
            ("2", "城关镇", "阳曲县"),
            ("3", "河西乡", "清徐县"),
        ]:
            conn.exec_driver_sql(
                "INSERT INTO units (unit_id, unit_name, unit_type, township, county, city, updated_at) "
                f"VALUES ('{uid}', 'u', 'village', '{town}', '{county}', '太原市', '2026-01-01')"
            )
        for i, town in enumerate(["城关镇", "河西乡"], start=1):
            conn.exec_driver_sql(
                "INSERT INTO tokens (id, token_hash, role, township, created_at) "
                f"VALUES ({i}, 'h{i}', 'township', '{town}', '2026-01-01')"
            )
    upgrade(engine, "head")
    with engine.connect() as conn:
        counties = dict(conn.exec_driver_sql("SELECT township, county FROM tokens").all())
        active = {r[0] for r in conn.exec_driver_sql("SELECT active FROM units").all()}
    assert counties == {"城关镇": None, "河西乡": "清徐县"} and active == {1}
    engine.dispose()


def test_late_records_are_stored_with_the_score_and_checked(engine, seed):
    with session_scope(engine) as s:
        seed(s)
    late = {"events": 2, "escalations": 1, "corrections": 0, "window_months": 12}
    with session_scope(engine) as s:
        save_scores(
            s,
            {"as_of": "2022-12", "model_version": "1"},
            [
                _row("140100001001", "red", 90.0, late_records={**late, "events": np.int64(2)}),
                _row("140100002001", "blue", 5.0),
            ],
        )
    with session_scope(engine) as s:
        assert get_score(s, "140100001001")["late_records"] == late
        assert get_score(s, "140100002001")["late_records"] is None
    for bad in ({**late, "events": -1}, {**late, "corrections": "2"}, {**late, "escalations": 1.5}):
        with session_scope(engine) as s, pytest.raises(DataError, match="late_records"):
            save_scores(
                s,
                {"as_of": "2022-12", "model_version": "1"},
                [_row("140100001001", "red", 90.0, late_records=bad)],
            )


def test_history_and_outcomes_written_in_batches_equal_one_replace(engine, seed):
    """``score --dask`` clears once and appends each partition's rows: the tables end as after one
    replace of all the rows, and an invalid batch raises like the whole."""
    from sanling.serving.store import history, outcomes
    from sanling.serving.store.tables import EventMonth, ObservedTier, OpenEvent

    months = pd.DataFrame(
        {"unit_id": ["140100001001"] * 3, "month": ["2022-10", "2022-11", "2022-12"], "category": "dispute"}
    ).assign(n=np.array([1, 2, 3], dtype="int64"))
    opened = pd.DataFrame(
        {
            "event_id": ["E1", "E2"],
            "unit_id": ["140100001001"] * 2,
            "category": ["dispute"] * 2,
            "occurred_at": pd.to_datetime(["2022-12-03", "2022-12-09"]),
        }
    )
    tiers = [
        ("140100001001", m, t) for m, t in [("2022-09", "blue"), ("2022-10", "red"), ("2022-11", "orange")]
    ]

    def tables(s):
        return [
            sorted(tuple(r) for r in s.execute(select(t.unit_id, *cols)).all())
            for t, cols in [
                (EventMonth, [EventMonth.month, EventMonth.n]),
                (OpenEvent, [OpenEvent.event_id]),
                (ObservedTier, [ObservedTier.as_of, ObservedTier.tier]),
            ]
        ]

    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with session_scope(engine) as s:
        seed(s)
        replace_event_history(s, months, opened)
        outcomes.replace_observed_tiers(s, tiers)
        whole = tables(s)
        history.replace_event_history(s, months.iloc[:1], opened.iloc[:0])  # something else to clear
        history.clear_event_history(s, source="/data/a")
        outcomes.clear_observed_tiers(s, source="/data/a")
        # the deleted rows' keys are never fetched back (25 M of them for a national registry)
        deletes = [q for q in statements if q.lstrip().upper().startswith("DELETE")]
        assert deletes and not [q for q in deletes if "RETURNING" in q.upper()]
        history.clear_event_history(s)
        outcomes.clear_observed_tiers(s)
        for batch in (slice(0, 1), slice(1, 3)):
            assert history.append_event_history(s, months[batch], opened[batch]) == (
                len(months[batch]),
                len(opened[batch]),
            )
            assert outcomes.append_observed_tiers(s, tiers[batch]) == len(tiers[batch])
        assert tables(s) == whole
        with pytest.raises(DataError, match="not one of"):
            outcomes.append_observed_tiers(s, [("140100001001", "2022-12", "purple")])
        with pytest.raises(DataError, match="occurred_at"):
            history.append_event_history(s, months, opened.drop(columns=["occurred_at"]))
