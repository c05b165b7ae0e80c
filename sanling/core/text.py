"""Text hygiene shared by ingestion, the pages' forms and every export: control characters out,
formula-like cells made inert. Pure functions over ``str``.

Why: Word pastes ``\\x0b`` (a manual line break) and ``\\x0c`` into text fields, and XML — hence
``.xlsx`` — cannot hold most C0 control characters at all, so one of them in a unit name would
break every export that contains it. Cells that start like a formula (``=``, ``+``, ``-``, ``@``)
are evaluated by Excel and LibreOffice when the file is opened (CSV/formula injection).
"""

from __future__ import annotations

import re

# Line-like separators become a newline; every other C0/C1 control (tab and newline excepted) goes.
_NEWLINES = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_BLANKS = re.compile(r"[\t\n]+")
# Every control character and line separator, as a pattern for vectorised cleaning of one-line text.
ONE_LINE_CONTROLS = "[\x00-\x1f\x7f-\x9f\u2028\u2029]"
FORMULA_START: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "\n")


def clean_text(value: str, *, multiline: bool = True) -> str:
    """``value`` without control characters: line separators (``\\r\\n``, ``\\r``, ``\\x0b``, ``\\x0c``,
    U+2028 …) become ``\\n``, other controls are removed; with ``multiline=False`` tabs and newlines
    become one space (names, ids). Returns the cleaned string (not stripped)."""
    value = _CONTROLS.sub("", _NEWLINES.sub("\n", value))
    return value if multiline else _BLANKS.sub(" ", value)


def formula_like(value: object) -> bool:
    """Whether a spreadsheet program would read the text ``value`` as a formula or DDE command."""
    return isinstance(value, str) and value.startswith(FORMULA_START)


def csv_safe(value: object) -> object:
    """A CSV field that cannot run as a formula: a formula-like string gets a leading ``'`` (CSV has
    no cell types, so the apostrophe is the one marker every spreadsheet program honours); anything
    else is returned unchanged."""
    return "'" + value if formula_like(value) else value
