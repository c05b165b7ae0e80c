"""What a worker runs for one partition: its panel once, then the features (training, backtest) or
the explained scores, forecast history and observed tiers (``sanling score``) of its core units."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pandas as pd

from sanling.core.config import Config
from sanling.pipeline.distributed.features import (
    PanelShape,
    PartitionTables,
    partition_frame,
    partition_panel,
)
from sanling.pipeline.distributed.heap import steady_heap
from sanling.pipeline.distributed.ingest import PartitionSource
from sanling.pipeline.distributed.partitions import Partition


@dataclass
class TaskCost:
    """What one partition cost on its worker: wall and CPU seconds per step (CPU seconds do not grow
    when other jobs share the cores) and the worker process's peak resident memory when it
    finished, for the benchmark's per-partition projection."""

    partition: int
    n_core: int
    n_members: int
    n_events: int
    seconds: float = 0.0
    peak_bytes: int = 0
    steps: dict[str, float] = field(default_factory=dict)
    cpu_steps: dict[str, float] = field(default_factory=dict)


class _Meter:
    def __init__(self, part: Partition, tables: PartitionTables):
        self.cost = TaskCost(part.number, len(part.core), len(part.members), len(tables.events))
        self.t0 = self.last = time.perf_counter()
        self.cpu = time.process_time()

    def step(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.cost.steps[name] = round(now - self.last, 3)
        self.cost.cpu_steps[name] = round(cpu - self.cpu, 3)
        self.last, self.cpu = now, cpu

    def done(self) -> TaskCost:
        self.cost.seconds = round(time.perf_counter() - self.t0, 3)
        self.cost.peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
        return self.cost


def _tables_of(tables: PartitionTables | PartitionSource, part: Partition) -> tuple[PartitionTables, _Meter]:
    """The partition's tables — read here when the client sent their :class:`PartitionSource` —
    and the meter of its task (the reading is its ``read`` step)."""
    steady_heap()
    if isinstance(tables, PartitionSource):
        t0, cpu = time.perf_counter(), time.process_time()
        tables = tables.load()
        meter = _Meter(part, tables)
        meter.cost.steps["read"] = round(time.perf_counter() - t0, 3)
        meter.cost.cpu_steps["read"] = round(time.process_time() - cpu, 3)
        meter.t0 -= meter.cost.steps["read"]
        return tables, meter
    return tables, _Meter(part, tables)


def frame_task(
    tables: PartitionTables | PartitionSource,
    shape: PanelShape,
    part: Partition,
    config: Config,
    as_of: list[str],
    keep: np.ndarray | None,
    with_labels: bool,
) -> tuple[np.ndarray, pd.DataFrame, TaskCost]:
    """(registry positions of the rows' units, the frame of the core units in ``keep`` (registry
    positions; ``None``: all), its cost)."""
    tables, meter = _tables_of(tables, part)
    panel = partition_panel(tables, shape, part.neighbours, config)
    meter.step("panel")
    core = part.core_in_members
    positions = part.core
    if keep is not None:
        chosen = np.isin(part.core, keep)
        core, positions = core[chosen], positions[chosen]
    if len(core) == 0:
        return positions, pd.DataFrame(), meter.done()
    frame = partition_frame(panel, core, as_of, shape, config, with_labels=with_labels)
    meter.step("features")
    return positions, frame, meter.done()


def score_task(
    tables: PartitionTables | PartitionSource,
    shape: PanelShape,
    part: Partition,
    bundle,
    as_of: str,
    backfill: list[str],
    outcome_months: list[str],
    version: str,
) -> dict:
    """The partition's part of ``sanling score``: explained scores as of ``as_of``, forecasts without
    reasons for the ``backfill`` months, observed tiers of ``outcome_months``, and the unit pages'
    event history — computed exactly as :func:`sanling.pipeline.jobs.score` computes them for all units."""
    from sanling.pipeline.scoring import backfill_scores, explained_scores, history_tables, observed_tiers

    config = bundle.config
    tables, meter = _tables_of(tables, part)
    panel = partition_panel(tables, shape, part.neighbours, config)
    meter.step("panel")
    core = part.core_in_members
    core_units = tables.units.iloc[core]
    ids = set(core_units["unit_id"].astype(str))
    frame = partition_frame(panel, core, [as_of], shape, config, with_labels=False)
    meter.step("features")
    rows = explained_scores(
        bundle, SimpleNamespace(units=core_units), panel, as_of, frame=frame, model_version=version
    )
    meter.step("score_explain")
    history = [
        (month, [r for r in month_rows if r["unit_id"] in ids])
        for month, month_rows in backfill_scores(bundle, tables, panel, backfill, model_version=version)
    ]
    meter.step("backfill")
    outcomes = [o for o in observed_tiers(panel, config, outcome_months) if o[0] in ids]
    events = tables.events[tables.events["unit_id"].astype(str).isin(ids)]
    event_months, open_events = history_tables(events, as_of)
    meter.step("history")
    return {
        "rows": rows,
        "backfill": history,
        "outcomes": outcomes,
        "event_months": event_months,
        "open_events": open_events,
        "cost": meter.done(),
    }
