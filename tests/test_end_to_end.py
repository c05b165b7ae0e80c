"""End to end on a small simulated county with real components: ingestion, features, the backtest,
MLflow (SQLite store), promotion, batch scoring into the store, and the API answering with the
champion through the same feature and explanation code."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sanling.core.config import Config, ModelParams, Settings
from sanling.models.explain import render
from sanling.pipeline import jobs
from sanling.pipeline.live_scorer import ChampionScorer
from sanling.pipeline.simulate import simulate_world
from sanling.serving.app import create_app

pytestmark = pytest.mark.slow

CONFIG = Config(
    test_periods=2, model=ModelParams(n_estimators=80, learning_rate=0.1, num_leaves=7, min_child_samples=40)
)


def _write_followups(world) -> None:
    """A 双排查 ledger kept outside sanling: a visit to every fifth unit in 2022-11 and 2022-12, one
    row with a unit that does not exist (set aside, not fatal)."""
    units = pd.read_parquet(world / "units.parquet")["unit_id"].tolist()
    rows = [(u, f"2022-{11 + i % 2}-15", "已整改") for i, u in enumerate(units[::5])]
    rows.append(("000000000000", "2022-12-01", "误报"))
    pd.DataFrame(rows, columns=["单位编码", "排查日期", "状态"]).to_csv(world / "followups.csv", index=False)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    settings = Settings(home=work / "home")
    world = work / "world"
    simulate_world(world, preset="county", n_units=160, seed=3, progress=False)
    _write_followups(world)
    metrics = jobs.backtest(world, work / "bt", CONFIG, settings)
    version = jobs.train(world, CONFIG, settings)
    jobs.promote(version, settings=settings)
    jobs.score(world, settings=settings)
    scorer = ChampionScorer(settings, world, poll_seconds=0)
    app = create_app(settings, scorer)
    analyst = jobs.token_create("analyst", settings=settings)
    units = pd.read_parquet(world / "units.parquet")
    township = units["township"].iloc[0]
    clerk = jobs.token_create("township", township=township, settings=settings)
    with TestClient(app) as client:
        yield {
            "work": work,
            "world": world,
            "settings": settings,
            "metrics": metrics,
            "version": version,
            "scorer": scorer,
            "client": client,
            "units": units,
            "township": township,
            "analyst": {"Authorization": f"Bearer {analyst}"},
            "clerk": {"Authorization": f"Bearer {clerk}"},
        }
    scorer.close()


def test_backtest_writes_the_contracts_metrics(deployed):
    m = json.loads((deployed["work"] / "bt" / "metrics.json").read_text())
    assert {"horizon_months", "as_of_dates", "n_rows", "class_balance", "models"} <= set(m)
    assert set(m["models"]) == {"lightgbm", "persistence", "historical_rate", "logistic", "oracle"}
    keys = {
        "rps",
        "log_loss",
        "qwk",
        "macro_f1",
        "red_recall",
        "red_precision",
        "red_pr_auc",
        "ece",
        "ece_yellow",
        "ece_red",
        "decided_share",
    }
    assert all(set(v) == keys for v in m["models"].values())
    assert m["n_rows"] == 2 * 160 and len(m["as_of_dates"]) == 2
    s = m["summary"]
    # the truth is better than any model fitted on the past: a model that saw test outcomes would not be
    assert m["models"]["oracle"]["rps"] < m["models"]["lightgbm"]["rps"]
    assert s["oracle_share"] < 1 and s["oracle_gap_share"] < 1
    assert m["models"]["lightgbm"]["rps"] < m["models"]["persistence"]["rps"]
    rps = {k: v["rps"] for k, v in m["models"].items() if k in ("persistence", "historical_rate", "logistic")}
    assert s["best_baseline"] == min(rps, key=rps.get)
    assert s["oracle_gap_share_se"] > 0 and set(s["calibration_by_group"]) == {"unit_type", "county"}
    # one label_lag per fold; with labels known at each origin it is read from the records then
    assert len(s["label_lag"]) >= 1 and all(isinstance(v, int) and 0 <= v <= 6 for v in s["label_lag"])
    if s["training_labels"] == "final_record":
        assert set(s["label_lag"]) == {0}
    # the default capacity policy: a short red list, never a quarter of the units
    assert 0 < m["models"]["lightgbm"]["decided_share"]["red"] <= 0.12
    assert (deployed["work"] / "bt" / "report.html").exists()


def test_api_serves_the_stored_explained_score(deployed):
    c, unit = deployed["client"], deployed["units"]["unit_id"].iloc[0]
    r = c.get(f"/v1/units/{unit}/risk", headers=deployed["clerk"])
    assert r.status_code == 200
    s = r.json()
    assert s["model_version"] == deployed["version"] and s["tier_zh"] in "蓝黄橙红"
    assert abs(sum(s["probabilities"].values()) - 1) < 1e-3
    assert 0 <= s["risk_score"] <= 100
    listed = c.get("/v1/risk-list", headers=deployed["clerk"]).json()
    explained = [u for u in listed if u["reasons"]]
    # the riskiest units of the township have reasons (an empty list everywhere would be a bug)
    assert listed[0]["reasons"] and len(explained) >= len(listed) // 4
    for u in explained:
        for reason in u["reasons"]:
            assert reason["contribution"] > 0 and reason["text_zh"] and "{" not in reason["text_zh"]


def test_backtest_audits_tier_sets_townships_and_visits(deployed):
    s = deployed["metrics"]["summary"]
    assert set(s["acted_on"]) == {"visited", "not_visited"}
    assert s["acted_on"]["visited"]["n_rows"] > 0 and s["acted_on"]["not_visited"]["n_rows"] > 0
    assert (
        s["acted_on"]["visited"]["n_rows"] + s["acted_on"]["not_visited"]["n_rows"]
        == deployed["metrics"]["n_rows"]
    )
    assert "lightgbm" in s["acted_on"]["visited"]["models"]
    c = s["conformal"]
    assert c["level"] == 0.9 and set(c["by_unit_type"]) <= {"village", "community", "enterprise"}
    assert 0.8 < c["overall"]["coverage"] <= 1.0 and 1 <= c["overall"]["mean_size"] <= 4
    assert {(t["county"], t["township"]) for t in s["townships"]} == set(
        deployed["units"][["county", "township"]].itertuples(index=False, name=None)
    )
    report = (deployed["work"] / "bt" / "report.html").read_text(encoding="utf-8")
    assert "Visited and not-visited rows" in report and "Tier sets at 90%" in report


def test_lists_are_tier_first_and_every_score_is_relative_to_its_peers(deployed):
    c = deployed["client"]
    rows = c.get("/v1/risk-list?limit=200", headers=deployed["analyst"]).json()
    rank = ["blue", "yellow", "orange", "red"]
    keys = [(rank.index(r["tier"]), r["risk_score"]) for r in rows]
    assert keys == sorted(keys, reverse=True) and len(rows) == 160
    assert all(r["relative_risk"]["red"] is not None and r["relative_risk"]["red"] >= 0 for r in rows)
    assert all(r["tier"] in r["tier_set"] or len(r["tier_set"]) >= 1 for r in rows)
    # relative risk is against the same unit type in the same county: peers' ratios average to 1
    frame = pd.DataFrame(
        [{**r, "rr": r["relative_risk"]["red"], "p": r["probabilities"]["red"]} for r in rows]
    )
    for _, g in frame.groupby(["county", "unit_type"]):
        # probabilities are served to 4 decimals and ratios to 2: allow for both roundings
        assert (g["p"] / g["p"].mean() - g["rr"]).abs().max() < 0.006 + 1e-4 / g["p"].mean()
    county = rows[0]["county"]
    assert {
        r["county"] for r in c.get(f"/v1/risk-list?county={county}", headers=deployed["analyst"]).json()
    } == {county}


def test_a_unit_has_a_forecast_history_with_outcomes(deployed):
    unit = deployed["units"]["unit_id"].iloc[0]
    body = deployed["client"].get(f"/v1/units/{unit}/risk", headers=deployed["clerk"]).json()
    history = body["history"]
    assert len(history) == 24 and history[-1]["as_of"] < body["as_of"]
    assert sum(h["observed_tier"] is not None for h in history) >= 12
    assert [h["as_of"] for h in history] == sorted(h["as_of"] for h in history)
    assert body["relative_risk"]["orange_or_worse"] is not None


def test_the_model_route_carries_calibration_and_township_hit_rates(deployed):
    info = deployed["client"].get("/v1/model", headers=deployed["analyst"]).json()
    assert "calibration_by_group" in info and isinstance(info["calibration_warnings"], list)
    towns = info["townships"]
    assert towns and all({"county", "township", "hit_rate", "pai"} <= set(t) for t in towns)
    assert info["conformal"]["level"] == 0.9 and info["conformal"]["backtest_coverage"]["overall"]["n"] > 0


def test_followups_export_writes_what_the_backtest_reads(deployed, tmp_path):
    from sanling.pipeline.ingest.followups import load_followups
    from sanling.serving.store import create_followup, db

    unit = deployed["units"]["unit_id"].iloc[0]
    engine = db.init_db(deployed["settings"].db_url)
    with db.session_scope(engine) as s:
        create_followup(s, unit, actor="test", screened_on="2022-12-20", person="王芳", status="已整改")
    engine.dispose()
    line = jobs.followups_export(tmp_path, settings=deployed["settings"])
    assert "1 visits" in line
    visits, rejects = load_followups(tmp_path, deployed["units"]["unit_id"])
    assert visits["unit_id"].tolist() == [unit] and rejects.empty


def test_fresh_score_equals_batch_score(deployed):
    """POST /v1/score and `sanling score` run the same feature, model and explanation code."""
    c, ids = deployed["client"], deployed["units"]["unit_id"].iloc[:5].tolist()
    fresh = c.post("/v1/score", json={"unit_ids": ids}, headers=deployed["analyst"]).json()
    assert [f["unit_id"] for f in fresh] == ids
    for f in fresh:
        stored = c.get(f"/v1/units/{f['unit_id']}/risk", headers=deployed["analyst"]).json()
        assert f["as_of"] == stored["as_of"] and f["tier"] == stored["tier"]
        for k, v in f["probabilities"].items():
            assert abs(v - stored["probabilities"][k]) < 1e-3
        assert [r["feature"] for r in f["reasons"]] == [r["feature"] for r in stored["reasons"]]
        assert f["relative_risk"] == pytest.approx(stored["relative_risk"], abs=0.011)
        assert f["tier_set"] == stored["tier_set"]
    other = deployed["units"][deployed["units"]["township"] != deployed["township"]]["unit_id"].iloc[0]
    assert c.post("/v1/score", json={"unit_ids": [other]}, headers=deployed["clerk"]).status_code == 404


def test_the_months_precomputed_scores_equal_a_units_own(deployed):
    """A request for the latest month reads the month's explained scores computed together; they
    equal what the request computes for its units alone when they are not there yet."""
    scorer, ids = deployed["scorer"], deployed["units"]["unit_id"].iloc[3:10].tolist()
    scorer.warm()
    model, data = scorer._model, scorer._data
    key = (model.version, data.panel.last_month)
    month = data.peers[key]
    assert month.rows is not None and set(month.rows) == set(deployed["units"]["unit_id"])
    together = scorer.score(ids)
    saved, month.rows = month.rows, None
    scorer._filling.add(key)  # no background fill while the units are computed alone
    try:
        alone = scorer.score(ids)
    finally:
        month.rows = saved
        scorer._filling.discard(key)
    assert [r["unit_id"] for r in together] == [r["unit_id"] for r in alone] == ids
    for a, b in zip(together, alone, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-9)
        assert (a["tier"], a["tier_set"], a["model_version"]) == (
            b["tier"],
            b["tier_set"],
            b["model_version"],
        )
        assert [r["feature"] for r in a["reasons"]] == [r["feature"] for r in b["reasons"]]
        assert [r["contribution"] for r in a["reasons"]] == pytest.approx(
            [r["contribution"] for r in b["reasons"]], abs=1e-3
        )
        assert a["relative_risk"] == pytest.approx(b["relative_risk"])


def test_scores_as_of_a_date_ignore_later_events(deployed):
    """Point in time: adding events after the as-of month moves nothing of that month's score,
    while the latest month's score does move (so the check could fail)."""
    scorer, world = deployed["scorer"], deployed["world"]
    unit = deployed["units"]["unit_id"].iloc[1]
    before_past = scorer.score([unit], as_of="2022-06")[0]
    before_last = scorer.score([unit], as_of="2022-12")[0]
    events = pd.read_parquet(world / "events.parquet")
    extra = pd.DataFrame(
        {
            "event_id": [f"EXTRA-{i}" for i in range(6)],
            "unit_id": unit,
            "occurred_at": pd.to_datetime(
                ["2022-07-03", "2022-09-10", "2022-12-01", "2022-12-02", "2022-12-05", "2022-12-09"]
            ),
            "category": ["criminal", "petition", "dispute", "dispute", "dispute", "criminal"],
        }
    )
    pd.concat([events, extra], ignore_index=True).to_parquet(world / "events.parquet", index=False)
    try:
        scorer._checked = 0.0  # skip the once-a-second freshness throttle
        after_past = scorer.score([unit], as_of="2022-06")[0]
        after_last = scorer.score([unit], as_of="2022-12")[0]
    finally:
        events.to_parquet(world / "events.parquet", index=False)
        scorer._checked = 0.0
    assert after_past["probabilities"] == before_past["probabilities"]
    assert after_past["reasons"] == before_past["reasons"]
    assert after_last["risk_score"] > before_last["risk_score"]


