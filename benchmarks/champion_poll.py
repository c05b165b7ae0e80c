"""Champion-poll benchmark (issue 13): does promoting a new champion stall the running service?

    .venv/bin/python benchmarks/champion_poll.py [--seconds 75] [--rate 15] [--promote-at 10] [--work DIR]
    .venv/bin/python benchmarks/champion_poll.py --in-process


``sanling serve`` (one process: the API, the pages and the champion scorer, which re-reads the
registry's champion every 30 s) serves a simulated county at an open-loop mix of GET one unit,
GET a township list of 50 and POST /v1/score of one unit (fresh features and explanations). At
``--promote-at`` seconds another process runs ``sanling promote V2 --force``; the server's poll
loads the new model within 30 s and logs the swap. Printed per request kind: p50 / p99 / max over
the run, and p99 / max within 5 s after the swap against the rest — a stall shows up there. Writes
benchmarks/_out/champion_poll.json. The world, the two models and the store are kept in ``--work``
so that a second run (say, on other code) measures the same thing.

``--in-process`` measures the same swap without HTTP, so that a loaded machine's noise does not hide
it: the median ``score()`` of one unit, the time ``reload_model()`` takes in the poll thread, how late
a 1 ms sleep in another thread wakes meanwhile (how long the reload holds the interpreter lock from
the request threads), and the first ``score()`` after the swap against the later ones."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# Python puts this folder first on sys.path, where benchmarks/features.py would shadow the package:
# it goes last instead, where only the load generator beside this script is found in it.
sys.path[:] = [*(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]
import loadgen  # noqa: E402

BIN = Path(sys.executable).parent
SWAP = re.compile(r"^(\S+ \S+) .*serving model version (\S+)")


def setup(work: Path, n_units: int) -> dict:
    """A simulated county, two trained model versions (the first promoted and scored), a token."""
    state = work / "state.json"
    if state.exists():
        return json.loads(state.read_text())
    from sanling.core.config import Config, ModelParams, Settings
    from sanling.pipeline import jobs
    from sanling.pipeline.simulate import simulate_world

    settings = Settings(home=work / "home")
    world = work / "world"
    simulate_world(world, preset="county", n_units=n_units, months=48, seed=11, progress=False)
    config = Config(
        test_periods=2,
        model=ModelParams(n_estimators=120, learning_rate=0.1, num_leaves=15, min_child_samples=40),
    )
    first = jobs.train(world, config, settings)
    jobs.promote(first, force=True, settings=settings)
    jobs.score(world, settings=settings)
    second = jobs.train(world, config, settings)
    token = jobs.token_create("service", name="champion poll benchmark", settings=settings)
    doc = {"home": str(settings.home), "world": str(world), "first": first, "second": second, "token": token}
    state.write_text(json.dumps(doc))
    return doc


def in_process(s: dict) -> dict:
    import statistics

    import pandas as pd

    from sanling.core.config import Settings
    from sanling.pipeline import jobs
    from sanling.pipeline.live_scorer import ChampionScorer

    settings = Settings(home=Path(s["home"]))
    jobs.promote(s["first"], force=True, settings=settings)
    scorer = ChampionScorer(settings, Path(s["world"]), poll_seconds=0)
    ids = pd.read_parquet(Path(s["world"]) / "units.parquet")["unit_id"].astype(str).tolist()
    if hasattr(scorer, "warm"):  # the poll thread's first step (poll_seconds=0: no thread here)
        scorer.warm()
    scorer.score([ids[0]])

    def timed(k: int) -> float:
        t = time.perf_counter()
        scorer.score([ids[k]])
        return (time.perf_counter() - t) * 1000

    steady = [timed(k) for k in range(1, 21)]
    late: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            time.sleep(0.001)
            late.append((time.perf_counter() - t) * 1000 - 1)

    jobs.promote(s["second"], force=True, settings=settings)
    ticker = threading.Thread(target=tick)
    ticker.start()
    t = time.perf_counter()
    scorer.reload_model()
    reload_ms = (time.perf_counter() - t) * 1000
    stop.set()
    ticker.join()
    first = timed(21)
    later = [timed(k) for k in range(22, 42)]
    return {
        "score_median_ms": round(statistics.median(steady), 1),
        "reload_ms": round(reload_ms),
        "other_thread_late_max_ms": round(max(late), 1),
        "first_score_after_swap_ms": round(first, 1),
        "later_score_median_ms": round(statistics.median(later), 1),
    }


def sanling(env: dict, *args: str) -> None:
    subprocess.run([str(BIN / "sanling"), *args], env=env, check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=75.0)
    ap.add_argument("--rate", type=float, default=15.0, help="requests per second, the three kinds together")
    ap.add_argument("--promote-at", type=float, default=10.0, help="seconds into the run")
    ap.add_argument("--in-process", action="store_true", help="time the swap in process, without HTTP")
    ap.add_argument("--units", type=int, default=3000, help="units of the simulated county")
    ap.add_argument("--work", type=Path, default=HERE / "_out" / "champion_poll")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    s = setup(args.work, args.units)
    if args.in_process:
        print(json.dumps(in_process(s)))
        return
    env = {**os.environ, "SANLING_HOME": s["home"], "OMP_WAIT_POLICY": "PASSIVE"}
    sanling(env, "promote", s["first"], "--force")  # every run starts from the first model
    import pandas as pd

    units = pd.read_parquet(Path(s["world"]) / "units.parquet")
    ids = units["unit_id"].astype(str).tolist()
    places = units[["county", "township"]].drop_duplicates().to_numpy().tolist()
    makers = {
        **loadgen.read_makers(ids, places),
        "POST /v1/score, 1 unit": lambda i: (
            "POST",
            "/v1/score",
            json.dumps({"unit_ids": [ids[(i * 104729) % len(ids)]]}).encode(),
        ),
    }
    port = loadgen.free_port()
    log = args.work / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "sanling"), "serve", "--port", str(port), "--data-dir", s["world"]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    hdr = {"Authorization": f"Bearer {s['token']}"}
    try:
        loadgen.wait_up(f"{base}/healthz")
        loadgen.open_loop_mixed(base, makers, rate=args.rate, seconds=10, headers=hdr)  # warm-up
        started = time.time()
        promoted: list[float] = []

        def promote() -> None:
            time.sleep(args.promote_at)
            promoted.append(time.time() - started)
            sanling(env, "promote", s["second"], "--force")

        threading.Thread(target=promote, daemon=True).start()
        load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        result, pace = loadgen.open_loop_mixed(
            base, makers, rate=args.rate, seconds=args.seconds, headers=hdr
        )
        load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    swaps = [
        (dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - started, m.group(2))
        for m in map(SWAP.match, log.read_text().splitlines())
        if m and m.group(2) == s["second"]
    ]
    swap = swaps[0][0] if swaps else None
    print(
        f"generator: target {pace.target_rps:.0f} req/s, achieved {pace.achieved_rps:.1f}, send lag p99 "
        f"{pace.lag_p99_ms:.2f} ms, kept up: {'yes' if pace.kept_up else 'NO'}; load average {load_before} → "
        f"{load_after}"
    )
    print(
        f"promoted at {promoted[0]:.1f} s; the server swapped in version {s['second']} at "
        + (f"{swap:.1f} s" if swap is not None else "— (no swap logged)")
    )
    rows = []
    for kind, r in result.items():
        near = (r.at_s >= swap) & (r.at_s < swap + 5) if swap is not None else np.zeros(len(r.at_s), bool)
        row = {
            "kind": kind,
            "requests": len(r.latencies_ms),
            "errors": r.errors,
            "error_kinds": r.error_kinds,
            "p50_ms": round(r.pct(50), 2),
            "p99_ms": round(r.pct(99), 2),
            "max_ms": round(float(r.latencies_ms.max()), 1),
            "swap_5s_p99_ms": round(float(np.percentile(r.latencies_ms[near], 99)), 1)
            if near.any()
            else None,
            "swap_5s_max_ms": round(float(r.latencies_ms[near].max()), 1) if near.any() else None,
            "rest_p99_ms": round(float(np.percentile(r.latencies_ms[~near], 99)), 1),
            "rest_max_ms": round(float(r.latencies_ms[~near].max()), 1),
            "worst_second": r.worst_second()[0],
        }
        rows.append(row)
        print(
            f"{kind:<24} n={row['requests']:>5}  p50 {row['p50_ms']:>7.2f}  p99 {row['p99_ms']:>7.2f}  max "
            f"{row['max_ms']:>7.1f} ms | 5 s after the swap: p99 {row['swap_5s_p99_ms']}  max "
            f"{row['swap_5s_max_ms']} ms; the rest: p99 {row['rest_p99_ms']}  max {row['rest_max_ms']} ms; worst "
            f"second #{row['worst_second']}; errors {r.errors} {r.error_kinds or ''}"
        )
    out = HERE / "_out"
    out.mkdir(exist_ok=True)
    (out / "champion_poll.json").write_text(
        json.dumps(
            {
                "seconds": args.seconds,
                "rate": args.rate,
                "promoted_at_s": promoted[0],
                "swap_at_s": swap,
                "generator": {**pace.__dict__, "kept_up": pace.kept_up},
                "load_average": [load_before, load_after],
                "results": rows,
            },
            ensure_ascii=False,
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
