"""Vectorised value parsers: one input column (strings as read from CSV/xlsx, or typed values from
Parquet) → typed values plus masks of what was empty and what could not be parsed.

Every parser works on whole columns — explicit formats tried in order on the not-yet-parsed rows,
lookups on the distinct values — so a province-scale events file never meets a per-row Python loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanling.core.text import ONE_LINE_CONTROLS

# Cells that mean "no value" in the spreadsheets this ingests (exports write them for empty cells).
NA_TOKENS: frozenset[str] = frozenset(
    {
        "",
        "nan",
        "NaN",
        "NAN",
        "NaT",
        "None",
        "none",
        "NULL",
        "null",
        "NA",
        "N/A",
        "n/a",
        "#N/A",
        "-",
        "--",
        "—",
        "/",
    }
)
_NA_TOKEN_LEN = max(len(t) for t in NA_TOKENS)

# A month without a day (ledgers kept by month: 2021.03, 2021年3月) means the month and is read as its
# first day at midnight. Features and labels count by calendar month (docs/features.md), so any day
# of the month would give the same figures; the first never moves a record into the next month.
MONTH_FORMATS: tuple[str, ...] = ("%Y.%m", "%Y年%m月", "%Y-%m", "%Y/%m")
# Tried in this order on the values still unparsed; the first that matches a value wins.
DATE_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y.%m.%d",
    "%Y.%m.%d %H:%M:%S",
    "%Y.%m.%d %H:%M",
    "%Y年%m月%d日",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H时%M分",
    "%Y%m%d",
    *MONTH_FORMATS,
)


def _shape(fmt: str) -> str:
    if fmt == "%Y%m%d":  # only eight digits: shorter digit strings are Excel serials
        return r"\d{8}"
    parts = {"%Y": r"\d{4}", "%m": r"\d{1,2}", "%d": r"\d{1,2}", "%H": r"\d{1,2}", "%M": r"\d{1,2}"}
    parts |= {"%S": r"\d{1,2}", "%f": r"\d{1,9}"}
    out, i = "", 0
    while i < len(fmt):
        token = fmt[i : i + 2]
        if token in parts:
            out, i = out + parts[token], i + 2
        else:
            out, i = out + re.escape(fmt[i]), i + 1
    return out


_FORMAT_SHAPES: dict[str, str] = {fmt: _shape(fmt) for fmt in DATE_FORMATS}
# Dates outside this range are typing errors (0021-03-05, 20210-3-5), not history.
DATE_MIN = pd.Timestamp("1900-01-01")
DATE_MAX = pd.Timestamp("2100-12-31 23:59:59")
# Excel stores dates as days since 1899-12-30 (the 1900 leap-year bug folded in).
EXCEL_EPOCH = pd.Timestamp("1899-12-30")

TRUE_WORDS: frozenset[str] = frozenset({"是", "有", "true", "t", "yes", "y", "1", "1.0", "√"})
FALSE_WORDS: frozenset[str] = frozenset({"否", "无", "false", "f", "no", "n", "0", "0.0", "×"})

SEVERITY_WORDS: dict[str, int] = {
    "一般": 1, "较大": 2, "重大": 3, "特别重大": 4,
    # The national incident grades run the other way round: Ⅰ级 is 特别重大.
    "Ⅳ级": 1, "Ⅲ级": 2, "Ⅱ级": 3, "Ⅰ级": 4, "IV级": 1, "III级": 2, "II级": 3, "I级": 4,
}  # fmt: skip


@dataclass(frozen=True)
class Parsed:
    """A parsed column: ``values`` (the target dtype, NA where missing or invalid), ``missing`` (the
    input cell was empty) and ``invalid`` (non-empty but not acceptable), both boolean arrays; for
    dates, ``month_only`` marks values given as a month without a day (:data:`MONTH_FORMATS`)."""

    values: pd.Series
    missing: np.ndarray
    invalid: np.ndarray
    month_only: np.ndarray | None = None


def clean_text(s: pd.Series) -> pd.Series:
    """Any column → a pandas ``str`` column, whitespace stripped, empty cells and NA tokens as NA.

    Typed columns (from Parquet or xlsx) are rendered the way a user would type them: integral
    floats without ``.0`` (codes stored as numbers), datetimes as ``YYYY-MM-DD HH:MM:SS``.
    """
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s.dt.strftime("%Y-%m-%d %H:%M:%S")
    elif pd.api.types.is_bool_dtype(s.dtype):
        out = s.map({True: "true", False: "false"}).astype("str")
    elif pd.api.types.is_numeric_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        integral = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 2**53)
        # Codes stored as numbers (140105001001.0) read back without the ".0".
        all_integral = bool(integral[num.notna()].all())
        out = num.astype("Int64").astype("str") if all_integral else num.astype("str")
    elif pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        # Any string flavour (e.g. "string" with pd.NA, as some Parquet writers produce) → "str".
        out = s if s.dtype == "str" else s.astype("str")
    else:
        out = s.map(_object_text, na_action="ignore").astype("str")
    # Control characters (Word's \x0b line break …) become a space: XML exports cannot hold them.
    out = out.str.replace(ONE_LINE_CONTROLS, " ", regex=True).str.strip()
    # Only short cells can be NA tokens; testing those alone spares a lookup over millions of ids.
    short = (out.str.len() <= _NA_TOKEN_LEN).to_numpy(dtype=bool, na_value=True)
    na = out.isna().to_numpy().copy()
    if short.any():
        na[short] |= text_isin(out[short], NA_TOKENS)
    return out.mask(na)


def _object_text(v: object) -> str:
    # Mixed-type object columns (rare: hand-built Parquet); the same rendering as clean_text.
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def parse_dates(s: pd.Series) -> Parsed:
    """Dates or datetimes → ``datetime64[ns]`` (naive, local time).

    Accepts datetime columns (tz-aware ones are converted to Asia/Shanghai), Excel serial numbers
    (numbers, or digit strings like ``44260``) and strings in :data:`DATE_FORMATS`. A date without
    a time is midnight; a month without a day (``2021.03``, ``2021年3月``) is the month's first day,
    marked in ``month_only``. Values outside 1900–2100 are invalid.
    """
    n = len(s)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        values = s.dt.tz_convert("Asia/Shanghai").dt.tz_localize(None)
        missing = values.isna().to_numpy()
        return _date_range_checked(values, missing, np.zeros(n, dtype=bool))
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _date_range_checked(s, s.isna().to_numpy(), np.zeros(n, dtype=bool))
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        missing = num.isna().to_numpy()
        return _date_range_checked(_from_excel_serial(num), missing, np.zeros(n, dtype=bool))

    text = clean_text(s)
    missing = text.isna().to_numpy()
    out = np.full(n, np.datetime64("NaT", "ns"))
    month_only = np.zeros(n, dtype=bool)
    todo = ~missing
    for fmt in DATE_FORMATS:
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        sub = text.iloc[idx]
        # A failed strptime costs ~6x a successful one; a regex on the shape picks the candidates.
        keep = sub.str.fullmatch(_FORMAT_SHAPES[fmt]).fillna(False).to_numpy(dtype=bool)
        if not keep.any():
            continue
        idx, sub = idx[keep], sub[keep]
        got = pd.to_datetime(sub, format=fmt, errors="coerce")
        ok = got.notna().to_numpy()
        out[idx[ok]] = got[ok].to_numpy().astype("datetime64[ns]")
        todo[idx[ok]] = False
        month_only[idx[ok]] = fmt in MONTH_FORMATS
    if todo.any():
        idx = np.flatnonzero(todo)
        sub = text.iloc[idx]
        # 2021.13 is a mistyped month, not the Excel serial of a day in 1905.
        serial = sub.str.fullmatch(r"\d{1,7}(\.\d+)?").fillna(False).to_numpy(
            dtype=bool
        ) & ~sub.str.fullmatch(r"(19|20|21)\d\d\.\d{1,2}").fillna(False).to_numpy(dtype=bool)
        idx = idx[serial]
        got = _from_excel_serial(pd.to_numeric(sub[serial], errors="coerce").astype("float64"))
        ok = got.notna().to_numpy()
        out[idx[ok]] = got[ok].to_numpy()
        todo[idx[ok]] = False
    values = pd.Series(out, index=s.index, dtype="datetime64[ns]")
    parsed = _date_range_checked(values, missing, todo)
    return Parsed(parsed.values, parsed.missing, parsed.invalid, month_only & ~parsed.invalid)


def _from_excel_serial(num: pd.Series) -> pd.Series:
    # Serials beyond 2100 would overflow the timedelta; they are invalid anyway (range check).
    plausible = num.where((num >= 1) & (num < 73416))
    days = pd.Series(pd.to_timedelta(plausible * 86400, unit="s"), index=num.index).dt.round("s")
    return (EXCEL_EPOCH + days).astype("datetime64[ns]")


def _date_range_checked(values: pd.Series, missing: np.ndarray, invalid: np.ndarray) -> Parsed:
    values = values.astype("datetime64[ns]")
    present = values.notna().to_numpy()
    out_of_range = present & ~((values >= DATE_MIN) & (values <= DATE_MAX)).to_numpy()
    invalid = (invalid | out_of_range | (~present & ~missing)) & ~missing
    return Parsed(values.mask(invalid), missing, invalid)


def parse_bools(s: pd.Series) -> Parsed:
    """是/否, 有/无, true/false (any case), yes/no, Y/N, 1/0 → ``boolean`` (NA where missing/invalid)."""
    if pd.api.types.is_bool_dtype(s.dtype):
        values = s.astype("boolean")
        missing = values.isna().to_numpy()
        return Parsed(values, missing, np.zeros(len(s), dtype=bool))
    text = clean_text(s).str.lower()
    missing = text.isna().to_numpy()
    lookup = {w: True for w in TRUE_WORDS} | {w: False for w in FALSE_WORDS}
    values = _lookup(text, lookup).astype("boolean")
    invalid = values.isna().to_numpy() & ~missing
    return Parsed(values, missing, invalid)


def parse_ints(
    s: pd.Series, *, lo: int | None = None, hi: int | None = None, words: Mapping[str, int] | None = None
) -> Parsed:
    """Whole numbers (``3``, ``3.0``, ``+3``; optionally words like 一般 → 1) → ``Int64``.

    A value that is not a whole number, or lies outside ``[lo, hi]``, is invalid.
    """
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce").astype("float64")
        missing = num.isna().to_numpy()
    else:
        text = clean_text(s)
        missing = text.isna().to_numpy()
        num = _lookup(text, _number_lookup(text, words)).astype("float64")
    num = num.to_numpy()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 2**31)
        if lo is not None:
            ok &= num >= lo
        if hi is not None:
            ok &= num <= hi
    invalid = ~ok & ~missing
    values = pd.Series(np.where(ok, num, np.nan), index=s.index).astype("Int64")
    return Parsed(values, missing, invalid)


def parse_floats(s: pd.Series, *, lo: float | None = None, hi: float | None = None) -> Parsed:
    """Numbers → ``float64`` (NaN where missing/invalid); outside ``[lo, hi]`` is invalid."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        num = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        missing = np.isnan(num)
    else:
        text = clean_text(s)
        missing = text.isna().to_numpy()
        num = _lookup(text, _number_lookup(text, None)).astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(num)
        if lo is not None:
            ok &= num >= lo
        if hi is not None:
            ok &= num <= hi
    invalid = ~ok & ~missing
    return Parsed(pd.Series(np.where(ok, num, np.nan), index=s.index), missing, invalid)


