"""A data set laid out on a Dask cluster: its partitions (with halos) planned on the client, each
partition's tables sent to the workers once, and the per-partition tasks submitted and collected."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from sanling.core.config import Config
from sanling.pipeline.distributed.features import (
    PanelShape,
    PartitionTables,
    event_index,
    panel_shape,
    partition_panel,
    partition_tables,
    registry_shape,
)
from sanling.pipeline.distributed.ingest import Ingested
from sanling.pipeline.distributed.partitions import (
    UNITS_PER_PARTITION,
    Partition,
    n_partitions,
    plan_partitions,
)
from sanling.pipeline.distributed.tasks import TaskCost, frame_task, score_task

# Training and the backtest fit on the client: at most this many rows (a province's 50,000 units ×
# 48 labelled months fit whole; a national registry trains on a random sample of whole units).
MAX_TRAINING_ROWS = 3_000_000


class Layout:
    """``ds`` (a normalised data set) cut into partitions on ``client``'s cluster.

    ``parts``: the partitions, largest first; ``shape``: what their panels share with the whole
    data's; ``costs``: the :class:`TaskCost` of every task run so far."""

    def __init__(self, client, ds, config: Config, *, units_per_partition: int = UNITS_PER_PARTITION):
        self.client, self.ds, self.config = client, ds, config
        self.units = ds.units.reset_index(drop=True)
        on_workers = isinstance(ds, Ingested)
        if on_workers:
            self.shape: PanelShape = registry_shape(self.units, *ds.months, ds.dated_numeric, config)
        else:
            self.shape = panel_shape(ds, config)
        n_workers = max(len(client.scheduler_info()["workers"]), 1)
        n = n_partitions(len(self.units), n_workers, units_per_partition)
        self.parts: list[Partition] = plan_partitions(self.units, n, config.features.knn_k)
        if on_workers:  # the workers read their members' rows: only ids and registry rows go out
            self._tables = [ds.source_of(p.members) for p in self.parts]
        else:
            self._rows, self._starts = event_index(ds)
            self._tables = [client.scatter(self.tables(p)) for p in self.parts]
        self.costs: list[TaskCost] = []

    @property
    def n_units(self) -> int:
        return len(self.units)

    def tables(self, part: Partition) -> PartitionTables:
        """The tables of ``part``'s members, here on the client."""
        if isinstance(self.ds, Ingested):
            return self.ds.source_of(part.members).load()
        return partition_tables(self.ds, part, self._rows, self._starts)

    def halo_share(self) -> float:
        """Halo units over core units, summed over the partitions (the duplicated work)."""
        core = sum(len(p.core) for p in self.parts)
        return (sum(len(p.members) for p in self.parts) - core) / max(core, 1)

    # -- features ---------------------------------------------------------------------------------
    def frames(
        self, as_of: list[str], *, with_labels: bool, keep: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """(registry positions, feature frame) per partition as the workers finish them."""
        from distributed import as_completed

        futures = [
            self.client.submit(
                frame_task, t, self.shape, p, self.config, as_of, keep, with_labels, pure=False
            )
            for t, p in zip(self._tables, self.parts, strict=True)
        ]
        for future in as_completed(futures):
            positions, frame, cost = future.result()
            future.release()
            self.costs.append(cost)
            if len(frame):
                yield positions, frame

    def frame(self, as_of: list[str], *, with_labels: bool, keep: np.ndarray | None = None) -> pd.DataFrame:
        """The feature frame of ``as_of`` for every unit (or the registry positions ``keep``), rows in
        the single-process order (as-of major, units in registry order)."""
        keys, parts = [], []
        for positions, frame in self.frames(as_of, with_labels=with_labels, keep=keep):
            keys.append(np.add.outer(np.arange(len(as_of), dtype=np.int64) * self.n_units, positions).ravel())
            parts.append(frame)
        order = np.argsort(np.concatenate(keys), kind="stable")
        return pd.concat(parts, ignore_index=True).take(order).reset_index(drop=True)

    def sample(self, n_dates: int, max_rows: int = MAX_TRAINING_ROWS, seed: int = 0) -> np.ndarray | None:
        """Registry positions of the units the client fits on (``None``: all of them) — whole units,
        so every training row keeps its unit's full history, drawn with a fixed seed."""
        max_units = max(max_rows // max(n_dates, 1), 1)
        if self.n_units <= max_units:
            return None
        return np.sort(np.random.default_rng(seed).choice(self.n_units, max_units, replace=False))

    def client_panel(self, keep: np.ndarray | None):
        """The panel of the ``keep`` units (all: ``None``) on the client, for what is computed per unit
        there — the tier history of the baselines, the labels known at each origin, the reason
        specs. Its neighbours are left empty: its features are never built."""
        positions = np.arange(self.n_units) if keep is None else keep
        part = Partition(-1, positions, positions, np.full((len(positions), 0), -1, np.int64), ())
        return partition_panel(self.tables(part), self.shape, part.neighbours, self.config)

    # -- scoring ----------------------------------------------------------------------------------
    def scores(
        self, bundle, as_of: str, backfill: list[str], outcome_months: list[str], version: str
    ) -> Iterator[dict]:
        """The :func:`~sanling.pipeline.distributed.tasks.score_task` result of each partition as the
        workers finish them. The bundle goes to every worker once."""
        from distributed import as_completed

        shared = self.client.scatter(bundle, broadcast=True)
        futures = [
            self.client.submit(
                score_task, t, self.shape, p, shared, as_of, backfill, outcome_months, version, pure=False
            )
            for t, p in zip(self._tables, self.parts, strict=True)
        ]
        for future in as_completed(futures):
            result = future.result()
            future.release()
            self.costs.append(result["cost"])
            yield result
