"""Property tests of the value parsers: whatever a user may type in an accepted form parses back."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sanling.pipeline.ingest.parsers import (
    DATE_FORMATS,
    SEVERITY_WORDS,
    clean_text,
    parse_bools,
    parse_dates,
    parse_floats,
    parse_ints,
    text_isin,
)

DATETIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59))

# What each format can carry: the date, plus minutes, seconds or microseconds of the time.
_RESOLUTION = {"%M": "min", "%S": "s", "%f": "us"}


def _truncate(ts: pd.Timestamp, fmt: str) -> pd.Timestamp:
    if "%d" not in fmt:  # a month without a day: its first day
        return ts.normalize().replace(day=1)
    for token in ("%f", "%S", "%M"):
        if token in fmt:
            return ts.floor(_RESOLUTION[token])
    return ts.normalize()


def _unpadded(d: datetime) -> str:
    return f"{d.year}/{d.month}/{d.day}"


@settings(max_examples=60, deadline=None)
@given(st.lists(DATETIMES, min_size=1, max_size=20), st.sampled_from(DATE_FORMATS))
def test_any_date_in_an_accepted_format_parses_back_to_itself(values, fmt):
    text = pd.Series([d.strftime(fmt) for d in values], dtype="str")
    parsed = parse_dates(text)
    expected = [_truncate(pd.Timestamp(d), fmt) for d in values]
    assert not parsed.invalid.any() and not parsed.missing.any()
    assert parsed.values.tolist() == expected
    assert parsed.values.dtype == "datetime64[ns]"


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.dates(min_value=datetime(1900, 3, 1).date(), max_value=datetime(2100, 12, 31).date()), min_size=1
    )
)
def test_unpadded_and_excel_serial_dates_parse(values):
    unpadded = parse_dates(pd.Series([f"{d.year}/{d.month}/{d.day}" for d in values], dtype="str"))
    chinese = parse_dates(pd.Series([f"{d.year}年{d.month}月{d.day}日" for d in values], dtype="str"))
    serial_days = [(d - datetime(1899, 12, 30).date()).days for d in values]
    serial_text = parse_dates(pd.Series([str(s) for s in serial_days], dtype="str"))
    serial_num = parse_dates(pd.Series(serial_days, dtype="int64"))
    expected = [pd.Timestamp(d) for d in values]
    for parsed in (unpadded, chinese, serial_text, serial_num):
        assert parsed.values.tolist() == expected
        assert not parsed.invalid.any()


@settings(max_examples=40, deadline=None)
# From 1992 on: Shanghai's offset is a constant +8 h (historical offsets and DST differ before).
@given(
    st.lists(
        st.datetimes(min_value=datetime(1992, 1, 1), max_value=datetime(2100, 1, 1)), min_size=1, max_size=10
    )
)
def test_datetime_columns_pass_through_and_tz_aware_becomes_local(values):
    naive = pd.Series(pd.to_datetime(values)).astype("datetime64[us]")
    assert parse_dates(naive).values.tolist() == naive.tolist()
    utc = naive.dt.tz_localize("UTC")
    local = parse_dates(utc).values
    assert (local - naive == timedelta(hours=8)).all()  # Asia/Shanghai has no DST since 1991


def test_invalid_and_missing_dates_are_told_apart():
    s = pd.Series(
        ["2021-02-30", "0021-03-05", "soon", "", "  ", None, "NULL", "2021-13-01", "1e9"], dtype="str"
    )
    parsed = parse_dates(s)
    assert parsed.invalid.tolist() == [True, True, True, False, False, False, False, True, True]
    assert parsed.missing.tolist() == [False, False, False, True, True, True, True, False, False]
    assert parsed.values.isna().all()


BOOL_TEXT = {
    True: ["是", "有", "true", "TRUE", "True", "Y", "y", "yes", "1"],
    False: ["否", "无", "false", "FALSE", "N", "n", "no", "0"],
}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 8), st.sampled_from(["", " ", "\u3000"])), min_size=1)
)
def test_bools_in_every_spelling_parse(items):
    text = [BOOL_TEXT[b][i % len(BOOL_TEXT[b])] + pad for b, i, pad in items]
    parsed = parse_bools(pd.Series(text, dtype="str"))
    assert parsed.values.tolist() == [b for b, _, _ in items]
    assert not parsed.invalid.any()


def test_bools_reject_other_words_and_accept_typed():
    parsed = parse_bools(pd.Series(["maybe", "2", "", "是"], dtype="str"))
    assert parsed.invalid.tolist() == [True, True, False, False]
    assert parsed.missing.tolist() == [False, False, True, False]
    typed = parse_bools(pd.Series([True, False]))
    assert typed.values.tolist() == [True, False]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-(2**31) + 1, 2**31 - 1), min_size=1), st.integers(-5, 5), st.integers(0, 10))
def test_ints_round_trip_and_range(values, lo, span):
    hi = lo + span
    for text in ([str(v) for v in values], [f"{v}.0" for v in values], [f" {v} " for v in values]):
        parsed = parse_ints(pd.Series(text, dtype="str"), lo=lo, hi=hi)
        inside = [lo <= v <= hi for v in values]
        assert parsed.invalid.tolist() == [not ok for ok in inside]
        assert parsed.values.tolist() == [v if ok else pd.NA for v, ok in zip(values, inside, strict=True)]
    typed = parse_ints(pd.Series(values, dtype="int64"), lo=lo, hi=hi)
    assert typed.invalid.tolist() == [not (lo <= v <= hi) for v in values]


def test_ints_reject_fractions_and_words_unless_given():
    s = pd.Series(["2.5", "abc", "特别重大", "一般", "Ⅰ级", ""], dtype="str")
    plain = parse_ints(s)
    assert plain.invalid.tolist() == [True, True, True, True, True, False]
    sev = parse_ints(s, lo=1, hi=4, words=SEVERITY_WORDS)
    assert sev.values.tolist()[2:5] == [4, 1, 4]
    assert sev.invalid.tolist() == [True, True, False, False, False, False]


def test_floats_with_bounds():
    parsed = parse_floats(pd.Series(["37.5", "-91", "x", "", "1e1"], dtype="str"), lo=-90, hi=90)
    assert parsed.invalid.tolist() == [False, True, True, False, False]
    np.testing.assert_array_equal(parsed.values.to_numpy(), [37.5, np.nan, np.nan, np.nan, 10.0])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series([140105001001.0, np.nan]), ["140105001001", None]),
        (pd.Series([7, 8], dtype="int64"), ["7", "8"]),
        (pd.Series([" a\u3000", "NULL", "-", "b"], dtype="str"), ["a", None, None, "b"]),
    ],
)
def test_clean_text_renders_codes_and_blanks(values, expected):
    out = clean_text(values)
    assert [None if pd.isna(v) else v for v in out.tolist()] == expected


_IDS = st.one_of(st.none(), st.sampled_from(["U1", "U2", "U3", "单位4", "u1", ""]))


@settings(max_examples=200, deadline=None)
@given(
    column=st.lists(_IDS, max_size=12),
    values=st.lists(_IDS, max_size=30),
    kind=st.sampled_from(["list", "series", "index"]),
)
def test_text_isin_is_set_membership(column, values, kind):
    """Whichever side is hashed (values longer or shorter than the column) and whatever holds the
    values: a cell is in iff it is a string among the values; NA never is."""
    text = pd.Series(column, dtype="str")
    given_values = {
        "list": [v for v in values if v is not None],
        "series": pd.Series(values, dtype="str"),
        "index": pd.Index(values, dtype="str"),
    }[kind]
    wanted = {v for v in values if v is not None}
    expected = np.array([v is not None and v in wanted for v in column], dtype=bool)
    np.testing.assert_array_equal(text_isin(text, given_values), expected)
