"""What one request costs the server in CPU (issue 13): GET one unit, GET a township list of 50 and
``/healthz`` on the province-sized store of ``benchmarks/load.py``, one worker, one client sending
one request after another — side by side with the same server at another git revision.

    .venv/bin/python benchmarks/request_cost.py [--against main] [--requests 1000] [--runs 5] [--backends sqlite,postgresql]

CPU time (user + system of the server process, all its threads) rather than latency: on a shared
machine it hardly depends on what else runs, and it is what bounds the rate one worker can hold
(200 req/s of the load mix at c ms a request is 0.2·c of a core). The peer (``--against REV``, a
temporary ``git worktree`` of that revision, served by this venv with the package mapped to it) and
this tree take turns, run by run, on the same store, so both meet the same machine; the ratios are
of the medians. Writes benchmarks/_out/request_cost.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Python puts this folder first on sys.path, where benchmarks/features.py would shadow the package:
# it goes last instead, where only the benchmark modules beside this script are found in it.
sys.path[:] = [*(p for p in sys.path if Path(p or ".").resolve() != HERE), str(HERE)]
import load  # noqa: E402
import loadgen  # noqa: E402


def serve_tree(root: str, uvicorn_args: list[str]) -> None:
    """Run uvicorn with the editable install's packages mapped to the tree at ``root``."""
    import importlib

    finder = next(m for m in sys.modules if m.startswith("__editable__") and m.endswith("_finder"))
    mapping = importlib.import_module(finder).MAPPING
    for name, path in mapping.items():
        mapping[name] = str(Path(root) / Path(path).relative_to(ROOT))
    import uvicorn.main

    sys.argv = ["uvicorn", *uvicorn_args]
    uvicorn.main.main()


def measure(pid: int, base: str, make, n: int, offset: int, headers: dict) -> tuple[float, float, int]:
    """(server CPU ms per request, median latency ms, errors) of ``n`` sequential requests."""
    cpu0 = load.server_cpu(pid)
    lat, errors = loadgen.sequential(base, lambda i: make(i + offset), n, headers)
    return (load.server_cpu(pid) - cpu0) * 1000 / n, float(np.median(lat)), errors


def run_backend(label: str, env: dict, args, units, token: str, work: Path, peer: Path | None) -> list[dict]:
    ids = units["unit_id"].tolist()
    places = units[["county", "township"]].drop_duplicates().to_numpy().tolist()
    makers = {**loadgen.read_makers(ids, places), "GET /healthz": lambda i: "/healthz"}
    hdr = {"Authorization": f"Bearer {token}"}
    trees = {"this tree": None}
    if peer is not None:
        trees[args.against] = [sys.executable, str(Path(__file__).resolve()), "--serve-tree", str(peer)]
    servers = {}
    try:
        for name, launcher in trees.items():
            servers[name] = load.serve(env, 1, work / f"{label}-{len(servers)}.log", launcher)
        for _p, base in servers.values():  # warm-up: statement caches, the page cache
            for make in makers.values():
                loadgen.sequential(base, make, 300, hdr)
        got = {(t, k): [] for t in servers for k in makers}
        for r in range(args.runs):
            for kind, make in makers.items():
                for name, (p, base) in servers.items():
                    got[name, kind].append(measure(p.pid, base, make, args.requests, r * args.requests, hdr))
    finally:
        for p, _ in servers.values():
            load.stop(p)
    rows = []
    for kind in makers:
        row = {
            "backend": label,
            "kind": kind,
            "requests_per_run": args.requests,
            "load_average": load.load_average(),
        }
        for name in servers:
            cpu = [g[0] for g in got[name, kind]]
            row[name] = {
                "cpu_ms_median": round(float(np.median(cpu)), 3),
                "cpu_ms_runs": [round(c, 3) for c in cpu],
                "latency_ms_median": round(float(np.median([g[1] for g in got[name, kind]])), 3),
                "errors": sum(g[2] for g in got[name, kind]),
            }
        line = f"{label:<10} {kind:<24}"
        for name in servers:
            m = row[name]
            line += (
                f" | {name}: CPU {m['cpu_ms_median']:.2f} ms/request (runs {', '.join(f'{c:.2f}' for c in m['cpu_ms_runs'])})"
                f", latency p50 {m['latency_ms_median']:.2f} ms, errors {m['errors']}"
            )
        if peer is not None:
            row["ratio"] = round(row["this tree"]["cpu_ms_median"] / row[args.against]["cpu_ms_median"], 3)
            line += f" | ratio {row['ratio']:.2f}"
        rows.append(row)
        print(line + f" | load average {row['load_average']}", flush=True)
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-tree":
        serve_tree(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", default=None, help="a git revision to measure side by side (e.g. main)")
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests per run and kind")
    ap.add_argument("--runs", type=int, default=5, help="runs per kind and tree (the median is reported)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sanling-cost-"))
    peer = None
    if args.against:
        peer = work / "peer"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(peer), args.against], check=True
        )
    units = load.province_units()
    results: list[dict] = []
    try:
        for backend in args.backends.split(","):
            with load.filled_store(backend, work, units) as (env, token):
                results += run_backend(backend, env, args, units, token, work, peer)
    finally:
        if peer is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(peer)], check=False)
    out = HERE / "_out"
    out.mkdir(exist_ok=True)
    doc = {"against": args.against, "requests_per_run": args.requests, "runs": args.runs, "results": results}
    (out / "request_cost.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
