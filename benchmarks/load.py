"""Load benchmark (issue 13): a province-sized store served at an open-loop 200 req/s, mixed half
GET one unit / half GET a township list of 50, first by one worker, then by the recommended number
of workers, on SQLite and on PostgreSQL. Prints p50 / p99 / p99.9 / max per request kind, the worst
second (highest per-second p99) and the errors; writes benchmarks/_out/load.json.

    .venv/bin/python benchmarks/load.py [--seconds 300] [--rate 200] [--workers 2] [--backends sqlite,postgresql]

Targets: p99 ≤ 10 ms for a unit, ≤ 20 ms for a list, 0 errors. The store holds 50,000 units in
~1,390 townships of ~117 counties (the province preset's shape) with two scored months and five
reasons per score, written through the store's own functions — the GET routes read only the store,
so no model is trained for this benchmark. The server runs as ``uvicorn --factory
sanling.serving.app:create_app`` (what ``sanling serve`` runs, minus the scorer), so it can be given
workers. Open loop: latency is measured from each request's scheduled send time, so a stall shows
up as the queue it causes."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
# Python puts this folder first on sys.path, where benchmarks/features.py would shadow the package:
# it goes last instead, where only the load generator beside this script is found in it.
sys.path[:] = [*(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]
import loadgen  # noqa: E402

BIN = Path(sys.executable).parent
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
N_UNITS, N_COUNTIES, N_TOWNSHIPS = 50_000, 117, 1_390
TIERS = ("blue", "yellow", "orange", "red")


def province_units(seed: int = 1) -> pd.DataFrame:
    """50,000 units over 1,390 townships of 117 counties; township names repeat across counties."""
    rng = np.random.default_rng(seed)
    township = rng.integers(0, N_TOWNSHIPS, N_UNITS)
    county = township % N_COUNTIES
    return pd.DataFrame(
        {
            "unit_id": [f"14{i:010d}" for i in range(N_UNITS)],
            "unit_name": [f"第{i}村" for i in range(N_UNITS)],
            "unit_type": rng.choice(["village", "community", "enterprise"], N_UNITS, p=[0.56, 0.05, 0.39]),
            "township": [f"城关镇{t % 40}" for t in township],  # 40 names over 1,390 townships: repeats
            "county": [f"县{c:03d}" for c in county],
            "city": [f"市{c % 11:02d}" for c in county],
        }
    )


def score_rows(units: pd.DataFrame, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([4, 2, 1, 0.5], len(units))
    reasons = [
        {
            "feature": f"f{k}",
            "value": k,
            "contribution": 0.1 * (5 - k),
            "text_zh": f"未化解矛盾纠纷{k}起，高于同类村庄平均",
            "group": "矛盾纠纷",
        }
        for k in range(5)
    ]
    return [
        {
            "unit_id": u,
            "tier": TIERS[int(np.argmax(pi))],
            "risk_score": float(100 * pi[3] + 50 * pi[2]),
            "probabilities": dict(zip(TIERS, map(float, pi), strict=True)),
            "reasons": reasons,
        }
        for u, pi in zip(units["unit_id"], p, strict=True)
    ]


def fill_store(url: str, units: pd.DataFrame) -> str:
    """Write the units, two scored months and a service token; returns the token."""
    from sanling.serving.store import create_token, init_db, save_scores, session_scope, upsert_units
    from sanling.serving.store.db import refresh_statistics

    engine = init_db(url)
    with session_scope(engine) as s:
        upsert_units(s, units)
        save_scores(s, {"as_of": "2022-11", "model_version": "1"}, score_rows(units, 1))
        save_scores(s, {"as_of": "2022-12", "model_version": "1"}, score_rows(units, 2))
        refresh_statistics(s)  # as `sanling score` does after its writes
        token = create_token(s, "service", name="load benchmark")
    engine.dispose()
    return token


@contextmanager
def filled_store(backend: str, work: Path, units: pd.DataFrame) -> Iterator[tuple[dict, str]]:
    """A filled store on ``backend`` (``sqlite``, or ``postgresql``: a database of its own, dropped
    afterwards): yields the server's environment and a service token."""
    home = work / backend
    home.mkdir()
    env = {**os.environ, "SANLING_HOME": str(home), "OMP_WAIT_POLICY": "PASSIVE"}
    db = None
    if backend == "postgresql":
        import psycopg

        db = f"sanling_load_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{db}"')
        env["SANLING_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    url = env.get("SANLING_DATABASE_URL") or f"sqlite:///{home / 'sanling.db'}"
    try:
        print(f"filling the {backend} store with {len(units):,} units …", flush=True)
        yield env, fill_store(url, units)
    finally:
        if db is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


UVICORN_ARGS: list[str] = []


def serve(
    env: dict, workers: int, log: Path, launcher: list[str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start ``uvicorn`` (or ``launcher``, given uvicorn's arguments) on a free port; returns the
    process (the leader of its own process group) and the base URL once it answers."""
    port = loadgen.free_port()
    cmd = [
        *(launcher or [str(BIN / "uvicorn")]),
        "--factory",
        "sanling.serving.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        *UVICORN_ARGS,
    ]
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    loadgen.wait_up(f"{base}/healthz")
    return p, base


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, as ``uptime`` prints them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def server_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the server's processes (its process group)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the name: state, ppid, pgrp, …
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=30)
    except Exception:
        os.killpg(p.pid, signal.SIGKILL)


def run_one(
    label: str, env: dict, workers: int, args, units: pd.DataFrame, token: str, work: Path
) -> list[dict]:
    ids = units["unit_id"].tolist()
    places = units[["county", "township"]].drop_duplicates().to_numpy().tolist()
    p, base = serve(env, workers, work / f"{label}-{workers}.log")
    rows = []
    try:
        makers = loadgen.read_makers(ids, places)
        hdr = {"Authorization": f"Bearer {token}"}
        loadgen.open_loop_mixed(base, makers, rate=args.rate, seconds=5, headers=hdr)  # warm-up
        before, cpu0, t0 = load_average(), server_cpu(p.pid), time.monotonic()
        result, pace = loadgen.open_loop_mixed(
            base, makers, rate=args.rate, seconds=args.seconds, headers=hdr
        )
        server_share = (server_cpu(p.pid) - cpu0) / (time.monotonic() - t0)
        after = load_average()
        print(
            f"{label:<10} {workers} worker(s)  generator: target {pace.target_rps:.0f} req/s, achieved "
            f"{pace.achieved_rps:.1f}, send lag p50 {pace.lag_p50_ms:.2f} / p99 {pace.lag_p99_ms:.2f} / max "
            f"{pace.lag_max_ms:.1f} ms, kept up: {'yes' if pace.kept_up else 'NO'}; CPU generator "
            f"{pace.cpu_share:.0%}, server {server_share:.0%} of one core; load average {before} → {after}",
            flush=True,
        )
        for kind, r in result.items():
            second, worst = r.worst_second()
            row = {
                "backend": label,
                "workers": workers,
                "kind": kind,
                "requests": len(r.latencies_ms),
                "errors": r.errors,
                "error_kinds": r.error_kinds,
                "p50_ms": round(r.pct(50), 2),
                "p99_ms": round(r.pct(99), 2),
                "p999_ms": round(r.pct(99.9), 2),
                "max_ms": round(float(r.latencies_ms.max()), 1),
                "worst_second": second,
                "worst_second_p99_ms": round(worst, 1),
                "send_lag_p99_ms": round(float(np.percentile(r.send_lag_ms, 99)), 2),
                "generator": {**asdict(pace), "kept_up": pace.kept_up},
                "server_cpu_share": round(server_share, 3),
                "load_average_before": before,
                "load_average_after": after,
            }
            rows.append(row)
            print(
                f"{label:<10} {workers} worker(s)  {kind:<24} n={row['requests']:>6}  p50 {row['p50_ms']:>6.2f}  "
                f"p99 {row['p99_ms']:>7.2f}  p99.9 {row['p999_ms']:>7.2f}  max {row['max_ms']:>7.1f} ms  "
                f"worst second #{second}: p99 {row['worst_second_p99_ms']:.1f} ms  errors {r.errors} {r.error_kinds or ''}",
                flush=True,
            )
    finally:
        stop(p)
    return rows


def write_results(args, results: list[dict]) -> None:
    out = HERE / "_out"
    out.mkdir(exist_ok=True)
    doc = {"seconds": args.seconds, "rate": args.rate, "uvicorn": args.uvicorn, "results": results}
    (out / "load.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300.0, help="length of each measured run")
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second, both kinds together")
    ap.add_argument("--workers", type=int, default=2, help="the recommended number of workers (docs)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--uvicorn", default="", help="extra uvicorn options, e.g. '--http h11'")
    args = ap.parse_args()
    UVICORN_ARGS[:] = args.uvicorn.split()
    work = Path(tempfile.mkdtemp(prefix="sanling-load-"))
    units = province_units()
    results: list[dict] = []
    for backend in args.backends.split(","):
        with filled_store(backend, work, units) as (env, token):
            for workers in sorted({1, args.workers}):
                results += run_one(backend, env, workers, args, units, token, work)
                write_results(args, results)  # after each configuration: a cut-short run keeps its figures


if __name__ == "__main__":
    main()
