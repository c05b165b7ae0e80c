"""End to end on a simulated county with the reporting process on: scores as of a month — through
the batch scorer (`sanling score --as-of`) and through the API's fresh scores — equal the scores
from the records as they stood at the end of that month, and differ from scores that treat the late
records as known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from records import records_at

from sanling.core.config import Config, ModelParams, Settings
from sanling.pipeline import jobs
from sanling.pipeline.live_scorer import ChampionScorer
from sanling.pipeline.simulate import simulate_world
from sanling.serving.app import create_app

pytestmark = pytest.mark.slow

CONFIG = Config(
    test_periods=2, model=ModelParams(n_estimators=60, learning_rate=0.1, num_leaves=7, min_child_samples=40)
)
AS_OF = "2022-06"


def _write_records_at(world: Path, out: Path, month: str) -> None:
    """A data directory holding only what the simulated records held at the end of ``month``."""
    out.mkdir()
    events = pd.read_parquet(world / "events.parquet")
    updates = pd.read_parquet(world / "event_updates.parquet")
    history = pd.read_parquet(world / "unit_history.parquet")
    ev, _, hist = records_at(events, updates, history, month)
    ev["severity"] = ev["severity"].astype("Int8")
    pd.read_parquet(world / "units.parquet").to_parquet(out / "units.parquet", index=False)
    ev.to_parquet(out / "events.parquet", index=False)
    hist.to_parquet(out / "unit_history.parquet", index=False)


def _naive(world: Path, out: Path) -> None:
    """The same records with every late piece treated as known when it happened (no dates, no
    corrections applied late: the final values, as the old ingestion saw them)."""
    out.mkdir()
    events = pd.read_parquet(world / "events.parquet").drop(columns=["reported_at", "escalated_at"])
    updates = pd.read_parquet(world / "event_updates.parquet")
    final, _, _ = records_at(
        events.assign(reported_at=events["occurred_at"], escalated_at=pd.NaT),
        updates,
        pd.read_parquet(world / "unit_history.parquet"),
        "2099-12",
    )
    final.drop(columns=["reported_at", "escalated_at"]).to_parquet(out / "events.parquet", index=False)
    pd.read_parquet(world / "units.parquet").to_parquet(out / "units.parquet", index=False)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    work = tmp_path_factory.mktemp("known")
    settings = Settings(home=work / "home")
    world = work / "world"
    simulate_world(world, preset="county", n_units=160, seed=5, progress=False)
    version = jobs.train(world, CONFIG, settings)
    jobs.promote(version, settings=settings, force=True)
    _write_records_at(world, work / "then", AS_OF)
    _naive(world, work / "naive")
    scorers = {
        name: ChampionScorer(settings, work / name, poll_seconds=0) for name in ("world", "then", "naive")
    }
    yield {"work": work, "settings": settings, "scorers": scorers}
    for s in scorers.values():
        s.close()


def _probabilities(rows: list[dict]) -> np.ndarray:
    return np.array([[r["probabilities"][k] for k in ("blue", "yellow", "orange", "red")] for r in rows])


def test_scores_of_a_month_equal_the_records_as_they_stood_then(deployed):
    s = deployed["scorers"]
    units = pd.read_parquet(deployed["work"] / "world" / "units.parquet")["unit_id"].tolist()
    now = s["world"].score(units, as_of=AS_OF)
    then = s["then"].score(units, as_of=AS_OF)
    naive = s["naive"].score(units, as_of=AS_OF)
    np.testing.assert_allclose(_probabilities(now), _probabilities(then), atol=1e-9)
    assert [r["reasons"] for r in now] == [r["reasons"] for r in then]
    # Treating the late records as known moves some of the month's scores.
    assert np.abs(_probabilities(now) - _probabilities(naive)).max() > 1e-3
    # What the unit page says was recorded after the fact: late entries and later escalations are
    # the same from either folder (the folder of the records then applied its corrections in place,
    # so only the full one can count them), and absent without reporting dates.
    late = [r["late_records"] for r in now]
    dated = ("events", "escalations", "window_months")
    assert [{k: x[k] for k in dated} for x in late] == [
        {k: r["late_records"][k] for k in dated} for r in then
    ]
    assert sum(x["events"] for x in late) > 0 and any(x["events"] == 0 for x in late)
    assert sum(x["corrections"] for x in late) > 0
    assert all(r.get("late_records") is None for r in naive)


def test_batch_scores_and_the_api_follow_the_same_rule(deployed):
    work, settings = deployed["work"], deployed["settings"]
    jobs.score(work / "world", as_of=AS_OF, settings=settings)
    app = create_app(settings, deployed["scorers"]["then"])
    token = jobs.token_create("analyst", settings=settings)
    headers = {"Authorization": f"Bearer {token}"}
    units = pd.read_parquet(work / "world" / "units.parquet")["unit_id"].iloc[:8].tolist()
    with TestClient(app) as client:
        for unit in units:
            stored = client.get(f"/v1/units/{unit}/risk?as_of={AS_OF}", headers=headers).json()
            fresh = deployed["scorers"]["then"].score([unit], as_of=AS_OF)[0]
            assert stored["as_of"] == AS_OF
            assert (
                stored["late_records"]
                == deployed["scorers"]["world"].score([unit], as_of=AS_OF)[0]["late_records"]
            )
            for k, v in fresh["probabilities"].items():
                assert abs(v - stored["probabilities"][k]) < 1e-3
        # POST /v1/score scores the latest month of the data it was given.
        posted = client.post("/v1/score", json={"unit_ids": units}, headers=headers).json()
        assert {p["as_of"] for p in posted} == {AS_OF}
        direct = deployed["scorers"]["world"].score(units, as_of=AS_OF)
        np.testing.assert_allclose(_probabilities(posted), _probabilities(direct), atol=1e-6)


class _Computing:
    """A scorer offering only ``score``: the API route computes every answer."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer

    def score(self, unit_ids, as_of=None):
        return self.scorer.score(unit_ids, as_of)

    def model_info(self) -> dict:
        return self.scorer.model_info()


