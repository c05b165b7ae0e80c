"""Benchmark of the feature pipeline at province scale (brief item 7).

    .venv/bin/python benchmarks/features.py --synthetic            # own vectorised world, ~50k units, ~6 M events
    .venv/bin/python benchmarks/features.py                        # pipeline.simulate province preset
    .venv/bin/python benchmarks/features.py --data /tmp/province   # the same, simulated once and reused
    .venv/bin/python benchmarks/features.py --synthetic --units 5000 --repeat 1   # quick look
    .venv/bin/python benchmarks/features.py --synthetic --late 0.12              # with late records

With ``--late``, the same world is also timed without its reporting dates, the two runs alternating,
and the ratio (late / plain) of wall time and of peak RSS is printed: the as-known-at-t correction
(features/late.py) is held to 1.2× of the plain time and memory. ``--ref-units 0`` skips the
plain reference.

Measures, for every labelled as-of date (horizon 1, cadence 1): ``build_panel`` + ``build_frame``
(all features and labels) wall time, peak RSS above the start, unit-months/s and events/s; against
(a) the plain reference implementation (``tests/features/reference.py``) on a sample of as-of dates ×
units, extrapolated per unit-month, and (b) DuckDB SQL computing the 5 windows × 7 categories counts
per unit × as-of month from the same events frame in the same process — and our own path doing only
that same work. Also the serving latency: one unit at the latest month. Prints a table of medians.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

from sanling.core.config import Config  # noqa: E402
from sanling.features.build import build_frame, registry_for, window_total  # noqa: E402
from sanling.features.grid import labelled_as_of  # noqa: E402
from sanling.features.panel import build_panel  # noqa: E402

CFG = Config()


class PeakRSS:
    """Samples the process RSS every 20 ms; ``peak`` is the highest seen above ``start``."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def gb_above_start(self) -> float:
        return (self.peak - self.start) / 1e9

    @property
    def gb_peak(self) -> float:
        return self.peak / 1e9


