"""Benchmark ``sanling simulate``: wall time, peak RSS and events/s for the county preset (median of
several runs) and the province preset, each in a fresh subprocess, against the targets
(county < 30 s; province < 5 min and < 6 GB).

    .venv/bin/python benchmarks/simulate.py [--county-runs 5] [--skip-province]

It also reports the oracle's quality on the first world of each preset: mean max-probability, RPS
against the realised tiers (labelled here with the system's default rules) and the tier mix.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TARGETS = {"county": (30.0, None), "province": (300.0, 6.0)}  # seconds, GB


def run_once(preset: str, out: Path) -> tuple[float, float, int]:
    """One subprocess run; returns (wall seconds, peak RSS in GB of that child, events written)."""
    cmd = [sys.executable, "-m", "sanling.pipeline.cli", "simulate", "--out", str(out), "--preset", preset]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    # ru_maxrss of children is the max over all waited-for children (KiB on Linux): only a new
    # maximum is attributable to this run, so runs go from small to large.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    n_events = json.loads((out / "world.json").read_text(encoding="utf-8"))["n_events"]
    return wall, max(peak_kib, before) / 2**20, n_events


def realised_tiers(events: pd.DataFrame) -> pd.DataFrame:
    """Tier of every (unit, month) with events under the default rules; keyed by as-of = month - 1."""
    e = events.assign(window=events.occurred_at.dt.to_period("M"))
    last_day = e.window.dt.end_time.dt.normalize()
    open_ = e.resolved_at.isna() | (e.resolved_at > last_day)
    cat, n = e.category, e["count"]
    keys = [e.unit_id, e.window]

    def total(mask: pd.Series) -> pd.Series:
        return n.where(mask, 0).groupby(keys).sum()

    red = (
        total(cat == "criminal") + total((cat == "petition") & e.escalated) + e.casualties.groupby(keys).sum()
    ) >= 1
    orange = (total(cat.isin(["public_security", "petition", "safety_accident", "fire"])) >= 1) | (
        total((cat == "dispute") & open_) >= 2
    )
    yellow = total(cat.isin(["dispute", "hazard"])) >= 1
    out = pd.Series(
        np.select([red, orange, yellow], [3, 2, 1], 0), index=red.index, name="tier"
    ).reset_index()
    return out.assign(as_of=(out.window - 1).astype(str))[["unit_id", "as_of", "tier"]]


def oracle_quality(world: Path) -> str:
    """Mean max-probability, RPS against the realised tiers and the realised tier mix."""
    truth = pd.read_parquet(world / "truth.parquet")
    rows = truth.merge(
        realised_tiers(pd.read_parquet(world / "events.parquet")), on=["unit_id", "as_of"], how="left"
    )
    tier = rows.tier.fillna(0).astype(int).to_numpy()
    p = rows[["p_blue", "p_yellow", "p_orange", "p_red"]].to_numpy()
    forecast = np.cumsum(p, axis=1)[:, :3]
    observed = (tier[:, None] <= np.arange(3)).astype(float)
    rps = ((forecast - observed) ** 2).sum(axis=1).mean() / 3
    mix = np.bincount(tier, minlength=4) / len(tier)
    monthly = pd.crosstab(rows.as_of, tier, normalize="index")
    return (
        f"oracle: mean max-probability {p.max(axis=1).mean():.3f}, RPS {rps:.4f}; realised tier mix "
        f"blue/yellow/orange/red {' / '.join(f'{m:.3f}' for m in mix)}; red share by month "
        f"{monthly[3].min():.3f}–{monthly[3].max():.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--county-runs", type=int, default=5)
    ap.add_argument("--skip-province", action="store_true")
    args = ap.parse_args()
    plan = [("county", args.county_runs)] + ([] if args.skip_province else [("province", 1)])
    with tempfile.TemporaryDirectory() as tmp:
        for preset, runs in plan:
            results = [run_once(preset, Path(tmp) / f"{preset}{i}") for i in range(runs)]
            wall = statistics.median(r[0] for r in results)
            peak, n_events = max(r[1] for r in results), results[0][2]
            t_target, m_target = TARGETS[preset]
            mem = (
                f", peak RSS {peak:.2f} GB (target {m_target} GB, ratio {peak / m_target:.2f})"
                if m_target
                else f", peak RSS {peak:.2f} GB"
            )
            print(
                f"{preset:9s} median wall {wall:6.1f} s over {runs} run(s) (target {t_target:.0f} s, ratio "
                f"{wall / t_target:.3f}){mem}, {n_events:,} events, {n_events / wall:,.0f} events/s"
            )
            print(f"          {oracle_quality(Path(tmp) / f'{preset}0')}")


if __name__ == "__main__":
    main()
