"""**Edge**: ingestion on the workers, for a data directory whose tables are split by a common
suffix (``events_1101.parquet``, ``event_updates_1101.parquet``, ``unit_history_1101.parquet``:
CONTRACT §1 allows a table split over files; the national simulator writes one group per city).

The client reads and normalises only the registry (``units_*``: ids, coordinates, county, township,
type, attributes) — what it needs to plan partitions with halos. Each *file group* is read,
validated and normalised on a worker with the same rules as :func:`~sanling.pipeline.ingest.load_dataset`
(events against the whole registry, corrections against the group's events, attribute history
against the registry), written as Parquet to ``<dataset dir>/groups/`` and summarised to the
client (rows, rejects, months, which registry units it holds). A partition's task then reads, from
the groups that hold its members, only its members' rows (:meth:`PartitionSource.load`): the client
sends ids, never events.

What differs from ingesting the directory whole, by construction: an event id repeated in two
groups is not detected as a replaced duplicate, and a correction must sit in the group of its event
(else it is rejected as a correction of an unknown event). A directory whose files do not group by
suffix is ingested on the client as before (:func:`file_groups` returns ``None``).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.core.months import datetimes_to_month_numbers
from sanling.core.vocabulary import OPTIONAL_TABLES
from sanling.pipeline.distributed.features import PartitionTables
from sanling.pipeline.distributed.heap import steady_heap
from sanling.pipeline.ingest import store
from sanling.pipeline.ingest.dataset import read_dated_tables
from sanling.pipeline.ingest.normalise import event_order, normalise_events, normalise_units
from sanling.pipeline.ingest.readers import locate_tables, natural_key, read_table

GROUPS_DIR = "groups"
DATED = ("event_updates", "unit_history")


@dataclass(frozen=True)
class FileGroup:
    """``key``: the suffix shared by the group's files (``_1101``); ``files``: table → its files."""

    key: str
    files: dict[str, tuple[Path, ...]]


@dataclass
class GroupSummary:
    """What a worker tells the client about one ingested group. ``positions``: registry positions of
    the units whose events or history the group holds; ``first``/``last``: month numbers of its
    events; ``numeric``: history attribute → every value a number; ``counts``: table → (rows read,
    accepted); ``paths``: table → its normalised Parquet file."""

    key: str
    fingerprint: dict
    positions: np.ndarray
    first: int
    last: int
    numeric: dict[str, bool]
    counts: dict[str, tuple[int, int]]
    rejects: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0  # wall and CPU seconds of the worker's ingestion (0 when read back)
    cpu_seconds: float = 0.0


def file_groups(files: dict[str, tuple[Path, ...]]) -> list[FileGroup] | None:
    """The groups of a located data directory (:func:`locate_tables`), in the natural order of their
    events files, or ``None`` when the events are in one file or a ``event_updates`` /
    ``unit_history`` file has no events file with its suffix."""
    events = files["events"]
    if len(events) < 2:
        return None
    groups: dict[str, dict[str, list[Path]]] = {}
    for table in ("events", *DATED):
        for p in files.get(table, ()):
            key = p.name.rpartition(".")[0][len(table) :].lower()
            if table != "events" and key not in groups:
                return None
            groups.setdefault(key, {}).setdefault(table, []).append(p)
    if any(len(g["events"]) != 1 for g in groups.values()):
        return None  # events_1101.csv beside events_1101.xlsx: one group would be two files
    order = sorted(groups, key=lambda k: natural_key(groups[k]["events"][0].name))
    return [FileGroup(k, {t: tuple(v) for t, v in groups[k].items()}) for k in order]


def read_registry(source: Path, files: dict[str, tuple[Path, ...]]):
    """The normalised ``units`` (all their files, on the client) and their :class:`Normalised`."""
    raw = read_table("units", files["units"])
    units = normalise_units(raw.frame, file=raw.file, rows=raw.rows, sources=raw.sources)
    if len(units.frame) == 0:
        raise DataError(f"{raw.file}: no unit accepted ({units.rows_read:,} rows read)")
    return units