def test_model_route_and_atomic_swap(deployed):
    c, settings = deployed["client"], deployed["settings"]
    info = c.get("/v1/model", headers=deployed["analyst"]).json()
    assert info["version"] == deployed["version"]
    assert "lightgbm.rps" in info["backtest_metrics"]
    assert info["training_window"]["last_as_of"] <= "2022-11"
    faster = CONFIG.model_copy(update={"model": CONFIG.model.model_copy(update={"num_leaves": 5})})
    v2 = jobs.train(deployed["world"], faster, settings)
    jobs.promote(v2, force=True, settings=settings)
    assert deployed["scorer"].reload_model() is True
    assert c.get("/v1/model", headers=deployed["analyst"]).json()["version"] == v2
    assert deployed["scorer"].reload_model() is False


def test_every_feature_renders_a_reason(deployed):
    _, bundle = jobs.registry(deployed["settings"]).load_alias("champion")
    assert len(bundle.specs) == len(bundle.feature_names) > 150
    for spec in bundle.specs:
        text = render(spec, 3, 1.5)
        assert text and "{" not in text and "}" not in text, spec.name
        assert any("\u4e00" <= ch <= "\u9fff" for ch in text), spec.name


def test_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    sanling = Path(sys.executable).parent / "sanling"
    env = {"SANLING_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    for args in (
        ["backtest", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
        ["score", str(tmp_path)],  # no champion in this home
        ["token", "create", "--role", "township"],
    ):  # township without --township
        r = subprocess.run([str(sanling), *args], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sanling:")]
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
