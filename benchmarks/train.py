"""Training at province scale (issue 4): `sanling train` on the province preset, wall time and peak
memory of the whole command (ingest → features → fit → MLflow), against the targets (< 10 min, < 8 GB).

    .venv/bin/python benchmarks/train.py [--work DIR] [--world DIR] [--presets province] [--profile]

The peer for scale is the county preset trained the same way (printed side by side as a ratio).
``--world DIR`` reuses a simulated province world (it takes minutes to simulate). ``--profile``
samples the child's resident memory every 0.2 s and prints, for each phase of the run (a phase
starts at each line the command logs, the model's own fitting steps included), its duration and
its peak RSS."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The profiled child: `sanling` with the model's step log (logger sanling.models) on stderr.
PROFILED = (
    "import logging, sys\n"
    "h = logging.StreamHandler(sys.stderr)\n"
    "h.setFormatter(logging.Formatter('%(message)s'))\n"
    "lg = logging.getLogger('sanling.models')\n"
    "lg.addHandler(h); lg.setLevel(logging.INFO)\n"
    "from sanling.pipeline.cli import main\n"
    "sys.argv = ['sanling', *sys.argv[1:]]\n"
    "main()\n"
)


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


def _rss_gb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024 / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def profiled(cmd: list[str], env: dict) -> tuple[float, float, str, list[dict]]:
    """As :func:`timed`, plus the phases: each logged line opens one; its seconds and peak RSS."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    phases = [{"line": "(start)", "t": 0.0, "peak_gb": 0.0}]
    lock = threading.Lock()
    out: list[str] = []

    def read() -> None:
        for raw in child.stdout:
            for line in raw.replace("\r", "\n").splitlines():
                line = line.strip()
                if not line or "%|" in line:  # tqdm redraws are not phases
                    continue
                out.append(line)
                with lock:
                    phases.append({"line": line[:110], "t": time.perf_counter() - t0, "peak_gb": 0.0})

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = 0.0
    while child.poll() is None:
        rss = _rss_gb(child.pid)
        if rss is not None:
            peak = max(peak, rss)
            with lock:
                phases[-1]["peak_gb"] = max(phases[-1]["peak_gb"], rss)
        time.sleep(0.2)
    reader.join()
    took = time.perf_counter() - t0
    if child.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n" + "\n".join(out[-30:]))
    for a, b in zip(phases, [*phases[1:], {"t": took}], strict=True):
        a["seconds"] = round(b["t"] - a["t"], 1)
    return took, peak, "\n".join(out), phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--world", type=Path, default=None, help="an existing province world to reuse")
    ap.add_argument("--presets", nargs="+", default=["county", "province"], choices=["county", "province"])
    ap.add_argument("--profile", action="store_true", help="print each phase's seconds and peak RSS")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="sanling-train-"))
    rows = {}
    for preset in args.presets:
        world = args.world if (preset == "province" and args.world) else work / preset
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
        if args.profile:
            took, peak, log, phases = profiled([sys.executable, "-c", PROFILED, "train", str(world)], env)
        else:
            (took, peak, log), phases = timed([str(BIN / "sanling"), "train", str(world)], env), None
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
        if phases:
            rows[preset]["phases"] = phases
            print(f"          {'from s':>7} {'took s':>7} {'peak GB':>7}  phase (the line that opened it)")
            for ph in phases:
                print(f"          {ph['t']:7.1f} {ph['seconds']:7.1f} {ph['peak_gb']:7.2f}  {ph['line']}")
    if {"county", "province"} <= rows.keys():
        p, c = rows["province"], rows["county"]
        print(f"\nprovince / county: {p['seconds'] / c['seconds']:.1f}× the time")
    if "province" in rows:
        p = rows["province"]
        print(
            f"targets: time {p['seconds']:.0f} s of 600 s ({'met' if p['seconds'] < 600 else 'MISSED'}); "
            f"memory {p['peak_rss_gb']:.2f} GB of 8 GB ({'met' if p['peak_rss_gb'] < 8 else 'MISSED'})"
        )
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
