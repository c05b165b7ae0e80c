"""Serving benchmark (issues 5, 14): the sanling API under load on loopback, side by side with the
≥orange booster served by ``mlflow models serve`` (predictions only), plus batch scoring with
explanations.

    .venv/bin/python benchmarks/serving.py [--province] [--seconds 8]

Prints throughput, p50 and p99 per scenario and the ratios; writes benchmarks/_out/serving.json.
Targets (2-core machine): GET p99 ≤ 20 ms at 100 req/s; POST one unit with fresh SHAP p99 ≤ 50 ms;
province batch scoring with explanations ≤ 30 s; POST one unit with fresh features and explanations
≥ 10× the requests per second of the MLflow server answering predictions only (issue 14).

The peer is the strongest an analyst would run: the champion's first ≥orange booster logged in
MLflow's native ``lightgbm`` flavour (no signature, so no schema enforcement), served by ``mlflow
models serve``, sent the model's encoded feature row (what the booster reads) as ``dataframe_split``.
Before issue 14 the peer was the pyfunc bundle (``models:/sanling@champion``), sent the frame's row."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd

HERE = Path(__file__).resolve().parent
# Python puts this folder first on sys.path, where benchmarks/features.py would shadow the package:
# it goes last instead, where only the load generator beside this script is found in it.
sys.path[:] = [*(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]
import loadgen  # noqa: E402

closed_loop, open_loop, wait_up = loadgen.closed_loop_lean, loadgen.open_loop_lean, loadgen.wait_up

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def setup(work: Path, preset: str) -> dict:
    """Simulate, train, promote, score, make a service token — in process, with their own home."""
    from sanling.core.config import Config, Settings
    from sanling.pipeline import jobs
    from sanling.pipeline.simulate import simulate_world

    settings = Settings(home=work / "home")
    world = work / "world"
    done = work / "setup.json"  # a --work folder set up before: its model, scores and token again
    if done.exists():
        saved = json.loads(done.read_text())
        return {"settings": settings, "world": world, "token": saved["token"], "version": saved["version"]}
    if not (world / "events.parquet").exists():
        simulate_world(world, preset=preset, seed=1)
    config = Config()
    version = jobs.train(world, config, settings)
    jobs.promote(version, force=True, settings=settings)
    jobs.score(world, settings=settings)
    token = jobs.token_create("service", name="bench", settings=settings)
    done.write_text(json.dumps({"token": token, "version": version}))
    done.chmod(0o600)
    return {"settings": settings, "world": world, "token": token, "version": version}


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=20)
    except Exception:
        os.killpg(p.pid, signal.SIGKILL)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a server process and its children (mlflow execs uvicorn)."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    return sum(t.user + t.system for t in (p.cpu_times() for p in procs))


def cpu_per_request(pid: int, run):
    """(result of ``run()``, the server's CPU milliseconds per request over it)."""
    before = server_cpu(pid)
    r = run()
    return r, (server_cpu(pid) - before) * 1000 / max(r.n, 1)


def row(name: str, r, target: str = "", cpu_ms: float | None = None) -> dict:
    d = {
        "server_cpu_ms_per_request": None if cpu_ms is None else round(cpu_ms, 2),
        "scenario": name,
        "requests": r.n,
        "errors": r.errors,
        "rps": round(r.rps, 1),
        "p50_ms": round(r.pct(50), 2),
        "p99_ms": round(r.pct(99), 2),
        "target": target,
        "client_cpu_ms_per_request": round(getattr(r, "client_cpu_ms", float("nan")), 3),
    }
    print(
        f"{name:<62} {d['rps']:>8.1f} req/s  p50 {d['p50_ms']:>7.2f} ms  p99 {d['p99_ms']:>8.2f} ms"
        f"  errors {r.errors:>3}  {target}"
        + ("" if cpu_ms is None else f"  server CPU {cpu_ms:.2f} ms/request")
        + (
            ""
            if d["client_cpu_ms_per_request"] != d["client_cpu_ms_per_request"]
            else f"  generator CPU {d['client_cpu_ms_per_request']:.2f} ms/request"
        ),
        flush=True,
    )
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--province", action="store_true", help="also time province batch scoring")
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="a folder to set up in (or reuse, when set up by an earlier run)",
    )
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sanling-bench-"))
    print(f"setting up in {work} …", flush=True)
    s = setup(work, "county")
    settings, token = s["settings"], s["token"]
    env = {
        **os.environ,
        "SANLING_HOME": str(settings.home),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    results: list[dict] = []
    hdr = {"Authorization": f"Bearer {token}"}

    port = loadgen.free_port()
    api = start(
        [str(BIN / "sanling"), "serve", "--port", str(port), "--data-dir", str(s["world"])],
        env,
        work / "api.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        t_up = time.perf_counter()
        wait_up(f"{base}/readyz", timeout=600)  # the latest month explained: nothing warms up under load
        print(f"API ready (latest month explained) after {time.perf_counter() - t_up:.1f} s", flush=True)
        units = pd.read_parquet(s["world"] / "units.parquet")
        ids = units["unit_id"].astype(str).tolist()
        township = units["township"].value_counts().index[0]
        # Requests as the load generator's minimal client sends them: a GET target, or (method, target,
        # JSON body) — each body serialised once, before timing.
        one = [json.dumps({"unit_ids": [u]}).encode() for u in ids]
        hundred = [
            json.dumps({"unit_ids": ids[k : k + 100]}).encode() for k in range(0, max(len(ids) - 100, 1), 100)
        ]
        list_target = "/v1/risk-list?" + urlencode({"township": township, "limit": 50})

        def get_unit(i):
            return f"/v1/units/{ids[i % len(ids)]}/risk"

        def get_list(i):
            return list_target

        def post1(i):
            return ("POST", "/v1/score", one[i % len(one)])

        def post100(i):
            return ("POST", "/v1/score", hundred[i % len(hundred)])

        closed_loop(base, get_unit, seconds=2, headers=hdr)

        closed_loop(base, post1, seconds=2, headers=hdr)
        sec = args.seconds
        print(f"\n{'scenario':<62} {'throughput':>14}  latency", flush=True)
        results.append(row("GET unit, 8 clients", closed_loop(base, get_unit, seconds=sec, headers=hdr)))
        results.append(
            row(
                "GET unit, open loop 100 req/s",
                open_loop(base, get_unit, rate=100, seconds=sec, headers=hdr),
                "p99 ≤ 20 ms",
            )
        )
        results.append(
            row("GET township list of 50, 8 clients", closed_loop(base, get_list, seconds=sec, headers=hdr))
        )
        results.append(
            row(
                "GET township list of 50, open loop 100 req/s",
                open_loop(base, get_list, rate=100, seconds=sec, headers=hdr),
                "p99 ≤ 20 ms",
            )
        )
        r, cpu = cpu_per_request(api.pid, lambda: closed_loop(base, post1, seconds=sec, headers=hdr))
        results.append(row("POST score 1 unit (fresh SHAP), 8 clients", r, cpu_ms=cpu))
        results.append(
            row(
                "POST score 1 unit, open loop 20 req/s",
                open_loop(base, post1, rate=20, seconds=sec, headers=hdr),
                "p99 ≤ 50 ms",
            )
        )
        results.append(
            row(
                "POST score 100 units, 4 clients",
                closed_loop(base, post100, concurrency=4, seconds=sec, headers=hdr),
            )
        )
    finally:
        stop(api)

    # The peer: the same registered model behind `mlflow models serve` (predictions only).
    from sanling.features.build import build_frame
    from sanling.features.panel import build_panel
    from sanling.pipeline import jobs
    from sanling.pipeline.ingest import load_dataset

    _version, bundle = jobs.registry(settings).load_alias("champion")
    ds = load_dataset(s["world"], categories=bundle.config.categories, home=settings.home)
    panel = build_panel(ds.units, ds.events, bundle.config.categories)
    frame = build_frame(
        panel,
        [panel.last_month],
        tier_rules=bundle.config.tiers,
        horizon_months=1,
        params=bundle.config.features,
        with_labels=False,
    )
    peer_uri = native_peer(settings, bundle)
    X = bundle.model._matrix(frame)  # the encoded row the booster reads
    cols = [f"f{j}" for j in range(X.shape[1])]
    # JSON with NaN tokens (what pandas' to_json of a missing value reads back as), serialised once
    payloads = [
        json.dumps({"dataframe_split": {"columns": cols, "data": [[float(v) for v in X[i]]]}}).encode()
        for i in range(min(len(X), 500))
    ]
    mport = loadgen.free_port()
    peer = start(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            peer_uri,
            "--env-manager",
            "local",
            "-p",
            str(mport),
            "-h",
            "127.0.0.1",
        ],
        env,
        work / "mlflow.log",
    )
    mbase = f"http://127.0.0.1:{mport}"
    try:
        wait_up(f"{mbase}/ping", timeout=180)

        def peer1(i):
            return ("POST", "/invocations", payloads[i % len(payloads)])

        warm = closed_loop(mbase, peer1, seconds=2)
        if warm.errors:
            sys.exit(
                f"the MLflow peer answered {warm.errors} of {warm.n} requests with an error: see {work / 'mlflow.log'}"
            )
        r, cpu = cpu_per_request(peer.pid, lambda: closed_loop(mbase, peer1, seconds=sec))
        results.append(row("mlflow serve (native lightgbm): predict 1 row, 8 clients", r, cpu_ms=cpu))
        results.append(
            row(
                "mlflow serve (native lightgbm): predict 1 row, open loop 20 req/s",
                open_loop(mbase, peer1, rate=20, seconds=sec),
            )
        )
    finally:
        stop(peer)

    by = {r["scenario"]: r for r in results}
    ours = by["POST score 1 unit (fresh SHAP), 8 clients"]["rps"]
    theirs = by["mlflow serve (native lightgbm): predict 1 row, 8 clients"]["rps"]
    get_ours = by["GET unit, 8 clients"]["rps"]
    cpu_ours = by["POST score 1 unit (fresh SHAP), 8 clients"]["server_cpu_ms_per_request"]
    cpu_theirs = by["mlflow serve (native lightgbm): predict 1 row, 8 clients"]["server_cpu_ms_per_request"]
    print(
        f"server CPU per request: ours {cpu_ours:.2f} ms (POST 1 unit with explanations), mlflow {cpu_theirs:.2f} ms "
        f"(predict only): {cpu_theirs / cpu_ours:.2f}× the requests per CPU second"
    )
    print(
        f"\nthroughput ratio, POST 1 unit with explanations vs mlflow predict-only: {ours / theirs:.2f}× "
        f"(target ≥ 10×): {'met' if ours >= 10 * theirs else 'MISSED'}; GET explained unit vs mlflow: "
        f"{get_ours / theirs:.2f}×"
    )

    batch = {}
    if args.province:
        batch = province_batch(work)
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(
        json.dumps(
            {"results": results, "batch": batch, "ratio_post1_vs_mlflow": ours / theirs},
            indent=2,
            ensure_ascii=False,
        )
    )


def native_peer(settings, bundle) -> str:
    """Log the champion's first ≥orange booster in MLflow's native lightgbm flavour; its model URI."""
    import mlflow

    from sanling.models.tier_model import CUMULATIVE_LEVELS, EXPLAINED_LEVEL

    booster = bundle.model.members_[CUMULATIVE_LEVELS.index(EXPLAINED_LEVEL)][0]
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment("serving-benchmark-peer")
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(booster, name="booster")
    return info.model_uri


def province_batch(work: Path) -> dict:
    """Batch scoring with explanations of every province unit, timed in-process."""
    from sanling.core.config import Config, Settings
    from sanling.pipeline import jobs
    from sanling.pipeline.scoring import explained_scores
    from sanling.pipeline.simulate import simulate_world

    world = work / "province"
    if not (world / "events.parquet").exists():
        print("simulating the province preset …", flush=True)
        simulate_world(world, preset="province", seed=1)
    settings = Settings(home=work / "home_province")
    config = Config()
    version = jobs.train(world, config, settings)
    jobs.promote(version, force=True, settings=settings)
    _, bundle = jobs.registry(settings).load_alias("champion")
    ds, panel = jobs.prepare(world, config, settings)
    t0 = time.perf_counter()
    rows = explained_scores(bundle, ds, panel, panel.last_month, model_version=version)
    took = time.perf_counter() - t0
    print(f"province batch scoring with explanations: {len(rows):,} units in {took:.1f} s (target ≤ 30 s)")
    return {"units": len(rows), "seconds": round(took, 1)}


if __name__ == "__main__":
    main()
