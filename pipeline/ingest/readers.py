"""The files of a table → one raw DataFrame (the files themselves are opened in :mod:`.grids`).

A table may be split over several files and sheets, as township ledgers are kept (CONTRACT §1,
``docs/data-contract.md``). The API, for ``units``, ``events`` and any further table::

    files = locate_tables(data_dir)                          # {"units": (Path, …), "events": (…)}
    files = locate_tables(data_dir, optional=("followups",))  # an optional table, when present
    raw = read_table("events", files["events"])              # every file and sheet, one RawTable
    raw = read_table("followups", files["followups"], required=(…), known=(…))

:func:`locate_tables` finds every file whose name starts with a table's name (``events.csv``,
``events_2021.xlsx``, ``events-城关镇.csv``). :func:`read_table` reads each of them — every sheet of
a workbook whose header holds the table's required columns; other sheets are skipped and named
— finds the header row (:mod:`.ledger`), sets aside the rows that are not records (合计, 说明,
empty rows), and stacks what remains, columns matched by name, in the order of file names and
then sheet names (so the last one wins among repeated ids, whatever the order of the sheets).

CSV and xlsx are read as text (every cell a string, parsing is :mod:`.normalise`'s job); Parquet
keeps its column types, which the parsers accept as they are. Each raw table carries the source row
of every record — the row a user sees in a spreadsheet (for Parquet, which has no header row, the
1-based record number) — and, when it comes from several files or sheets, which one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.core.vocabulary import (
    COLUMN_ALIASES,
    EVENT_COLUMNS,
    EVENT_REQUIRED,
    HISTORY_COLUMNS,
    UNIT_OPTIONAL,
    UNIT_REQUIRED,
    UPDATE_COLUMNS,
)
from sanling.pipeline.ingest import grids, ledger

TABLES: tuple[str, ...] = ("units", "events")
FORMATS: tuple[str, ...] = ("csv", "xlsx", "parquet")
# (required, known) columns of the tables read by default; other tables pass theirs to read_table.
TABLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "units": (UNIT_REQUIRED, UNIT_REQUIRED + UNIT_OPTIONAL),
    "events": (EVENT_REQUIRED, EVENT_COLUMNS),
    "event_updates": (UPDATE_COLUMNS, UPDATE_COLUMNS),
    "unit_history": (HISTORY_COLUMNS, HISTORY_COLUMNS),
}


@dataclass(frozen=True)
class SheetRead:
    """One file, or one sheet of a workbook, that holds records of the table.

    ``label`` names it in messages and rejects (``events_2021.xlsx [台账]``, or the file name when
    the file has one sheet); ``header_rows`` are the first and last header row (``None`` for
    Parquet); ``skipped`` maps the reason a row is not a record (:data:`.ledger.EMPTY`, …) to the
    row numbers."""

    file: str
    sheet: str | None
    label: str
    header_rows: tuple[int, int] | None
    records: int
    skipped: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class SkippedSheet:
    """A sheet of a table's workbook that holds no records of it, and why (e.g. a 填表说明 sheet)."""

    file: str
    sheet: str
    reason: str


@dataclass(frozen=True)
class RawTable:
    """One input table as read: ``frame`` (headers as written), ``rows`` (source row per record),
    ``sources`` (the label of the file or sheet of each record; ``None`` when there is one),
    ``parts`` (what was read where) and ``skipped_sheets``."""

    name: str
    path: Path
    format: str
    encoding: str | None
    frame: pd.DataFrame
    rows: np.ndarray
    blank_rows: int
    sources: np.ndarray | None = None
    parts: tuple[SheetRead, ...] = ()
    skipped_sheets: tuple[SkippedSheet, ...] = ()

    @property
    def file(self) -> str:
        """The file (or sheet) name used in messages; several are listed, comma-separated."""
        if not self.parts:
            return self.path.name
        return ", ".join(p.label for p in self.parts)