def ingest_group(
    group: FileGroup, unit_ids: pd.Index, categories: dict[str, str], out: Path, units_fp: dict
) -> GroupSummary:
    """Read, validate and normalise one group on a worker; write its tables to ``out``. A group
    whose inputs (its files, the registry's files, the taxonomy) are unchanged is read back from the
    summary stored beside its tables."""
    steady_heap()
    t0, cpu = time.perf_counter(), time.process_time()
    fp = {**store.fingerprint(group.files, categories), "units": units_fp}
    summary_path = out / f"group{group.key}.pkl"
    if summary_path.exists():
        with open(summary_path, "rb") as f:
            cached = pickle.load(f)
        if cached.fingerprint == fp and all(p.exists() for p in cached.paths.values()):
            cached.seconds = cached.cpu_seconds = 0.0
            return cached
    files = {t: tuple(p for p in ps if not _empty_parquet(p)) for t, ps in group.files.items()}
    files = {t: ps for t, ps in files.items() if ps}  # a city without corrections: a header-only file
    if "events" not in files:
        summary = GroupSummary(
            group.key, fp, np.zeros(0, np.int64), 2**31, -1, {}, {"events": (0, 0)}, _no_rejects()
        )
        store.atomic_write(summary_path, lambda tmp: tmp.write_bytes(pickle.dumps(summary)))
        return summary
    raw = read_table("events", files["events"])
    events = normalise_events(
        raw.frame,
        unit_ids=unit_ids,
        categories=categories,
        file=raw.file,
        rows=raw.rows,
        sources=raw.sources,
    )
    registry = pd.DataFrame({"unit_id": unit_ids})
    dated = read_dated_tables(files, registry, events.frame, categories)
    tables = {"events": events.frame, **{name: norm.frame for name, (_, norm) in dated.items()}}
    paths = {}
    for name, frame in tables.items():
        paths[name] = out / f"{name}{group.key}.parquet"
        store.atomic_write(paths[name], lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    units = [events.frame["unit_id"]]
    numeric: dict[str, bool] = {}
    history = tables.get("unit_history")
    if history is not None and len(history):
        units.append(history["unit_id"])
        num = pd.to_numeric(history["value"], errors="coerce").notna()
        numeric = {str(a): bool(v) for a, v in num.groupby(history["attribute"].to_numpy()).all().items()}
    positions = np.unique(unit_ids.get_indexer(pd.concat(units, ignore_index=True)))
    occ = datetimes_to_month_numbers(events.frame["occurred_at"].to_numpy())
    summary = GroupSummary(
        key=group.key,
        fingerprint=fp,
        positions=positions[positions >= 0],
        first=int(occ.min()) if len(occ) else 0,
        last=int(occ.max()) if len(occ) else -1,
        numeric=numeric,
        counts={
            "events": (events.rows_read, len(events.frame)),
            **{name: (norm.rows_read, len(norm.frame)) for name, (_, norm) in dated.items()},
        },
        rejects=pd.concat([events.rejects, *(norm.rejects for _, norm in dated.values())], ignore_index=True),
        paths=paths,
        seconds=round(time.perf_counter() - t0, 3),
        cpu_seconds=round(time.process_time() - cpu, 3),
    )
    store.atomic_write(summary_path, lambda tmp: tmp.write_bytes(pickle.dumps(summary)))
    return summary


@dataclass
class PartitionSource:
    """What a partition's task is sent instead of its tables: its members' registry rows and the
    normalised files of the groups that hold them."""

    units: pd.DataFrame
    files: dict[str, list[Path]]

    def load(self) -> PartitionTables:
        """The members' rows of every table, in the order the whole data set's tables have them
        (events by occurrence and id; corrections and history in file order)."""
        ids = self.units["unit_id"].astype(str)
        by_unit = [("unit_id", "in", ids.tolist())]
        events = _read(self.files["events"], by_unit)
        events = events.take(event_order(events)).reset_index(drop=True)
        updates = history = None
        if self.files.get("event_updates"):
            updates = _read(self.files["event_updates"], None)
            updates = updates[updates["event_id"].isin(events["event_id"])].reset_index(drop=True)
        if self.files.get("unit_history"):
            history = _read(self.files["unit_history"], by_unit)
        return PartitionTables(self.units, events, updates, history)


def _empty_parquet(path: Path) -> bool:
    if path.suffix.lower() != ".parquet":
        return False
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows == 0


def _no_rejects() -> pd.DataFrame:
    from sanling.pipeline.ingest.normalise import REJECT_COLUMNS

    return pd.DataFrame(columns=list(REJECT_COLUMNS))


def _read(paths: list[Path], filters) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p, filters=filters) for p in paths], ignore_index=True)


