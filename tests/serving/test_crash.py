"""Nothing lost on a crash: processes are killed with SIGKILL in the middle of their work, then the
store and the data folder are opened again and checked (issue 13).

* a burst of follow-up writes: every follow-up whose commit returned is there afterwards;
* a scoring run being written: readers see the old complete run or the new complete run, never a part;
* ``sanling validate``: no half-written Parquet is ever read back, and a re-run gives the same data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from api_world import UNITS
from sqlalchemy import func, select, text

from sanling.serving.store import init_db, save_scores, session_scope, upsert_units
from sanling.serving.store.tables import Followup, Score, ScoreRun

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


BURST = """
import sys
from sanling.serving.store import create_followup, init_db, session_scope
engine = init_db(sys.argv[1])
for i in range(100_000):
    with session_scope(engine) as s:
        f = create_followup(s, "140100001001", actor="burst", screened_on="2022-12-01", person=f"p{i}",
                            findings="x" * 500, status="排查中")
    print(f["id"], flush=True)  # only after the commit returned
"""


def test_every_committed_followup_survives_a_kill(db_url):
    url = db_url
    engine = init_db(url)
    with session_scope(engine) as s:
        upsert_units(s, UNITS)
        s.execute(text("DELETE FROM followups"))
    proc = _spawn(BURST, url)
    committed: list[int] = []
    for line in proc.stdout:
        committed.append(int(line))
        if len(committed) >= 150:
            break
    _kill(proc)
    committed += [int(x) for x in proc.stdout.read().split()]  # lines already in the pipe
    engine.dispose()
    engine = init_db(url)  # "restart"
    with session_scope(engine) as s:
        stored = set(s.scalars(select(Followup.id)))
        if url.startswith("sqlite"):
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert set(committed) <= stored
    assert len(stored) - len(committed) <= 1  # at most the write the kill interrupted after its commit
    engine.dispose()


WRITER = """
import sys
from sanling.serving.store import init_db, save_scores, session_scope
engine = init_db(sys.argv[1])
n = int(sys.argv[2])
rows = [{"unit_id": f"u{i:06d}", "tier": "red", "risk_score": 50.0,
         "probabilities": {"blue": .1, "yellow": .2, "orange": .3, "red": .4},
         "reasons": [{"feature": "f", "value": 1, "contribution": .1, "text_zh": "理由" * 20}]} for i in range(n)]
print("ready", flush=True)
while True:
    for version in ("new", "newer"):
        with session_scope(engine) as s:
            save_scores(s, {"as_of": "2022-12", "model_version": version}, rows)