def _number_lookup(text: pd.Series, words: Mapping[str, int] | None) -> dict[str, float]:
    # Parse each distinct value once: status columns hold a handful of values over millions of rows.
    uniques = pd.Series(text.dropna().unique(), dtype="str")
    nums = pd.to_numeric(uniques, errors="coerce")
    lookup = dict(zip(uniques.tolist(), nums.astype("float64").tolist(), strict=True))
    for word, n in (words or {}).items():
        lookup[word] = float(n)
    return lookup


def text_isin(text: pd.Series, values: Iterable[str]) -> np.ndarray:
    """Boolean array: which cells of a text column are among ``values`` (NA → False).

    Arrow's hash lookup; pandas' ``isin`` on Arrow strings builds a Python scalar per value first.
    ``values`` may be far longer than the column (a million-unit registry against one city's
    events): then the column's distinct values are hashed and ``values`` probed against them, and
    a text Series or Index of values goes to Arrow as it is, not one Python string at a time.
    """
    arr = pa.array(text.astype("str"), from_pandas=True).cast(pa.large_string())
    value_set = _arrow_text(values)
    if len(value_set) > len(arr):
        value_set = value_set.filter(pc.is_in(value_set, value_set=pc.unique(arr)))
    return (
        pc.is_in(arr, value_set=value_set).to_numpy(zero_copy_only=False).astype(bool)
        & text.notna().to_numpy()
    )