@dataclass
class Ingested:
    """A data directory ingested on the workers: the registry on the client, the rest in groups."""

    units: pd.DataFrame
    groups: list[GroupSummary]
    source: Path
    workdir: Path
    rejects_path: Path

    @property
    def months(self) -> tuple[int, int]:
        return min(g.first for g in self.groups), max(g.last for g in self.groups)

    @property
    def dated_numeric(self) -> tuple[str, ...]:
        """History attributes whose every value, over all groups, is a number."""
        seen: dict[str, bool] = {}
        for g in self.groups:
            for a, ok in g.numeric.items():
                seen[a] = seen.get(a, True) and ok
        return tuple(sorted(a for a, ok in seen.items() if ok))

    @property
    def data_fingerprint(self) -> str:
        """12 hex digits that change with any input file (its bytes) or the taxonomy."""
        h = hashlib.sha1(json.dumps([g.fingerprint for g in self.groups], sort_keys=True).encode("utf-8"))
        return h.hexdigest()[:12]

    def n_events(self) -> int:
        return sum(g.counts["events"][1] for g in self.groups)

    def source_of(self, members: np.ndarray) -> PartitionSource:
        """The :class:`PartitionSource` of the registry positions ``members`` (ascending)."""
        mask = np.zeros(len(self.units), dtype=bool)
        mask[members] = True
        files: dict[str, list[Path]] = {t: [] for t in ("events", *DATED)}
        for g in self.groups:
            if mask[g.positions].any():
                for table, path in g.paths.items():
                    files[table].append(path)
        return PartitionSource(self.units.iloc[members], files)


def ingest_on_workers(client, data_dir: Path, categories: dict[str, str], home: Path) -> Ingested | None:
    """Ingest ``data_dir`` on ``client``'s workers when its files group by suffix (else ``None``):
    the registry here, every group on a worker. Rejected rows of every table go to the dataset
    folder's ``rejects.csv`` as with :func:`~sanling.pipeline.ingest.load_dataset`."""
    source = Path(data_dir).expanduser().resolve()
    files = locate_tables(source, optional=OPTIONAL_TABLES)
    groups = file_groups(files)
    if groups is None:
        return None
    workdir = store.dataset_dir(home, source)
    out = workdir / GROUPS_DIR
    out.mkdir(parents=True, exist_ok=True)
    units = read_registry(source, {"units": files["units"]})
    registry = units.frame.reset_index(drop=True)
    units_fp = store.fingerprint({"units": files["units"]}, {})
    ids = client.scatter(pd.Index(registry["unit_id"]), broadcast=True)
    futures = [
        client.submit(ingest_group, g, ids, dict(categories), out, units_fp, pure=False) for g in groups
    ]
    summaries = client.gather(futures)
    rejects = pd.concat([units.rejects, *(s.rejects for s in summaries)], ignore_index=True)
    rejects_path = store.write_rejects(workdir, rejects)
    if sum(s.counts["events"][1] for s in summaries) == 0:
        raise DataError(f"{source}: no event accepted; see {rejects_path}")
    return Ingested(registry, summaries, source, workdir, rejects_path)
