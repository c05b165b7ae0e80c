"""The national scale on Dask (issue 14): the national preset (or a fraction of it) through
simulate, ingest, features, train and score + explain on a LocalCluster of this machine, with the
wall time of each step, the peak memory of every worker and of the client, the bytes spilled to
disk, and a projection to a 10-worker cluster from the measured per-partition costs.

    .venv/bin/python benchmarks/scale.py --units 200000 [--workers 2] [--training-rows 1000000] \
        [--json figures.json] [--plot timeline.png]

Simulate runs as its own process (``sanling simulate --preset national``); the rest runs here, the
client, against a ``LocalCluster`` as ``--dask local`` builds it. Features are computed for every
labelled month on the workers and dropped there after counting (a national frame would not fit
anywhere); ``train`` and ``score`` are the jobs ``sanling train|score --dask`` run. A thread samples
the memory of the client and of every worker process every few seconds: ``--plot`` draws it over
the steps.
"""

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

import numpy as np

BIN = Path(sys.executable).parent
NATIONAL_UNITS = 1_000_000
PROJECTED_WORKERS = 10
SCORE_STEPS = ("read", "panel", "features", "score_explain")
ALL_STEPS = (*SCORE_STEPS, "backfill", "history")


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Timeline(threading.Thread):
    """RSS (GB) of this process and of each of its child processes (a ``LocalCluster``'s workers)
    every ``every`` seconds, and the start and end of every step, in seconds from the start."""

    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.t0, self.halt = every, time.perf_counter(), threading.Event()
        self.samples: list[tuple[float, float, dict[int, float]]] = []
        self.steps: list[tuple[str, float, float]] = []
        self.labels: dict[int, str] = {}

    def now(self) -> float:
        return round(time.perf_counter() - self.t0, 1)

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.halt.wait(self.every):
            kids = {}
            for child in me.children(recursive=True):
                try:
                    kids[child.pid] = child.memory_info().rss / 2**30
                    if child.pid not in self.labels:
                        cmd = " ".join(child.cmdline())
                        kind = (
                            "simulate" if "simulate" in cmd else "worker" if "spawn_main" in cmd else "other"
                        )
                        self.labels[child.pid] = kind
                except psutil.Error:
                    continue
            self.samples.append((self.now(), me.memory_info().rss / 2**30, kids))

    def step(self, name: str, start: float) -> None:
        self.steps.append((name, start, self.now()))

    def figures(self) -> dict:
        pids = sorted({pid for _, _, kids in self.samples for pid in kids})
        return {
            "every_s": self.every,
            "t_s": [t for t, _, _ in self.samples],
            "client_gb": [round(c, 3) for _, c, _ in self.samples],
            # child processes above 0.2 GB at some point: simulate, then the workers (not the
            # resource tracker)
            "children_gb": {
                f"{self.labels.get(pid, 'worker')} {pid}": [
                    round(kids.get(pid, 0.0), 3) for _, _, kids in self.samples
                ]
                for pid in pids
                if max(kids.get(pid, 0.0) for _, _, kids in self.samples) > 0.2
            },
            "steps": [{"step": n, "start_s": a, "end_s": b} for n, a, b in self.steps],
        }