def _arrow_text(values: Iterable[str]) -> pa.Array:
    if isinstance(values, pd.Series | pd.Index) and isinstance(values.dtype, pd.StringDtype):
        return pa.array(values, from_pandas=True).cast(pa.large_string())
    return pa.array([str(v) for v in values], type=pa.large_string())


def map_words(text: pd.Series, table: Mapping[str, str]) -> pd.Series:
    """A text column → canonical words via ``table`` (keys matched case-insensitively) as ``str``;
    NA where the value is missing or not in the table."""
    lowered = {k.lower(): v for k, v in table.items()}
    words = pd.Index(sorted(set(lowered.values())), dtype="str")
    codes, uniques = pd.factorize(text)
    # Look up the distinct values only: a category column has a handful over millions of rows.
    mapped = pd.Series(uniques, dtype="str").str.lower().map(lowered)
    word_codes = np.append(words.get_indexer(mapped.to_numpy(dtype=object, na_value=None)), -1)
    out = pd.Categorical.from_codes(word_codes[codes], categories=words)
    return pd.Series(out, index=text.index).astype("str")


def _lookup(text: pd.Series, table: Mapping[str, object]) -> pd.Series:
    """Map a text column through a dict by its distinct values (NA where absent)."""
    codes, uniques = pd.factorize(text)
    mapped = pd.Series(uniques).map(table).to_numpy(dtype=object)
    mapped = np.append(mapped, None)  # code -1 (missing) picks the trailing None
    return pd.Series(mapped[codes], index=text.index)