"""


def test_a_scoring_run_is_all_or_nothing_under_kill(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    n = 8_000
    engine = init_db(url)
    with session_scope(engine) as s:
        save_scores(
            s,
            {"as_of": "2022-11", "model_version": "old"},
            [
                {
                    "unit_id": f"u{i:06d}",
                    "tier": "blue",
                    "risk_score": 1.0,
                    "probabilities": {"blue": 1, "yellow": 0, "orange": 0, "red": 0},
                }
                for i in range(n)
            ],
        )
    for delay in (0.3, 0.9):
        proc = _spawn(WRITER, url, str(n))
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        _kill(proc)
        engine.dispose()
        engine = init_db(url)
        with session_scope(engine) as s:
            runs = {(r.as_of, r.model_version): r.n_units for r in s.scalars(select(ScoreRun))}
            counts = dict(
                s.execute(select(Score.model_version, func.count()).group_by(Score.model_version)).all()
            )
            assert runs.get(("2022-11", "old")) == n and counts["old"] == n
            for version in ("new", "newer"):
                assert counts.get(version, 0) in (0, n), (delay, counts)
                assert (("2022-12", version) in runs) == (counts.get(version, 0) == n)
    engine.dispose()


def _dataset(home: Path) -> Path:
    found = list((home / "datasets").glob("*"))
    return found[0] if found else home / "datasets" / "none"


def test_validate_killed_while_writing_never_leaves_a_half_read_back(tmp_path):
    import pandas as pd

    from sanling.pipeline.simulate import simulate_world

    world = tmp_path / "world"
    simulate_world(world, preset="county", n_units=200, months=36, seed=5, fmt="csv", progress=False)
    sanling = str(Path(sys.executable).parent / "sanling")

    def validate(home: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sanling, "validate", str(world)],
            env={**ENV, "SANLING_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    reference = tmp_path / "reference"
    assert validate(reference).wait(timeout=300) == 0
    ref = _dataset(reference)
    home = tmp_path / "home"
    kills = 0
    for _ in range(2):
        proc = validate(home)
        deadline = time.time() + 120
        # Kill the moment the first output file (a temporary one, or its final name) appears.
        while proc.poll() is None and time.time() < deadline:
            folder = _dataset(home)
            if folder.exists() and any(p.name != "report.json" for p in folder.iterdir()):
                break
            time.sleep(0.001)
        if proc.poll() is None:
            _kill(proc)
            kills += 1
        folder = _dataset(home)
        if (folder / "report.json").exists():  # the commit marker: everything it vouches for is whole
            pd.read_parquet(folder / "units.parquet")
            pd.read_parquet(folder / "events.parquet")
        proc = validate(home)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        for name in ("units.parquet", "events.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(folder / name), pd.read_parquet(ref / name))
        for p in folder.iterdir():  # start the next round from nothing
            p.unlink()
    assert kills >= 1


def _score_store(url: str, version: str, as_of: str) -> tuple[dict, dict]:
    """(runs: (as_of, version) → n_units, rows: version → scored rows of ``as_of``) after a restart."""
    engine = init_db(url)
    try:
        with session_scope(engine) as s:
            runs = {(r.as_of, r.model_version): r.n_units for r in s.scalars(select(ScoreRun))}
            rows = dict(
                s.execute(
                    select(Score.model_version, func.count())
                    .where(Score.as_of == as_of)
                    .group_by(Score.model_version)
                ).all()
            )
            if url.startswith("sqlite"):
                assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        engine.dispose()
    return runs, rows


def test_the_score_command_killed_leaves_the_old_or_the_new_complete_set(tmp_path, db_url):
    """``kill -9`` of the real ``sanling score`` while it ingests (Parquet being written) and while it
    writes the store; after each kill the store holds the previous champion's complete month and the
    new champion's month either whole or not at all, and no half-written Parquet is read back."""
    import pandas as pd

    from sanling.core.config import Config, ModelParams, Settings
    from sanling.pipeline import jobs
    from sanling.pipeline.simulate import simulate_world

    world = tmp_path / "world"
    simulate_world(world, preset="county", n_units=240, months=40, seed=7, progress=False)
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    config = Config(
        test_periods=2,
        model=ModelParams(n_estimators=30, learning_rate=0.2, num_leaves=7, min_child_samples=40),
    )
    old = jobs.train(world, config, settings)
    jobs.promote(old, force=True, settings=settings)
    env = {**ENV, "SANLING_HOME": str(settings.home), "SANLING_DATABASE_URL": db_url}
    sanling = str(Path(sys.executable).parent / "sanling")

    def score() -> subprocess.Popen:
        return subprocess.Popen(
            [sanling, "score", str(world)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = score()
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    as_of = max(m for m, v in _score_store(db_url, old, "")[0] if v == old)
    runs, rows = _score_store(db_url, old, as_of)
    n = runs[(as_of, old)]
    assert rows == {old: n} and n == len(pd.read_parquet(world / "units.parquet"))

    new = jobs.train(world, config, settings)
    jobs.promote(new, force=True, settings=settings)
    datasets = settings.home / "datasets"
    wal = Path(db_url.removeprefix("sqlite:///") + "-wal") if db_url.startswith("sqlite") else None
    kills, outcomes = [], []
    # The Parquet written while ingesting does not depend on the store: killed there on SQLite only.
    moments = (
        ("ingest", "store", "store+0.3s", "store+1s")
        if wal is not None
        else ("store", "store+0.3s", "store+1s")
    )
    for moment in moments:
        for folder in datasets.glob("*"):  # ingest again, so that Parquet is written in this run
            for p in folder.iterdir():
                p.unlink()
        proc = score()
        lines: list[str] = []
        reader = threading.Thread(target=lambda p=proc, out=lines: out.extend(p.stderr), daemon=True)
        reader.start()
        wal_at_start = wal.stat().st_size if wal is not None and wal.exists() else 0
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            if moment == "ingest":
                if any(p.name != "report.json" for f in datasets.glob("*") for p in f.iterdir()):
                    break
            elif any(line.startswith("scored ") for line in lines):
                if moment == "store" and wal is not None:
                    # SQLite: the moment the store's log starts growing, i.e. inside the transaction
                    if wal.exists() and wal.stat().st_size != wal_at_start:
                        break
                else:
                    time.sleep({"store": 0.0, "store+0.3s": 0.3, "store+1s": 1.0}[moment])
                    break
            time.sleep(0.001)
        if proc.poll() is None:
            _kill(proc)
            kills.append(moment)
        reader.join(timeout=30)
        runs, rows = _score_store(db_url, old, as_of)
        assert runs[(as_of, old)] == n and rows[old] == n, moment  # the old month is whole
        assert rows.get(new, 0) in (0, n), (moment, rows)  # the new one whole or absent …
        assert ((as_of, new) in runs) == (rows.get(new, 0) == n), (moment, runs)  # … with its run record
        outcomes.append("new" if rows.get(new) else "old")
        for folder in datasets.glob("*"):
            if (folder / "report.json").exists():  # the commit marker: what it vouches for is whole
                pd.read_parquet(folder / "units.parquet")
                pd.read_parquet(folder / "events.parquet")
    assert len(kills) >= len(moments) - 1 and ("ingest" in kills or wal is None), kills  # they landed mid-run
    last = score()
    _, err = last.communicate(timeout=600)
    assert last.returncode == 0, err
    runs, rows = _score_store(db_url, old, as_of)
    assert rows == {old: n, new: n} and runs[(as_of, new)] == n, outcomes