def locate_tables(
    data_dir: Path, tables: Sequence[str] = TABLES, *, optional: Sequence[str] = ()
) -> dict[str, tuple[Path, ...]]:
    """The files of each table in a data directory: every csv, xlsx or parquet file whose name
    starts with the table's name (a file starting with two table names belongs to the longer one),
    in natural order of their names (``events_2`` before ``events_10``).

    ``tables`` must be present, ``optional`` ones are returned only when present. Other files
    (``truth.parquet``, notes) are ignored. Raises :class:`DataError` when the directory does not
    exist, a required table is missing, or one file is given in two formats (``events.csv`` and
    ``events.parquet``).
    """
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: not a directory")
    names = sorted({*tables, *optional}, key=len, reverse=True)
    by_name: dict[str, list[Path]] = {t: [] for t in names}
    for p in sorted(data_dir.iterdir(), key=lambda p: natural_key(p.name)):
        stem, dot, ext = p.name.rpartition(".")
        if not dot or ext.lower() not in FORMATS or not p.is_file():
            continue
        table = next((t for t in names if stem.lower().startswith(t)), None)
        if table is not None:
            by_name[table].append(p)
    found: dict[str, tuple[Path, ...]] = {}
    for table in [*tables, *optional]:
        paths = by_name[table]
        if not paths:
            if table in tables:
                expected = ", ".join(f"{table}.{ext}" for ext in FORMATS)
                raise DataError(f"{data_dir}: missing table '{table}' (expected one of {expected})")
            continue
        stems: dict[str, Path] = {}
        for p in paths:
            stem = p.name.rpartition(".")[0].lower()
            if stem in stems:
                raise DataError(
                    f"{data_dir}: table '{table}' is given twice ({stems[stem].name} and {p.name}); keep one file"
                )
            stems[stem] = p
        found[table] = tuple(paths)
    return found


def read_table(
    name: str,
    paths: Path | Sequence[Path],
    *,
    required: Sequence[str] | None = None,
    known: Sequence[str] | None = None,
) -> RawTable:
    """Read the files of one table (csv, xlsx or parquet by extension) into one :class:`RawTable`.

    ``required`` and ``known`` are the table's required and all its canonical columns (defaults
    from :data:`TABLE_COLUMNS` for ``units`` and ``events``); headers are recognised by those names
    (any case) and their aliases in :data:`sanling.core.vocabulary.COLUMN_ALIASES`. A sheet
    without the required columns is skipped (and listed in ``skipped_sheets``); a file without
    them is an error. Raises :class:`DataError` naming the file (and sheet) when a file cannot be
    read, when a file holds no header with the required columns, or when the table holds no record.
    """
    paths = (paths,) if isinstance(paths, Path) else tuple(paths)
    if required is None or known is None:
        if name not in TABLE_COLUMNS:
            raise ValueError(f"read_table: give the required and known columns of table '{name}'")
        required, known = TABLE_COLUMNS[name]
    names = ledger.header_names(known, COLUMN_ALIASES)
    parts: list[_Part] = []
    skipped_sheets: list[SkippedSheet] = []
    for path in paths:
        held, missed = [], []
        for part in _read_parts(path, names):
            lacking = [c for c in required if part.header is not None and c not in part.header.matched]
            (missed if lacking else held).append((part, lacking))
        if not held:
            # A file named like the table but holding none of it is a mistake, not a notes file.
            part, lacking = max(missed, key=lambda pl: len(pl[0].header.matched) if pl[0].header else 0)
            raise DataError(_missing_message(part, lacking))
        parts.extend(p for p, _ in held)
        for p, lacking in missed:
            why = "空表 empty" if p.empty else f"no header with {', '.join(lacking)}"
            skipped_sheets.append(SkippedSheet(p.file, p.sheet or "", why))
    parts.sort(key=lambda p: (natural_key(p.file), natural_key(p.sheet or "")))
    return _stack(name, paths, parts, skipped_sheets, names)


def _missing_message(part: _Part, lacking: list[str]) -> str:
    what = ", ".join(f"'{c}' ({_aliases(c)} accepted as aliases)" for c in lacking)
    assert part.header is not None
    shown = ", ".join(h for h in part.header.names[:12])
    where = "" if part.header.last_row == 1 else f" (row {part.header.last_row})"
    plural = "s" if len(lacking) > 1 else ""
    return f"{part.label}: missing required column{plural} {what}; the header{where} has: {shown}"


def _aliases(column: str) -> str:
    return "/".join(zh for zh, c in COLUMN_ALIASES.items() if c == column) or "no alias"


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key comparing digit runs as numbers: ``1月`` < ``2月`` < ``10月``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text))


@dataclass(frozen=True)
class _Part:
    """A file or sheet as read: its header and records (before stacking)."""

    file: str
    sheet: str | None
    label: str
    format: str
    encoding: str | None
    header: ledger.Header | None
    frame: pd.DataFrame
    rows: np.ndarray
    skipped: dict[str, list[int]]
    empty: bool = False


