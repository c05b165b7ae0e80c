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
