"""Files → raw DataFrames. The only place that opens the user's files.

CSV and xlsx are read as text (every cell a string, parsing is :mod:`pipeline.ingest.normalise`'s
job); Parquet keeps its column types, which the parsers accept as they are. Each raw table carries
the source row number of every record — the row a user sees in a spreadsheet, header = row 1 (for
Parquet, which has no header row, the 1-based record number) — so rejects can point at it.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.errors import DataError

TABLES: tuple[str, ...] = ("units", "events")
FORMATS: tuple[str, ...] = ("csv", "xlsx", "parquet")


@dataclass(frozen=True)
class RawTable:
    """One input table as read: ``frame`` (original headers), ``rows`` (source row per record)."""

    name: str
    path: Path
    format: str
    encoding: str | None
    frame: pd.DataFrame
    rows: np.ndarray
    blank_rows: int

    @property
    def file(self) -> str:
        return self.path.name


def locate_tables(data_dir: Path) -> dict[str, Path]:
    """The ``units`` and ``events`` files of a data directory, one format each.

    Other files (``truth.parquet``, notes) are ignored. Raises :class:`DataError` when the directory
    does not exist, a table is missing, or one table is given in two formats.
    """
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: not a directory")
    by_name: dict[str, list[Path]] = {t: [] for t in TABLES}
    for p in sorted(data_dir.iterdir()):
        stem, dot, ext = p.name.rpartition(".")
        if dot and stem.lower() in by_name and ext.lower() in FORMATS and p.is_file():
            by_name[stem.lower()].append(p)
    found: dict[str, Path] = {}
    for table, paths in by_name.items():
        if not paths:
            expected = ", ".join(f"{table}.{ext}" for ext in FORMATS)
            raise DataError(f"{data_dir}: missing table '{table}' (expected one of {expected})")
        if len(paths) > 1:
            names = " and ".join(p.name for p in paths)
            raise DataError(f"{data_dir}: table '{table}' is given twice ({names}); keep one file")
        found[table] = paths[0]
    return found


def read_table(name: str, path: Path) -> RawTable:
    """Read one table file (csv, xlsx or parquet by its extension) into a :class:`RawTable`.

    Raises :class:`DataError` naming the file when it cannot be read or holds no data rows.
    """
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "csv":
        frame, rows, encoding = _read_csv(path)
    elif fmt == "xlsx":
        frame, rows, encoding = (*_read_xlsx(path), None)
    elif fmt == "parquet":
        frame, rows, encoding = (*_read_parquet(path), None)
    else:
        raise DataError(f"{path.name}: unsupported format (use csv, xlsx or parquet)")
    frame, rows, blank = _drop_blank_rows(frame, rows)
    if len(frame) == 0:
        raise DataError(f"{path.name}: no data rows (only a header)")
    return RawTable(name, path, fmt, encoding, frame, rows, blank)


def decode_text(data: bytes, file: str) -> tuple[str, str]:
    """Bytes of a text file → (text, encoding name): UTF-8 (with or without BOM), else GB18030.

    GB18030 is a superset of GBK and GB2312, so the common Chinese exports decode with it.
    """
    if b"\x00" in data[:65536]:
        raise DataError(f"{file}: not a text CSV file (it contains NUL bytes; save it as UTF-8 or GBK)")
    label = "UTF-8 with BOM" if data.startswith(codecs.BOM_UTF8) else "UTF-8"
    try:
        return data.decode("utf-8-sig"), label
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "GBK/GB18030"
    except UnicodeDecodeError as e:
        raise DataError(
            f"{file}: cannot decode as UTF-8 or GBK/GB18030 (bad byte at offset {e.start}); "
            "save it as UTF-8 CSV"
        ) from None


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray, str]:
    data = _read_bytes(path)
    if not data.strip():
        raise DataError(f"{path.name}: the file is empty")
    text, encoding = decode_text(data, path.name)
    del data
    first_line = text.split("\n", 1)[0]
    # Exports from some office tools are tab- or semicolon-separated; the header line tells.
    sep = max((",", "\t", ";"), key=first_line.count)
    try:
        # header=None: the header row is handled here, so empty and repeated headers are not
        # silently renamed ("Unnamed: 3", "a.1") and every record keeps its row number.
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            quoting=csv.QUOTE_MINIMAL,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{path.name}: cannot parse as CSV ({_first_line(e)})") from None
    header = frame.iloc[0].tolist()
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = _header_names(header)
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    return frame, rows, encoding


# An .xlsx is a zip: a few kilobytes can declare gigabytes of XML (a "zip bomb"). Real ledgers of
# 100,000 rows unzip to well under 100 MB.
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024


def _check_unzipped_size(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a zip at all: openpyxl names the problem below
    if total > MAX_UNZIPPED_BYTES:
        raise DataError(
            f"{path.name}: refused, the workbook would unpack to {total / 2**20:,.0f} MB "
            f"(more than {MAX_UNZIPPED_BYTES / 2**20:,.0f} MB); save it again from Excel or as CSV"
        )


def _read_xlsx(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    _check_unzipped_size(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise DataError(f"{path.name}: cannot read as an Excel workbook ({_first_line(e)})") from None
    try:
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        header = next(it, None)
        if header is None or all(v is None for v in header):
            raise DataError(f"{path.name}: the file is empty (no header in the first sheet)")
        width = len(header)
        # openpyxl hands out cells one by one anyway; rendering them as text here costs nothing more.
        records = [[_cell_text(v) for v in (r + (None,) * (width - len(r)))[:width]] for r in it]
    finally:
        wb.close()
    frame = pd.DataFrame(records, columns=range(width), dtype="str") if records else None
    if frame is None:
        frame = pd.DataFrame({i: pd.Series([], dtype="str") for i in range(width)})
    frame.columns = _header_names([_cell_text(v) for v in header])
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    return frame, rows


def _read_parquet(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{path.name}: cannot read as Parquet ({_first_line(e)})") from None
    frame = frame.reset_index(drop=True)
    frame.columns = _header_names([str(c) for c in frame.columns])
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame, rows


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path.name}: cannot read the file ({e.strerror})") from None


def _header_names(header: list[object]) -> list[str]:
    # An empty header cell becomes "" here; normalise decides what to do with it (ignore or error).
    return ["" if h is None or (isinstance(h, float) and np.isnan(h)) else str(h) for h in header]


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, time):
        return v.strftime("%H:%M:%S")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _drop_blank_rows(frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Rows with every cell empty are layout, not records: dropped here and counted in the report."""
    if frame.shape[1] == 0 or len(frame) == 0:
        return frame, rows, 0
    blank = np.ones(len(frame), dtype=bool)
    for c in range(frame.shape[1]):
        col = frame.iloc[:, c]
        if pd.api.types.is_string_dtype(col.dtype):
            blank &= (col.isna() | (col.str.strip() == "")).to_numpy(dtype=bool)
        else:
            blank &= col.isna().to_numpy()
        if not blank.any():
            return frame, rows, 0
    keep = ~blank
    return frame.loc[keep].reset_index(drop=True), rows[keep], int(blank.sum())


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
