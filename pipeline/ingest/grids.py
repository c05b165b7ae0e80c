"""One input file → grids of cells. The only place that opens the user's files.

CSV (UTF-8 with or without BOM, or GBK/GB18030, detected; comma, tab or semicolon) and every sheet
of an xlsx workbook become *grids*: every row as written, every cell as text, no header taken
(finding it is :mod:`.ledger`'s job). Parquet keeps its column names and types, which the parsers
accept as they are. Errors are one-line :class:`DataError` messages naming the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.pipeline.ingest import ledger


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


def csv_grid(path: Path) -> tuple[pd.DataFrame, str]:
    """A CSV file → (grid of text cells, every line a row; encoding name)."""
    data = _read_bytes(path)
    if not data.strip():
        raise DataError(f"{path.name}: the file is empty")
    text, encoding = decode_text(data, path.name)
    # Exports from some office tools are tab- or semicolon-separated; the top lines tell (a title
    # line above the header may hold no separator at all).
    top = text[: 1 << 16].split("\n", ledger.HEADER_SCAN_ROWS + 1)[: ledger.HEADER_SCAN_ROWS + 1]
    sep = max((",", "\t", ";"), key=lambda s: max(line.count(s) for line in top))
    # A title line is shorter than the header: the width is the widest of the top lines.
    width = max((len(r) for r in csv.reader(top, delimiter=sep)), default=1)
    # UTF-8 goes to the C parser as bytes: handing it the decoded text makes pandas encode it back
    # chunk by chunk, a third of the read time of a large file (benchmarks/ingest_read.py).
    if encoding.startswith("UTF-8"):
        del text
        source: io.IOBase = io.BytesIO(
            data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
        )
    else:
        del data
        source = io.StringIO(text)
    try:
        # header=None: the header row is found later, so empty and repeated headers are not
        # silently renamed ("Unnamed: 3", "a.1") and every record keeps its row number.
        grid = pd.read_csv(
            source,
            encoding="utf-8",
            sep=sep,
            header=None,
            names=range(max(width, 1)),
            index_col=False,
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
    return grid, encoding


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


def xlsx_grids(path: Path) -> list[tuple[str, pd.DataFrame]]:
    """A workbook → (sheet title, grid of text cells) for each worksheet, in workbook order."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    _check_unzipped_size(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as e:
        raise DataError(f"{path.name}: cannot read as an Excel workbook ({_first_line(e)})") from None
    grids = []
    try:
        for ws in wb.worksheets:
            # openpyxl hands out cells one by one anyway; rendering them as text costs nothing more.
            records = [[_cell_text(v) for v in r] for r in ws.iter_rows(values_only=True)]
            # Rows Excel keeps only for their formatting (borders drawn down to row 500) are not
            # rows anyone wrote: trailing empty rows are dropped, not counted as skipped.
            while records and not any(records[-1]):
                records.pop()
            width = max((len(r) for r in records), default=0)
            records = [r + [""] * (width - len(r)) for r in records]
            grid = pd.DataFrame(records, columns=range(width), dtype="str")
            grids.append((ws.title, grid))
    finally:
        wb.close()
    if not any(len(g) for _, g in grids):
        raise DataError(f"{path.name}: the file is empty (no header in any sheet)")
    return grids


def read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DataError(f"{path.name}: cannot read as Parquet ({_first_line(e)})") from None
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows of a typed frame with every cell empty: layout, not records."""
    blank = np.ones(len(frame), dtype=bool)
    for c in range(frame.shape[1]):
        col = frame.iloc[:, c]
        if pd.api.types.is_string_dtype(col.dtype):
            blank &= (col.isna() | (col.str.strip() == "")).to_numpy(dtype=bool)
        else:
            blank &= col.isna().to_numpy()
        if not blank.any():
            break
    return blank if frame.shape[1] else np.zeros(len(frame), dtype=bool)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path.name}: cannot read the file ({e.strerror})") from None


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


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
