"""``sanling simulate``: build a world, run the process, write units, events, the oracle and the
parameters. The only I/O of the simulator lives here."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from sanling.core.errors import ConfigError
from sanling.pipeline.simulate.effort import with_reporting_effort
from sanling.pipeline.simulate.events import events_frame
from sanling.pipeline.simulate.geography import build_registry
from sanling.pipeline.simulate.params import BURN_IN_MONTHS, START, TYPES, WorldParams
from sanling.pipeline.simulate.process import simulate, unit_process
from sanling.pipeline.simulate.reporting import ReportingParams, report

FORMATS = ("parquet", "csv")
MAX_MONTHS = 240


@dataclasses.dataclass(frozen=True)
class World:
    """A simulated world in memory: the contract's two tables and the oracle."""

    units: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame
    red_counts: np.ndarray  # (months × units) red-rule events, for calibration checks
    # With the reporting process: the corrections (event_updates) and the attribute history.
    updates: pd.DataFrame | None = None
    history: pd.DataFrame | None = None


def truth_frame(truth: np.ndarray, unit_ids: np.ndarray) -> pd.DataFrame:
    """The oracle table: one row per (as-of month, unit) with the next month's tier probabilities."""
    t, n = truth.shape[:2]
    as_of = (START + np.arange(t)).astype(str)
    flat = truth.reshape(t * n, 4)
    return pd.DataFrame(
        {
            "unit_id": np.tile(unit_ids.astype(str), t),
            "as_of": np.repeat(as_of, n),
            "horizon_months": np.ones(t * n, dtype=np.int64),
            "p_blue": flat[:, 0],
            "p_yellow": flat[:, 1],
            "p_orange": flat[:, 2],
            "p_red": flat[:, 3],
        }
    )


def build_world(
    *,
    preset: str = "county",
    n_units: int | None = None,
    months: int = 60,
    seed: int = 0,
    params: WorldParams | None = None,
    progress: bool = False,
    reporting: ReportingParams | None = None,
    province_code: str = "14",
) -> World:
    """Simulate a world in memory (no files). Same arguments → identical frames.

    ``reporting``: the reporting process (:mod:`.reporting`: late entries, later escalations,
    corrections, mediators history); ``None`` records everything the moment it happens (the old
    behaviour). It draws from its own generator, so the true events are the same either way."""
    if not 2 <= months <= MAX_MONTHS:
        raise ConfigError(f"--months must be between 2 and {MAX_MONTHS}, got {months}")
    params = params or WorldParams()
    rng = np.random.default_rng(seed)
    units, reg = build_registry(preset, n_units, rng, province_code=province_code)
    up = unit_process(reg, params, rng)
    sim = simulate(up, params, months, rng, progress=progress)
    sim = with_reporting_effort(sim, reg, params.reporting_effort, months, seed)
    unit_ids = units.unit_id.to_numpy(dtype=str)
    events = events_frame(sim, unit_ids, reg.type_idx, months, rng)
    truth = truth_frame(sim.truth, unit_ids)
    if reporting is None:
        return World(units=units, events=events, truth=truth, red_counts=sim.red_counts)
    rec = report(events, units, months, np.random.default_rng([seed, 12]), reporting)
    units = units.copy()
    # The registry shows today's values; their past is in unit_history.
    last = rec.history.groupby("unit_id")["value"].last()
    units["mediators"] = last.reindex(units["unit_id"]).to_numpy(dtype=float)
    return World(
        units=units,
        events=rec.events,
        truth=truth,
        red_counts=sim.red_counts,
        updates=rec.updates,
        history=rec.history,
    )


def _write(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.to_parquet(path, index=False)
        return
    table = pa.Table.from_pandas(df, preserve_index=False)
    for name in ("resolved_at", "escalated_at", "valid_from"):  # dates in the ledger, not timestamps
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(i).cast(pa.timestamp("s")).cast(pa.date32()))
    pacsv.write_csv(table, path)  # UTF-8, English headers


def simulate_world(
    out: Path,
    *,
    preset: str = "county",
    n_units: int | None = None,
    months: int = 60,
    seed: int = 0,
    fmt: str = "parquet",
    reporting_effort: float = 0.0,
    progress: bool = True,
    reporting: bool = True,
) -> str:
    """Write a simulated world to ``out``: ``units.<fmt>``, ``events.<fmt>``, ``truth.parquet`` and
    ``world.json`` (parameters and seed), and with ``reporting`` (the default) ``event_updates.<fmt>``
    and ``unit_history.<fmt>``. Returns a one-line human summary."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    t0 = time.perf_counter()
    params = WorldParams(reporting_effort=reporting_effort)
    world = build_world(
        preset=preset,
        n_units=n_units,
        months=months,
        seed=seed,
        params=params,
        progress=progress,
        reporting=ReportingParams() if reporting else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    _write(world.units, out / f"units.{fmt}", fmt)
    _write(world.events, out / f"events.{fmt}", fmt)
    for name, frame in (("event_updates", world.updates), ("unit_history", world.history)):
        path = out / f"{name}.{fmt}"
        if frame is not None:
            _write(frame, path, fmt)
        else:
            path.unlink(missing_ok=True)  # a re-run without reporting must not keep a stale file
    world.truth.to_parquet(out / "truth.parquet", index=False)
    n_by_type = world.units.unit_type.value_counts()
    meta = {
        "generator": "sanling simulate",
        "preset": preset,
        "n_units": len(world.units),
        "months": months,
        "seed": seed,
        "format": fmt,
        "start": str(START),
        "end": str(START + months - 1),
        "burn_in_months": BURN_IN_MONTHS,
        "units_by_type": {t: int(n_by_type.get(t, 0)) for t in TYPES},
        "n_events": len(world.events),
        "n_truth_rows": len(world.truth),
        "params": dataclasses.asdict(params),
        "reporting": dataclasses.asdict(ReportingParams()) if reporting else None,
    }
    (out / "world.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    secs = time.perf_counter() - t0
    plural = {"village": "villages", "community": "communities", "enterprise": "enterprises"}
    mix = ", ".join(f"{n_by_type.get(t, 0):,} {plural[t]}" for t in TYPES)
    return (
        f"wrote {len(world.units):,} units ({mix}), {len(world.events):,} events "
        f"{meta['start']}…{meta['end']} and {len(world.truth):,} oracle rows to {out} in {secs:.1f} s"
    )