def plot_timeline(timeline: dict, title: str, path: Path) -> None:
    """Memory of the client and of each worker over the run, the steps shaded and named."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=110)
    ax = fig.add_subplot()
    minutes = np.asarray(timeline["t_s"]) / 60
    shades = ("#eef3fa", "#f8f1e6")
    for i, s in enumerate(timeline["steps"]):
        ax.axvspan(s["start_s"] / 60, s["end_s"] / 60, color=shades[i % 2], zorder=0)
        ax.text(
            (s["start_s"] + s["end_s"]) / 120,
            0.98 - 0.06 * (i % 3),  # short steps side by side: their names on three lines
            s["step"],
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="top",
            fontsize=9,
        )
    ax.plot(minutes, timeline["client_gb"], color="#222222", lw=1.6, label="client")
    for k, (name, rss) in enumerate(timeline["children_gb"].items()):
        ax.plot(minutes, rss, lw=1.2, color=("#1f5fa8", "#b5853a", "#3a9a5b", "#9467bd")[k % 4], label=name)
    ax.set_xlabel("minutes from the start")
    ax.set_ylabel("resident memory (GB)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False, bbox_to_anchor=(0, 0.8))
    fig.tight_layout()
    fig.savefig(path)


def worker_figures(client) -> dict[str, dict]:
    """Per worker: peak RSS (GB) of its process, bytes it ever spilled to disk, and bytes on disk now."""

    def figures(dask_worker=None) -> dict:
        import resource as r

        data = getattr(dask_worker, "data", None)
        metrics = getattr(data, "cumulative_metrics", {})
        now = getattr(data, "spilled_total", None)
        return {
            "peak_rss_gb": round(r.getrusage(r.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "spilled_bytes": int(metrics.get(("disk-write", "bytes"), 0)),
            "on_disk_bytes": int(getattr(now, "disk", 0) or 0),
        }

    return client.run(figures)


def makespan(durations: list[float], workers: int) -> float:
    """Longest-processing-time-first schedule of independent tasks on ``workers`` workers."""
    load = np.zeros(workers)
    for d in sorted(durations, reverse=True):
        load[np.argmin(load)] += d
    return float(load.max())


def project(costs, n_units: int, step_keys: tuple[str, ...], clock: str = "steps") -> dict:
    """The workers' share of a step on a national registry and 10 workers, from measured per-partition
    costs (``clock``: ``steps`` wall seconds, ``cpu_steps`` CPU seconds): seconds per core unit (halo
    included in the measured cost) × the partitions the national registry would be cut into,
    scheduled on 10 workers."""
    from sanling.pipeline.distributed.partitions import UNITS_PER_PARTITION

    secs = np.array([sum(getattr(c, clock).get(k, 0.0) for k in step_keys) for c in costs])
    units = np.array([c.n_core for c in costs])
    per_unit = float(secs.sum() / max(units.sum(), 1))
    n_parts = int(np.ceil(NATIONAL_UNITS / UNITS_PER_PARTITION))
    part_s = per_unit * NATIONAL_UNITS / n_parts
    return {
        "measured_partitions": len(costs),
        "measured_units_per_partition": round(float(units.mean())),
        "measured_task_s": round(float(secs.sum()), 1),
        "longest_task_s": round(float(secs.max()), 1),
        "s_per_1000_units": round(per_unit * 1000, 3),
        "national_partitions": n_parts,
        "national_work_s": round(per_unit * NATIONAL_UNITS, 1),
        "projected_10_workers_s": round(makespan([part_s] * n_parts, PROJECTED_WORKERS), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=NATIONAL_UNITS)
    ap.add_argument("--months", type=int, default=60)
    ap.add_argument("--workers", type=int, default=None, help="default: one per core (as --dask local)")
    ap.add_argument("--training-rows", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=None, help="keep the world and stores here")
    ap.add_argument("--world", type=Path, default=None, help="an existing national world: skip simulate")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here too")
    ap.add_argument("--plot", type=Path, default=None, help="draw the memory over the steps here (PNG)")
    args = ap.parse_args()

    from sanling.core.config import Config, Settings
    from sanling.features.grid import labelled_as_of
    from sanling.pipeline import jobs
    from sanling.pipeline.distributed.cluster import dask_client
    from sanling.pipeline.distributed.engine import Layout
    from sanling.pipeline.distributed.ingest import ingest_on_workers

    work = args.work or Path(tempfile.mkdtemp(prefix="sanling-scale-"))

    timeline = Timeline()
    timeline.start()

    def save() -> None:
        """Write the figures so far: a run stopped in a later step keeps the earlier ones."""
        figures["timeline"] = timeline.figures()
        if args.plot:
            title = f"benchmarks/scale.py: {args.units:,} units, {figures.get('workers', '?')} workers"
            plot_timeline(figures["timeline"], title, args.plot)
        if args.json:
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
            tmp.replace(args.json)

    world = args.world or work / "world"
    figures: dict = {"units": args.units, "months": args.months, "load_before": os.getloadavg()}
    print(f"work in {work}; load average {os.getloadavg()[0]:.1f}", flush=True)

    if args.world is None:
        s0 = timeline.now()
        cmd = [str(BIN / "sanling"), "simulate", "--preset", "national", "--units", str(args.units)]
        cmd += ["--months", str(args.months), "--out", str(world)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"simulate failed:\n{r.stderr[-2000:]}")
        figures["simulate"] = {
            "wall_s": round(timeline.now() - s0, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
            "summary": r.stdout.strip().splitlines()[-1],
        }
        print(f"simulate: {figures['simulate']}", flush=True)
        timeline.step("simulate", s0)
        save()

    config = Config()
    settings = Settings(home=work / "home", dask_training_rows=args.training_rows)
    with dask_client("local", n_workers=args.workers) as client:
        settings = settings.model_copy(update={"dask": client.scheduler_info()["address"]})
        figures["workers"] = len(client.scheduler_info()["workers"])
        s0 = timeline.now()
        data = ingest_on_workers(client, world, config.categories, settings.home)
        if data is None:
            sys.exit(f"{world}: the tables are not split into file groups")
        figures["ingest"] = {
            "wall_s": round(timeline.now() - s0, 1),
            "client_peak_rss_gb": round(rss_gb(), 2),
            "groups": len(data.groups),
            "group_cpu_s": round(sum(g.cpu_seconds for g in data.groups), 1),
            "group_wall_s": round(sum(g.seconds for g in data.groups), 1),
            # ingestion work grows with the events (≈ units): the measured seconds scaled to the
            # national registry, spread over 10 workers (a city is ≈ 1/220 of it: balance is fine)
            "national_work_s": round(sum(g.seconds for g in data.groups) * NATIONAL_UNITS / args.units, 1),
            "projected_10_workers_s": round(
                sum(g.seconds for g in data.groups) * NATIONAL_UNITS / args.units / PROJECTED_WORKERS, 1
            ),
            "projected_10_workers_cpu_s": round(
                sum(g.cpu_seconds for g in data.groups) * NATIONAL_UNITS / args.units / PROJECTED_WORKERS, 1
            ),
        }
        figures["n_events"] = data.n_events()
        print(
            f"ingest: {figures['ingest']} ({len(data.units):,} units, {data.n_events():,} events)", flush=True
        )
        timeline.step("ingest", s0)
        save()
        s0 = timeline.now()
        layout = Layout(client, data, config)
        plan_s = timeline.now() - s0
        dates = labelled_as_of(layout.shape.months, config.horizon_months, config.cadence_months)
        rows = 0
        for _, frame in layout.frames(dates, with_labels=True):
            rows += len(frame)
            del frame
        figures["features"] = {
            "wall_s": round(timeline.now() - s0, 1),
            "plan_and_send_s": round(plan_s, 1),
            "partitions": len(layout.parts),
            "halo_share": round(layout.halo_share(), 3),
            "rows": rows,
            "as_of_dates": len(dates),
            "projection": project(layout.costs, args.units, ("read", "panel", "features")),
            "projection_cpu": project(layout.costs, args.units, ("read", "panel", "features"), "cpu_steps"),
        }
        print(f"features: {figures['features']}", flush=True)
        timeline.step("features", s0)
        save()
        del layout

        s0 = timeline.now()
        version = jobs.train(world, config, settings)
        figures["train"] = {"wall_s": round(timeline.now() - s0, 1), "rows_cap": args.training_rows}
        print(f"train: {figures['train']}", flush=True)
        timeline.step("train", s0)
        save()
        jobs.promote(version, settings=settings, force=True)

        s0 = timeline.now()
        out = jobs.score(world, settings=settings)
        costs = out["costs"]
        figures["score"] = {
            "wall_s": round(timeline.now() - s0, 1),
            "client_writing_s": out["writing_s"],
            "steps_s": {k: round(sum(c.steps.get(k, 0.0) for c in costs), 1) for k in ALL_STEPS},
            "projection_score_explain": project(costs, args.units, SCORE_STEPS),
            "projection_all": project(costs, args.units, ALL_STEPS),
            "projection_score_explain_cpu": project(costs, args.units, SCORE_STEPS, "cpu_steps"),
            "projection_all_cpu": project(costs, args.units, ALL_STEPS, "cpu_steps"),
        }
        print(f"score: {figures['score']}", flush=True)
        timeline.step("score", s0)
        save()
        figures["per_worker"] = worker_figures(client)
    figures["client_peak_rss_gb"] = round(rss_gb(), 2)
    figures["load_after"] = os.getloadavg()
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    save()


if __name__ == "__main__":
    main()
