"""Model quality on simulated counties (issue 4 targets), one backtest per seed.

    .venv/bin/python benchmarks/backtest_seeds.py [--seeds 0 1 2 3] [--config FILE]

For every seed: simulate a county, run `sanling backtest` (subprocess, own SANLING_HOME) and print
RPS of every model, the share of the oracle's skill captured (± 1 SE, blocks = as-of months), ECE,
red recall and wall time; then the targets met or not. Writes benchmarks/_out/backtest_seeds.json."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_seed(seed: int, work: Path, config: Path | None) -> dict:
    world, out = work / f"world{seed}", work / f"bt{seed}"
    env = {**os.environ, "SANLING_HOME": str(work / f"home{seed}")}
    subprocess.run(
        [str(BIN / "sanling"), "simulate", "--out", str(world), "--seed", str(seed)],
        check=True,
        env=env,
        capture_output=True,
    )
    cmd = [str(BIN / "sanling"), "backtest", str(world), "--out", str(out)]
    if config:
        cmd += ["--config", str(config)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    return {"seed": seed, "seconds": round(took, 1), "metrics": m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--config", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sanling-seeds-"))
    rows = []
    names = ["lightgbm", "persistence", "historical_rate", "logistic", "oracle"]
    print(
        f"{'seed':>4} "
        + " ".join(f"{n[:10]:>10}" for n in names)
        + f" {'share':>13} {'ece':>6} {'red_rec':>7} {'secs':>6}",
        flush=True,
    )
    for seed in args.seeds:
        r = run_seed(seed, work, args.config)
        m, s = r["metrics"]["models"], r["metrics"]["summary"]
        rows.append(r)
        print(
            f"{seed:>4} "
            + " ".join(f"{m[n]['rps']:>10.5f}" for n in names)
            + f" {s['oracle_share']:>7.3f}±{s['oracle_share_se']:.3f} {m['lightgbm']['ece']:>6.4f}"
            f" {m['lightgbm']['red_recall']:>7.3f} {r['seconds']:>6.0f}",
            flush=True,
        )
    ok = {
        "lightgbm RPS below every baseline": all(
            r["metrics"]["models"]["lightgbm"]["rps"]
            < min(r["metrics"]["models"][b]["rps"] for b in ("persistence", "historical_rate", "logistic"))
            for r in rows
        ),
        "oracle share ≥ 0.9": all(r["metrics"]["summary"]["oracle_share"] >= 0.9 for r in rows),
        "oracle share never above 1 beyond 2 SE": all(
            r["metrics"]["summary"]["oracle_share"] - 2 * r["metrics"]["summary"]["oracle_share_se"] <= 1
            for r in rows
        ),
        "ECE ≤ 0.02": all(r["metrics"]["models"]["lightgbm"]["ece"] <= 0.02 for r in rows),
        "red recall ≥ 0.6": all(r["metrics"]["models"]["lightgbm"]["red_recall"] >= 0.6 for r in rows),
        "backtest < 180 s": all(r["seconds"] < 180 for r in rows),
    }
    for k, v in ok.items():
        print(f"  {'met ' if v else 'MISSED'}  {k}")
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "backtest_seeds.json").write_text(json.dumps({"runs": rows, "targets": ok}, indent=2))


if __name__ == "__main__":
    main()
