"""Where the table sits in a sheet as townships keep it: the header among the first rows (title and
填报单位/填报日期 rows above it, a two-row header with merged group cells), and the rows below it that
are not records (合计/小计/总计 rows, 说明/备注/填表说明 lines, empty rows).

Pure functions over a *grid*: a DataFrame of text cells with positional columns, every row of the
sheet or CSV file as read without taking a header (grid row ``i`` is spreadsheet row ``i + 1``).
:mod:`sanling.pipeline.ingest.readers` builds the grids and calls these; the rules are in
``docs/data-contract.md`` ("Ledgers as townships keep them").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# The header is looked for among this many rows at the top of a sheet: titles, 填报单位 and
# 填报日期 lines take a handful at most.
HEADER_SCAN_ROWS = 20

# Why a row below the header is not a record (the keys are what the summary and report.json show).
EMPTY, TOTAL, NOTE, HEADER = "空行 empty", "合计行 total", "说明行 note", "重复表头 repeated header"
SKIP_REASONS: tuple[str, ...] = ("", EMPTY, TOTAL, NOTE, HEADER)

# 合计 / 小计 / 总计 (also 本月合计, 累计合计, 合 计 …) in the first filled cell of a row.
_TOTAL = r"^\s*(本[年季月页周日]|全[年月]|累计|以上)?\s*(合\s*计|小\s*计|总\s*计|共\s*计)"
# 说明 / 备注 / 填表说明 / 注： lines, and the signature lines printed under a ledger.
_NOTE = (
    r"^\s*(填\s*表\s*说\s*明|说\s*明|备\s*注|附\s*注|注\s*[:：\d１２３①②③.、]|注意|"
    r"填\s*表\s*人|填\s*报\s*人|制\s*表|审\s*核|负\s*责\s*人|联系电话|联系人|填报单位|填报日期|统计日期)"
)
# A running number column is layout: a row holding only its 序号 is an empty row of a template.
_RUNNING_NUMBER = frozenset({"序号", "序 号", "no", "no.", "编序"})
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Header:
    """The header found in a grid: ``names`` (one per grid column, as written; two-row headers
    combined), its spreadsheet rows ``first_row``–``last_row`` (equal for a one-row header; the
    data start below ``last_row``) and the canonical columns it names (``matched``)."""

    names: list[str]
    first_row: int
    last_row: int
    matched: frozenset[str]


def header_names(columns: Iterable[str], aliases: Mapping[str, str]) -> dict[str, str]:
    """Written header → canonical column, for the columns of one table: each canonical name (any
    case) and each alias in ``aliases`` (Chinese name → canonical) that names one of ``columns``."""
    cols = tuple(columns)
    names = {c.lower(): c for c in cols}
    names |= {_squeeze(zh): c for zh, c in aliases.items() if c in cols}
    return names


def canonical_of(written: str, names: Mapping[str, str]) -> str | None:
    """The canonical column a written header names, or ``None``. Spaces and line breaks inside a
    header (wrapped cells: ``发生\\n时间``) and a leading or trailing ``*`` (required-field marks) do
    not count."""
    return names.get(_squeeze(written).lower())


def _squeeze(text: str) -> str:
    return _SPACE.sub("", str(text).replace("\ufeff", "")).strip("*＊")


def find_header(grid: pd.DataFrame, names: Mapping[str, str]) -> Header:
    """The header of a grid: among its first :data:`HEADER_SCAN_ROWS` rows, the row naming the most
    known columns (``names`` from :func:`header_names`), or the pair of rows whose combination names
    more (a group row of merged cells above the column names); the earliest wins a tie, one row
    wins against a pair. A grid naming no known column has its header in row 1, as written."""
    top = grid.iloc[:HEADER_SCAN_ROWS]
    rows = [[str(v) for v in r] for r in top.itertuples(index=False, name=None)]
    best: tuple[int, int, int] = (0, 0, 0)  # (columns named, -row, one row = 1 / two rows = 0)
    choice: tuple[list[str], int, int, frozenset[str]] | None = None
    for i, row in enumerate(rows):
        single = _matched(row, names)
        if (len(single), -i, 1) > best:
            best, choice = (len(single), -i, 1), (row, i, i, single)
        if i == 0:
            continue
        combined = _combine(rows[i - 1], row, names)
        both = _matched(combined, names)
        if (len(both), -i, 0) > best:
            best, choice = (len(both), -i, 0), (combined, i - 1, i, both)
    if choice is None:
        first = rows[0] if rows else []
        return Header([v.strip() for v in first], 1, 1, frozenset())
    written, lo, hi, matched = choice
    return Header(_clean_names(written, names), lo + 1, hi + 1, matched)


def _matched(row: list[str], names: Mapping[str, str]) -> frozenset[str]:
    return frozenset(c for v in row if v and (c := canonical_of(v, names)) is not None)


def _combine(upper: list[str], lower: list[str], names: Mapping[str, str]) -> list[str]:
    """Column names of a two-row header: the lower cell names the column; where it is empty the
    upper cell does (merged down over both rows); where only both together are a known name
    (化解 over 时间), the two together."""
    out = []
    for u, lo in zip(upper, lower, strict=True):
        u, lo = u.strip(), lo.strip()
        if not lo:
            out.append(u)
        elif canonical_of(lo, names) is None and u and canonical_of(u + lo, names) is not None:
            out.append(u + lo)
        else:
            out.append(lo)
    return out


def _clean_names(written: list[str], names: Mapping[str, str]) -> list[str]:
    # A known name is written in its squeezed form (no inner line break), so that later stages
    # recognise it; any other header is kept as written, trimmed.
    return [_squeeze(v) if canonical_of(v, names) is not None else v.strip() for v in written]


def skipped_rows(body: pd.DataFrame, header: list[str]) -> np.ndarray:
    """Which rows of ``body`` (the grid below the header, text cells) are not records: an ``int8``
    array of indices into :data:`SKIP_REASONS` (0 for a record, else :data:`EMPTY`, :data:`TOTAL`,
    :data:`NOTE` or :data:`HEADER` — the header again, as exports printed page by page repeat it;
    a repeated group row counts when most of its filled cells repeat the header).

    Only the first filled cell of a row is examined, column by column on the rows still without
    one, in Arrow: a province-sized file costs about one pass over its first column.
    """
    n = len(body)
    code = np.zeros(n, dtype=np.int8)
    if n == 0 or body.shape[1] == 0:
        return code
    running = [is_running_number(h) for h in header]
    heads = [_squeeze(h) for h in header]
    seen = np.zeros(n, dtype=bool)  # the first filled cell (any column) was looked at
    maybe_header: list[np.ndarray] = []  # rows whose first filled cell is its column's header
    todo = np.arange(n)  # rows without a filled cell outside the 序号 column so far
    for c in range(body.shape[1]):
        if len(todo) == 0:
            break
        col = body.iloc[:, c] if len(todo) == n else body.iloc[todo, c]
        cells = pc.utf8_trim_whitespace(pa.array(col, type=pa.large_string(), from_pandas=True).fill_null(""))
        filled = pc.greater(pc.binary_length(cells), 0).to_numpy(zero_copy_only=False)
        fresh = filled & ~seen[todo]
        if fresh.any():
            words = cells.filter(pa.array(fresh))
            at = todo[fresh]
            seen[at] = True
            code[at[pc.match_substring_regex(words, _NOTE).to_numpy(zero_copy_only=False)]] = 3
            code[at[pc.match_substring_regex(words, _TOTAL).to_numpy(zero_copy_only=False)]] = 2
            if heads[c]:
                maybe_header.append(at[pc.equal(words, heads[c]).to_numpy(zero_copy_only=False)])
        if not running[c]:
            todo = todo[~filled]
    # Rows with nothing outside 序号 are empty, unless their one cell says 合计 or 说明.
    code[todo[code[todo] == 0]] = 1
    for i in np.concatenate(maybe_header) if maybe_header else ():
        cells = [_squeeze(v) for v in body.iloc[i].tolist()]
        filled = [(v, h) for v, h in zip(cells, heads, strict=True) if v]
        if 2 * sum(v == h for v, h in filled) > len(filled):
            code[i] = 4
    return code


def row_ranges(rows: Iterable[int], limit: int = 20) -> str:
    """Row numbers as short ranges: ``[3, 4, 5, 9]`` → ``"3–5, 9"``; beyond ``limit`` ranges the
    rest is counted (``"…, 180 (+42 more rows)"``), so a report stays readable."""
    rows = np.unique(np.fromiter(rows, dtype=np.int64))
    if len(rows) == 0:
        return ""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, ends = rows[np.r_[0, breaks]], rows[np.r_[breaks - 1, len(rows) - 1]]
    out = [f"{a}" if a == b else f"{a}–{b}" for a, b in zip(starts[:limit], ends[:limit], strict=True)]
    if len(starts) > limit:
        rest = int(np.sum(ends[limit:] - starts[limit:] + 1))
        out[-1] += f" (+{rest:,} more rows)"
    return ", ".join(out)


def is_running_number(header: str) -> bool:
    """Whether a header names a running-number column (序号), which is layout, not data."""
    return _squeeze(header).lower() in _RUNNING_NUMBER