class _Cached(_Computing):
    """The live scorer, noting which requests were answered from its cached rows."""

    def __init__(self, scorer) -> None:
        super().__init__(scorer)
        self.hits: list[bool] = []

    def cached_json(self, unit_ids, as_of, encode):
        parts = self.scorer.cached_json(unit_ids, as_of, encode)
        self.hits.append(parts is not None)
        return parts


def test_the_months_cached_answers_equal_the_computed_ones(deployed):
    """POST /v1/score from the live scorer's explained month (serving/api/fast_score.py: each unit's
    row kept as the response model's JSON) answers exactly what the route computes."""
    work, settings = deployed["work"], deployed["settings"]
    scorer = deployed["scorers"]["then"]
    scorer.warm()  # the month's explained scores, as the poll thread computes them at start-up
    jobs.score(work / "then", settings=settings)  # the store knows the units
    token = jobs.token_create("service", settings=settings)
    headers = {"Authorization": f"Bearer {token}"}
    units = pd.read_parquet(work / "then" / "units.parquet")["unit_id"].iloc[:5].tolist()
    bodies = [{"unit_ids": units[:1]}, {"unit_ids": [units[3], units[1], units[3]]}, {"unit_ids": units}]
    cached = _Cached(scorer)
    answers = {}
    for name, s in (("cached", cached), ("computed", _Computing(scorer))):
        with TestClient(create_app(settings, s)) as client:
            answers[name] = []
            for b in bodies:
                scorer.score(units[:1])  # the data checked just now: the cached rows may be used
                answers[name].append(client.post("/v1/score", json=b, headers=headers))
    assert cached.hits == [True] * 3
    assert [r.status_code for r in answers["cached"] + answers["computed"]] == [200] * 6
    assert [r.json() for r in answers["cached"]] == [r.json() for r in answers["computed"]]


def test_ready_once_the_latest_month_is_explained(deployed):
    """GET /readyz: 503 while the live scorer has not explained its latest month, 200 after."""
    work, settings = deployed["work"], deployed["settings"]
    scorer = ChampionScorer(settings, work / "then", poll_seconds=0)
    with TestClient(create_app(settings, scorer)) as client:
        before = client.get("/readyz")
        scorer.warm()
        after = client.get("/readyz")
    assert (before.status_code, after.status_code) == (503, 200)
    assert "warming up" in before.json()["detail"] and after.json() == {"status": "ok"}
    assert scorer.ready()
