"""Where normalised data lives, and how it gets there: atomic writes and a cache keyed by the input.

``<home>/datasets/<dir name>-<8 hex of sha1(absolute path)>/`` holds ``units.parquet``,
``events.parquet``, ``rejects.csv`` (UTF-8 with BOM, for Excel) and ``report.json``. The report
is written last and carries the fingerprint of the inputs, so a folder whose report matches the
current inputs is complete and can be read back instead of parsing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sanling.core.text import csv_safe

# Bump when normalisation changes what it writes: every cached dataset is then re-ingested.
INGEST_VERSION = 2

UNITS_FILE = "units.parquet"
EVENTS_FILE = "events.parquet"
REJECTS_FILE = "rejects.csv"
REPORT_FILE = "report.json"
# The optional dated tables (docs/data-contract.md), stored as ``<name>.parquet`` when given.
OPTIONAL_FILES: tuple[str, ...] = ("event_updates", "unit_history")


def dataset_dir(home: Path, source: Path) -> Path:
    """The folder for the normalised data of the data directory ``source``."""
    source = source.resolve()
    key = hashlib.sha1(str(source).encode("utf-8")).hexdigest()[:8]
    return Path(home).resolve() / "datasets" / f"{source.name or 'data'}-{key}"


def fingerprint(files: Mapping[str, Sequence[Path]], categories: dict[str, str]) -> dict[str, Any]:
    """What the normalised output depends on: each input file of each table (name, size, sha1 of
    its bytes), the category taxonomy and :data:`INGEST_VERSION`. Modification times are left out
    on purpose: touching or copying a file without changing it must not force a re-parse."""
    return {
        "version": INGEST_VERSION,
        "files": {
            table: [{"name": p.name, "size": p.stat().st_size, "sha1": _sha1(p)} for p in paths]
            for table, paths in files.items()
        },
        "categories": dict(categories),
    }


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_cached(
    workdir: Path, fp: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]] | None:
    """(units, events, report dict) from ``workdir`` if its report matches ``fp``, else ``None``."""
    report_path = workdir / REPORT_FILE
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if report.get("fingerprint") != fp:
        return None
    try:
        units = pd.read_parquet(workdir / UNITS_FILE)
        events = pd.read_parquet(workdir / EVENTS_FILE)
    except (OSError, ValueError):
        return None
    return units, events, report


def read_optional(workdir: Path, report: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The stored optional tables the report lists (name → frame)."""
    return {name: pd.read_parquet(workdir / f"{name}.parquet") for name in OPTIONAL_FILES if report.get(name)}


def write_rejects(workdir: Path, rejects: pd.DataFrame) -> Path:
    """Write ``rejects.csv`` (UTF-8 with BOM so Excel shows the Chinese) atomically; return its path."""
    path = workdir / REJECTS_FILE
    # Rejected values are what the user typed, hostile or not: a formula-like cell would run when
    # the file is opened in Excel, so it gets the leading apostrophe (CSV has no text cells).
    safe = rejects.map(csv_safe) if len(rejects) else rejects
    atomic_write(path, lambda tmp: safe.to_csv(tmp, index=False, encoding="utf-8-sig", lineterminator="\n"))
    return path


def write_dataset(
    workdir: Path,
    units: pd.DataFrame,
    events: pd.DataFrame,
    report: dict[str, Any],
    optional: dict[str, pd.DataFrame] | None = None,
) -> None:
    """Write the normalised tables (and the ``optional`` dated ones, name → frame), then
    ``report.json`` (the commit marker), each atomically."""
    atomic_write(workdir / UNITS_FILE, lambda tmp: units.to_parquet(tmp, index=False))
    atomic_write(workdir / EVENTS_FILE, lambda tmp: events.to_parquet(tmp, index=False))
    for name, frame in (optional or {}).items():
        atomic_write(workdir / f"{name}.parquet", lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    text = json.dumps(report, ensure_ascii=False, indent=1, sort_keys=False) + "\n"
    atomic_write(workdir / REPORT_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place in one step,
    so readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def invalidate(workdir: Path) -> None:
    """Forget a cached dataset (its report), e.g. after an ingestion that accepted nothing."""
    (workdir / REPORT_FILE).unlink(missing_ok=True)