def _read_parts(path: Path, names: dict[str, str]) -> Iterator[_Part]:
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "csv":
        grid, encoding = grids.csv_grid(path)
        yield _part(path.name, None, path.name, "csv", encoding, grid, names)
    elif fmt == "xlsx":
        sheets = grids.xlsx_grids(path)
        for title, grid in sheets:
            label = f"{path.name} [{title}]" if len(sheets) > 1 else path.name
            yield _part(path.name, title, label, "xlsx", None, grid, names)
    elif fmt == "parquet":
        frame = grids.read_parquet(path)
        rows = np.arange(1, len(frame) + 1, dtype=np.int64)
        blank = grids.blank_rows(frame)
        skipped = {ledger.EMPTY: rows[blank].tolist()} if blank.any() else {}
        frame = frame.loc[~blank].reset_index(drop=True) if blank.any() else frame
        yield _Part(path.name, None, path.name, "parquet", None, None, frame, rows[~blank], skipped)
    else:
        raise DataError(f"{path.name}: unsupported format (use csv, xlsx or parquet)")


def _part(
    file: str, sheet: str | None, label: str, fmt: str, encoding: str | None, grid: pd.DataFrame, names
) -> _Part:
    """A grid → its header and the records below it, the other rows counted by reason."""
    header = ledger.find_header(grid, names)
    empty = not header.names or all(not h for h in header.names)
    body = grid.iloc[header.last_row :]
    code = ledger.skipped_rows(body, header.names)
    rows = np.arange(header.last_row + 1, header.last_row + 1 + len(body), dtype=np.int64)
    keep = code == 0
    skipped = {r: rows[code == k].tolist() for k, r in enumerate(ledger.SKIP_REASONS) if k}
    frame = body.loc[keep].reset_index(drop=True) if not keep.all() else body.reset_index(drop=True)
    frame.columns = header.names
    # A running number (序号) is layout, not data: it must not become a unit attribute.
    frame = frame.loc[:, [not ledger.is_running_number(h) for h in header.names]]
    skipped = {k: v for k, v in skipped.items() if v}
    return _Part(file, sheet, label, fmt, encoding, header, frame, rows[keep], skipped, empty)


def _stack(
    name: str,
    paths: tuple[Path, ...],
    parts: list[_Part],
    skipped_sheets: list[SkippedSheet],
    names: dict[str, str],
) -> RawTable:
    """Parts → one RawTable: columns matched by canonical name (else by header as written)."""
    records = sum(len(p.frame) for p in parts)
    file = ", ".join(p.label for p in parts)
    if records == 0:
        raise DataError(f"{file}: no data rows (only a header)")
    if len(parts) == 1:
        frame, sources = parts[0].frame, None
    else:
        frame = _aligned(parts, names)
        sources = np.repeat(np.array([p.label for p in parts], dtype=object), [len(p.frame) for p in parts])
    fmts = list(dict.fromkeys(p.format for p in parts))
    encodings = list(dict.fromkeys(p.encoding for p in parts if p.encoding))
    return RawTable(
        name=name,
        path=paths[0],
        format="+".join(fmts),
        encoding=", ".join(encodings) or None,
        frame=frame,
        rows=np.concatenate([p.rows for p in parts]),
        blank_rows=sum(len(p.skipped.get(ledger.EMPTY, ())) for p in parts),
        sources=sources,
        parts=tuple(
            SheetRead(
                p.file,
                p.sheet,
                p.label,
                None if p.header is None else (p.header.first_row, p.header.last_row),
                len(p.frame),
                p.skipped,
            )
            for p in parts
        ),
        skipped_sheets=tuple(skipped_sheets),
    )


def _aligned(parts: list[_Part], names: dict[str, str]) -> pd.DataFrame:
    """The parts' frames stacked, a column per canonical name (or per header as written), headed by
    the first header seen for it; a column a part lacks is empty there."""
    written: dict[str, str] = {}
    pieces = []
    for k, p in enumerate(parts):
        cols: dict[str, pd.Series] = {}
        for pos, header in enumerate(p.frame.columns):
            header = str(header)
            col = p.frame.iloc[:, pos]
            if not header.strip():
                if not _all_empty(col):
                    key = f"\0{k}:{pos}"  # data without a header: kept apart, normalise reports it
                    cols[key], written[key] = col, ""
                continue
            key = ledger.canonical_of(header, names) or header.strip()
            if key in cols:
                raise DataError(
                    f"{p.label}: column '{key}' is given twice ('{written.get(key, key)}' and "
                    f"'{header.strip()}'); keep one"
                )
            cols[key] = col
            written.setdefault(key, header)
        pieces.append(pd.DataFrame(cols))
    # Text and typed columns (csv beside parquet) may meet in one column: the parsers take both.
    frame = pd.concat(pieces, ignore_index=True)
    frame.columns = [written[c] for c in frame.columns]
    return frame


def _all_empty(col: pd.Series) -> bool:
    if pd.api.types.is_string_dtype(col.dtype):
        return bool((col.isna() | (col.str.strip() == "")).all())
    return bool(col.isna().all())
