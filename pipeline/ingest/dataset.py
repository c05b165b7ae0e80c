"""The ingestion job: a data directory → normalised, validated, stored data (docs/data-contract.md).

The edge that ties the pure stages together: locate and read the files (:mod:`.readers`),
normalise them (:mod:`.normalise`), summarise (:mod:`.report`) and store or reuse the Parquet
(:mod:`.store`). Every later stage starts from :func:`load_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sanling.core.errors import DataError
from sanling.core.vocabulary import CATEGORIES_ZH, OPTIONAL_TABLES
from sanling.pipeline.ingest import store
from sanling.pipeline.ingest.dated import normalise_history, normalise_updates
from sanling.pipeline.ingest.normalise import (
    REJECTED,
    Normalised,
    canonical_columns,
    normalise_events,
    normalise_units,
)
from sanling.pipeline.ingest.readers import RawTable, locate_tables, read_table
from sanling.pipeline.ingest.report import IngestReport, data_profile, reporting_profile, table_report


@dataclass(frozen=True)
class Dataset:
    """Normalised ``units`` and ``events`` (schemas in :mod:`pipeline.contract`), the ingestion
    report, the data directory they came from and ``workdir``, the ``datasets/<key>/`` folder."""

    units: pd.DataFrame
    events: pd.DataFrame
    report: IngestReport
    source: Path
    workdir: Path
    updates: pd.DataFrame | None = None  # the optional ``event_updates`` (normalised), if given
    history: pd.DataFrame | None = None  # the optional ``unit_history`` (normalised), if given


def load_dataset(
    data_dir: str | Path, *, categories: dict[str, str] | None = None, home: Path | None = None
) -> Dataset:
    """Read, validate and normalise a data directory, or reuse its stored result if the input files
    and the category taxonomy are unchanged.

    ``categories`` maps canonical category names to Chinese names (default: the contract's seven);
    ``home`` is the sanling home folder (default ``Settings().home``). Raises :class:`DataError`
    (one line naming file and column) when the input cannot be used at all.
    """
    source = Path(data_dir).expanduser().resolve()
    cats = dict(CATEGORIES_ZH if categories is None else categories)
    if home is None:
        from sanling.core.config import Settings

        home = Settings().home
    files = locate_tables(source, optional=OPTIONAL_TABLES)
    workdir = store.dataset_dir(home, source)
    fp = store.fingerprint(files, cats)

    cached = store.read_cached(workdir, fp)
    if cached is not None:
        units, events, report = cached
        extra = store.read_optional(workdir, report)
        return Dataset(
            units,
            events,
            IngestReport.from_dict(report).cached(),
            source,
            workdir,
            extra.get("event_updates"),
            extra.get("unit_history"),
        )

    raw_units = read_table("units", files["units"])
    raw_events = read_table("events", files["events"])
    # Fail on a missing events column before spending time on the units.
    canonical_columns(raw_units.frame, table="units", file=raw_units.file)
    event_columns = canonical_columns(raw_events.frame, table="events", file=raw_events.file)[0].columns
    given = tuple(c for c in ("reported_at", "escalated_at") if c in event_columns)

    units = normalise_units(
        raw_units.frame, file=raw_units.file, rows=raw_units.rows, sources=raw_units.sources
    )
    if len(units.frame) == 0:
        _refuse(workdir, raw_units.file, units, [units])
    events = normalise_events(
        raw_events.frame,
        unit_ids=units.frame["unit_id"],
        categories=cats,
        file=raw_events.file,
        rows=raw_events.rows,
        sources=raw_events.sources,
    )
    if len(events.frame) == 0:
        _refuse(workdir, raw_events.file, events, [units, events])
    dated = read_dated_tables(files, units.frame, events.frame, cats)
    rejects_path = store.write_rejects(
        workdir,
        pd.concat(
            [units.rejects, events.rejects, *(d[1].rejects for d in dated.values())], ignore_index=True
        ),
    )
    optional = {name: norm.frame for name, (_, norm) in dated.items()}

    report = IngestReport(
        source=str(source),
        workdir=str(workdir),
        rejects_path=str(rejects_path),
        units=table_report(raw_units, units),
        events=table_report(raw_events, events),
        categories=cats,
        fingerprint=fp,
        **data_profile(units.frame, events.frame, cats),
        **{name: table_report(raw, norm) for name, (raw, norm) in dated.items()},
        reporting=reporting_profile(
            events.frame, optional.get("event_updates"), optional.get("unit_history"), dated_columns=given
        ),
    )
    store.write_dataset(workdir, units.frame, events.frame, report.to_dict(), optional)
    return Dataset(
        units.frame,
        events.frame,
        report,
        source,
        workdir,
        optional.get("event_updates"),
        optional.get("unit_history"),
    )


def read_dated_tables(
    files: dict[str, tuple[Path, ...]], units: pd.DataFrame, events: pd.DataFrame, categories: dict[str, str]
) -> dict[str, tuple[RawTable, Normalised]]:
    """The optional ``event_updates`` and ``unit_history`` files that are present, read and normalised
    against the accepted units and events (name → (raw, normalised))."""
    out: dict[str, tuple[RawTable, Normalised]] = {}
    if "event_updates" in files:
        raw = read_table("event_updates", files["event_updates"])
        out["event_updates"] = (
            raw,
            normalise_updates(raw.frame, events=events, categories=categories, file=raw.file, rows=raw.rows),
        )
    if "unit_history" in files:
        raw = read_table("unit_history", files["unit_history"])
        out["unit_history"] = (
            raw,
            normalise_history(raw.frame, unit_ids=units["unit_id"], file=raw.file, rows=raw.rows),
        )
    return out


def validate_dir(
    data_dir: str | Path, *, categories: dict[str, str] | None = None, home: Path | None = None
) -> IngestReport:
    """Check a data directory against the contract and return the report (``sanling validate``).

    The normalised data is stored as a side effect, so the next stage starts from the cache.
    """
    return load_dataset(data_dir, categories=categories, home=home).report


def _refuse(workdir: Path, file: str, norm: Normalised, parts: list[Normalised]) -> None:
    """No row of a table is usable: keep the rejects for the user to read, drop any stale cache."""
    store.invalidate(workdir)
    path = store.write_rejects(workdir, pd.concat([p.rejects for p in parts], ignore_index=True))
    raise DataError(f"{file}: no row accepted ({_top_reasons(norm)}); see {path}")


def _top_reasons(norm: Normalised, k: int = 3) -> str:
    rejected = norm.rejects[norm.rejects["kind"] == REJECTED]
    if len(rejected) == 0:
        return f"{norm.rows_read:,} rows read"
    counts = (rejected["column"] + ": " + rejected["reason"]).value_counts().head(k)
    top = ", ".join(f"{n:,} × {reason}" for reason, n in counts.items())
    return f"{len(rejected):,} rejected: {top}"