def synthetic_world(n_units: int, months: int, events_per_unit_month: float, seed: int = 0):
    """A vectorised random province: units with townships/counties/coordinates/attributes, and
    events with heterogeneous unit rates, categories, counts, escalations, severities, resolutions."""
    rng = np.random.default_rng(seed)
    n_county = max(1, n_units // 430)
    n_town = max(1, n_units // 36)
    town = rng.integers(0, n_town, n_units)
    county = town % n_county
    utype = rng.choice(["village", "community", "enterprise"], n_units, p=[0.56, 0.05, 0.39])
    units = pd.DataFrame(
        {
            "unit_id": pd.array([f"14{i:010d}" for i in range(n_units)], dtype="str"),
            "unit_name": pd.array([f"单位{i}" for i in range(n_units)], dtype="str"),
            "unit_type": pd.array(utype, dtype="str"),
            "township": pd.array([f"镇{t}" for t in town], dtype="str"),
            "county": pd.array([f"县{c}" for c in county], dtype="str"),
            "city": pd.array([f"市{c % 11}" for c in county], dtype="str"),
            "lat": 34.6 + 5.5 * rng.random(n_units),
            "lon": 110.2 + 4.3 * rng.random(n_units),
            "population": np.where(utype == "enterprise", np.nan, rng.integers(300, 8000, n_units)).astype(
                float
            ),
            "employees": np.where(utype == "enterprise", rng.integers(10, 3000, n_units), np.nan).astype(
                float
            ),
            "mediators": rng.integers(0, 8, n_units).astype(float),
            "industry": pd.array(rng.choice(["农业", "煤炭", "制造", "服务", "其他"], n_units), dtype="str"),
        }
    )
    rate = rng.gamma(0.8, 1.0 / 0.8, n_units)
    n_events = int(n_units * months * events_per_unit_month)
    unit = rng.choice(n_units, n_events, p=rate / rate.sum())
    start = np.datetime64("2018-01-01", "s")
    span = (np.datetime64("2018-01-01", "M") + months).astype("datetime64[s]") - start
    occurred = start + rng.integers(0, span.astype(np.int64), n_events).astype("timedelta64[s]")
    cats = np.array(list(CFG.categories))
    cat = rng.choice(len(cats), n_events, p=[0.38, 0.12, 0.12, 0.04, 0.04, 0.03, 0.27])
    delay = rng.exponential(20, n_events).astype("timedelta64[D]")
    resolved = (occurred + delay).astype("datetime64[ns]")
    resolved[rng.random(n_events) < 0.15] = np.datetime64("NaT")
    severity = rng.choice(np.arange(1, 5, dtype=np.int8), n_events, p=[0.7, 0.2, 0.08, 0.02])
    events = pd.DataFrame(
        {
            "event_id": pd.array(np.char.add("E", np.arange(n_events).astype(str)), dtype="str"),
            "unit_id": units["unit_id"].to_numpy()[unit],
            "occurred_at": occurred.astype("datetime64[ns]"),
            "category": pd.array(cats[cat], dtype="str"),
            "severity": pd.array(severity, dtype="Int8"),
            "count": np.where(rng.random(n_events) < 0.05, rng.integers(2, 6, n_events), 1).astype(np.int32),
            "escalated": rng.random(n_events) < 0.08,
            "casualties": np.where(rng.random(n_events) < 0.01, rng.integers(1, 4, n_events), 0).astype(
                np.int32
            ),
            "resolved_at": resolved,
        }
    )
    events["unit_id"] = events["unit_id"].astype("str")
    return units, events


def with_late_records(events: pd.DataFrame, share: float, seed: int = 1) -> pd.DataFrame:
    """The events with ``reported_at`` / ``escalated_at``: ``share`` of them entered a log-normal
    21 days (σ 1) late, escalations a log-normal 20 days (σ 0.8) after the event — the simulator's
    reporting process in shape — so the point-in-time path (docs/features.md) has work to do."""
    rng = np.random.default_rng(seed)
    n = len(events)
    occurred = events["occurred_at"].to_numpy(dtype="datetime64[ns]")
    days = np.where(rng.random(n) < share, np.round(rng.lognormal(np.log(21), 1.0, n)), 0)
    esc_days = np.round(rng.lognormal(np.log(20), 0.8, n))
    out = events.copy()
    out["reported_at"] = occurred + days.astype("timedelta64[D]")
    esc_at = occurred + esc_days.astype("timedelta64[D]")
    out["escalated_at"] = np.where(out["escalated"].to_numpy(), esc_at, np.datetime64("NaT"))
    return out


def simulated_world(n_units: int | None, months: int, data: Path | None = None):
    """The province preset, simulated in a child process (the simulator's memory is not this
    process's, as in a pipeline run that reads a data directory) into ``data`` — reused if it holds
    a world already — then ingested here as ``sanling train`` would."""
    from sanling.pipeline.ingest import load_dataset

    tmp = Path(tempfile.mkdtemp(prefix="sanling-bench-"))
    data = data or tmp / "data"
    t0 = time.perf_counter()
    if not any(data.glob("units.*")):
        code = (
            "import sys; from pathlib import Path; from sanling.pipeline.simulate import simulate_world; "
            "print(simulate_world(Path(sys.argv[1]), preset='province', n_units=None if sys.argv[2] == '-' "
            "else int(sys.argv[2]), months=int(sys.argv[3]), seed=0, progress=False))"
        )
        units_arg = "-" if n_units is None else str(n_units)
        subprocess.run([sys.executable, "-c", code, str(data), units_arg, str(months)], check=True)
    ds = load_dataset(data, categories=CFG.categories, home=tmp / "home")
    print(f"simulate + ingest: {time.perf_counter() - t0:.1f} s ({data})")
    return ds.units, ds.events


def ours_full(units, events):
    panel = build_panel(units, events, CFG.categories)
    dates = labelled_as_of(panel, CFG.horizon_months, CFG.cadence_months)
    frame = build_frame(
        panel, dates, tier_rules=CFG.tiers, horizon_months=CFG.horizon_months, params=CFG.features
    )
    return panel, dates, frame


def ours_counts(units, events, windows=(1, 3, 6, 12, 24)) -> np.ndarray:
    """Our path doing only DuckDB's work: the panel and 5 windows × C categories counts."""
    from sanling.features.build import _Context

    panel = build_panel(units, events, CFG.categories)
    dates = labelled_as_of(panel, CFG.horizon_months, CFG.cadence_months)
    from sanling.features.grid import as_of_offsets

    ctx = _Context(panel, as_of_offsets(panel, dates), None, CFG.horizon_months, CFG.features, CFG.tiers)
    out = np.empty(
        (len(dates) * panel.n_units, len(windows) * len(CFG.categories)), dtype=np.int32, order="F"
    )
    j = 0
    for c in CFG.categories:
        for w in windows:
            out[:, j] = window_total(ctx, "count", c, w).reshape(-1)
            j += 1
    return out


DUCK_SQL = """
WITH ev AS (
  SELECT unit_id, category, (year(occurred_at) * 12 + month(occurred_at) - 1) AS m, count AS n FROM events
), bounds AS (SELECT min(m) AS lo, max(m) AS hi FROM ev),
monthly AS (
  SELECT unit_id, m, {pivot} FROM ev GROUP BY unit_id, m
), grid AS (
  SELECT u.unit_id, g.m FROM units u CROSS JOIN (SELECT range AS m FROM bounds, range(lo, hi + 1)) g
), dense AS (
  SELECT grid.unit_id, grid.m, {dense} FROM grid LEFT JOIN monthly USING (unit_id, m)
)
SELECT unit_id, m, {windows} FROM dense
QUALIFY m <= (SELECT hi FROM bounds) - {horizon}
"""


def duckdb_counts(units, events, windows=(1, 3, 6, 12, 24), threads: int = 2):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.register("events", events[["unit_id", "category", "occurred_at", "count"]])
    con.register("units", units[["unit_id"]])
    cats = list(CFG.categories)
    pivot = ", ".join(f"SUM(n) FILTER (WHERE category = '{c}') AS {c}" for c in cats)
    dense = ", ".join(f"coalesce({c}, 0) AS {c}" for c in cats)
    win = ", ".join(
        f"SUM({c}) OVER (PARTITION BY unit_id ORDER BY m ROWS BETWEEN {w - 1} PRECEDING AND CURRENT ROW) AS {c}_count_{w}m"
        for c in cats
        for w in windows
    )
    sql = DUCK_SQL.format(pivot=pivot, dense=dense, windows=win, horizon=CFG.horizon_months)
    result = con.execute(sql).fetchnumpy()
    con.close()
    return result


def late_versus_plain(units, late_events, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Alternating timed runs of ``ours_full`` on the events with and without their reporting dates:
    ``{"late" | "plain": {"wall": [s], "cpu": [s], "rss": [+GB]}}`` (CPU: this process's time,
    steadier than wall time on a shared machine)."""
    plain_events = late_events.drop(columns=["reported_at", "escalated_at"])
    runs = {k: {"wall": [], "cpu": [], "rss": []} for k in ("late", "plain")}
    for _ in range(repeat):
        for name, events in (("plain", plain_events), ("late", late_events)):
            gc.collect()
            with PeakRSS() as rss:
                t0, c0 = time.perf_counter(), time.process_time()
                result = ours_full(units, events)
                runs[name]["wall"].append(time.perf_counter() - t0)
                runs[name]["cpu"].append(time.process_time() - c0)
            runs[name]["rss"].append(rss.gb_above_start)
            del result
    return runs


def reference_sample(units, events, dates, n_units: int, n_dates: int):
    from reference import reference_features

    rng = np.random.default_rng(1)
    pick = np.sort(rng.choice(len(units), min(n_units, len(units)), replace=False))
    sub_units = units.iloc[pick].reset_index(drop=True)
    sub_events = events[events["unit_id"].isin(set(sub_units["unit_id"]))].reset_index(drop=True)
    panel = build_panel(sub_units, sub_events, CFG.categories)
    registry = registry_for(panel, CFG.features)
    sample_dates = [dates[len(dates) // 2], dates[-1]][:n_dates]
    t0 = time.perf_counter()
    ref = reference_features(
        sub_units,
        sub_events,
        registry,
        sample_dates,
        horizon_months=CFG.horizon_months,
        knn_k=CFG.features.knn_k,
    )
    secs = time.perf_counter() - t0
    fast = build_frame(
        panel, sample_dates, tier_rules=CFG.tiers, horizon_months=CFG.horizon_months, params=CFG.features
    )
    mismatched = [
        f.name
        for f in registry
        if f.dtype != "category"
        and not np.allclose(fast[f.name].to_numpy(), ref[f.name].to_numpy(), rtol=1e-6, equal_nan=True)
    ]
    return secs, len(sample_dates) * len(sub_units), mismatched


def serving_latency(units, events, repeat: int = 50) -> tuple[float, float, float]:
    """(build_panel s, median ms, p95 ms) of one unit at the latest month on a county-sized world."""
    county = units["county"].iloc[0]
    cu = units[units["county"] == county].reset_index(drop=True)
    ce = events[events["unit_id"].isin(set(cu["unit_id"]))]
    t0 = time.perf_counter()
    panel = build_panel(cu, ce, CFG.categories)
    panel_s = time.perf_counter() - t0
    one = [cu["unit_id"].iloc[len(cu) // 2]]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        build_frame(
            panel,
            [panel.last_month],
            tier_rules=CFG.tiers,
            horizon_months=1,
            params=CFG.features,
            unit_ids=one,
        )
        times.append((time.perf_counter() - t0) * 1000)
    return panel_s, statistics.median(times[1:]), float(np.percentile(times[1:], 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true", help="own random world instead of pipeline.simulate")
    ap.add_argument("--units", type=int, default=50_000)
    ap.add_argument("--data", type=Path, help="province preset: simulated data directory to reuse (or fill)")
    ap.add_argument("--months", type=int, default=60)
    ap.add_argument("--rate", type=float, default=2.0, help="synthetic events per unit-month (2.0 → ~6 M)")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (medians reported)")
    ap.add_argument("--ref-units", type=int, default=2000)
    ap.add_argument("--ref-dates", type=int, default=2)
    ap.add_argument("--no-duckdb", action="store_true")
    ap.add_argument(
        "--late", type=float, default=0.0, help="share of events entered late (adds reported_at/escalated_at)"
    )
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.synthetic:
        units, events = synthetic_world(args.units, args.months, args.rate)
    else:
        units, events = simulated_world(args.units, args.months, args.data)
    if args.late > 0:
        events = with_late_records(events, args.late)
    n_events = len(events)
    print(f"world: {len(units):,} units, {n_events:,} events ({time.perf_counter() - t0:.1f} s to make)")

    full_t, full_mem, full_peak = [], [], []
    for _ in range(args.repeat):
        gc.collect()
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            panel, dates, frame = ours_full(units, events)
            full_t.append(time.perf_counter() - t0)
        full_mem.append(rss.gb_above_start)
        full_peak.append(rss.gb_peak)
        shape = frame.shape
        n_feat = shape[1] - 6
        del frame, panel
    unit_months = len(dates) * len(units)

    cnt_t, cnt_mem = [], []
    for _ in range(args.repeat):
        gc.collect()
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            ours = ours_counts(units, events)
            cnt_t.append(time.perf_counter() - t0)
        cnt_mem.append(rss.gb_above_start)

    duck_t, duck_mem = [], []
    agree = "n/a"
    if not args.no_duckdb:
        for _ in range(args.repeat):
            gc.collect()
            with PeakRSS() as rss:
                t0 = time.perf_counter()
                duck = duckdb_counts(units, events)
                duck_t.append(time.perf_counter() - t0)
            duck_mem.append(rss.gb_above_start)
        # Cross-check: the same numbers (DuckDB rows come back in its own order).
        order = np.lexsort((pd.Index(units["unit_id"]).get_indexer(duck["unit_id"]), duck["m"]))
        cols = [f"{c}_count_{w}m" for c in CFG.categories for w in (1, 3, 6, 12, 24)]
        theirs = np.column_stack([np.asarray(duck[c], dtype=np.float64)[order] for c in cols])
        agree = "yes" if np.array_equal(theirs, ours.astype(np.float64)) else "NO"
        del duck
    del ours

    late_runs = late_versus_plain(units, events, args.repeat) if args.late > 0 else None

    # The plain reference knows no reporting dates: it checks the kernels on the events as recorded.
    ref = None
    if args.ref_units > 0:
        plain = events.drop(columns=["reported_at", "escalated_at"], errors="ignore")
        ref = reference_sample(units, plain, dates, args.ref_units, args.ref_dates)
    panel_s, lat_ms, lat_p95 = serving_latency(units, events)

    full = statistics.median(full_t)
    rows = [
        (
            "ours: panel + all features + labels",
            full,
            statistics.median(full_mem),
            unit_months / full,
            n_events / full,
        ),
        (
            "ours: panel + 35 window counts",
            statistics.median(cnt_t),
            statistics.median(cnt_mem),
            unit_months / statistics.median(cnt_t),
            n_events / statistics.median(cnt_t),
        ),
    ]
    if duck_t:
        d = statistics.median(duck_t)
        rows.append(
            ("duckdb: 35 window counts (SQL)", d, statistics.median(duck_mem), unit_months / d, n_events / d)
        )
    if ref is not None:
        ref_per_um = ref[0] / ref[1]
        rows.append(
            (
                "reference (extrapolated)",
                ref_per_um * unit_months,
                float("nan"),
                1 / ref_per_um,
                n_events / (ref_per_um * unit_months),
            )
        )
    print()
    print(
        f"frame: {shape[0]:,} rows × {n_feat} features, {len(dates)} as-of dates; peak RSS {statistics.median(full_peak):.2f} GB"
    )
    print(f"{'':40s} {'wall s':>9s} {'+RSS GB':>8s} {'unit-months/s':>15s} {'events/s':>13s}")
    for name, secs, mem, ums, evs in rows:
        print(f"{name:40s} {secs:9.2f} {mem:8.2f} {ums:15,.0f} {evs:13,.0f}")
    print()
    if duck_t:
        print(
            f"ratios: DuckDB / ours on the same counts = {statistics.median(duck_t) / statistics.median(cnt_t):.1f}×; "
            f"DuckDB counts only / ours all features = {statistics.median(duck_t) / full:.2f}×; counts agree: {agree}"
        )
    if ref is not None:
        ref_s, ref_um, mismatched = ref
        print(
            f"reference: {ref_s:.1f} s for {ref_um:,} unit-months ({ref_per_um * 1e3:.2f} ms each) → "
            f"{ref_per_um * unit_months / full:,.0f}× slower than ours; features equal on the sample: "
            f"{'yes' if not mismatched else 'NO ' + ', '.join(mismatched[:5])}"
        )
    if late_runs is not None:
        med = {k: {m: statistics.median(x) for m, x in v.items()} for k, v in late_runs.items()}
        lt, pl = med["late"], med["plain"]
        print(
            f"late records ({args.late:.0%} entered late, escalations dated later), {args.repeat} alternating "
            f"runs each, medians — with / without: wall {lt['wall']:.2f} / {pl['wall']:.2f} s = "
            f"{lt['wall'] / pl['wall']:.2f}×; CPU {lt['cpu']:.2f} / {pl['cpu']:.2f} s = "
            f"{lt['cpu'] / pl['cpu']:.2f}×; +RSS {lt['rss']:.2f} / {pl['rss']:.2f} GB = {lt['rss'] / pl['rss']:.2f}×"
        )
    print(
        f"serving (county of {int((units['county'] == units['county'].iloc[0]).sum())} units): build_panel "
        f"{panel_s * 1e3:.0f} ms; build_frame(one unit, latest month) median {lat_ms:.1f} ms, p95 {lat_p95:.1f} ms"
    )


if __name__ == "__main__":
    main()
