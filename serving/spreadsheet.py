"""Writing cells into openpyxl worksheets safely: every export (the 台账, the monthly bulletin) goes
through :func:`append_row`, so stored text can neither break the file nor run as a formula."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sanling.core.text import clean_text, formula_like


def cell_value(value: Any) -> Any:
    """A value openpyxl can write: strings lose their control characters (which XML cannot hold)."""
    return clean_text(value) if isinstance(value, str) else value


def append_row(ws, values: Iterable[Any]) -> None:
    """Append ``values`` as a row of ``ws``. Formula-like text is written as a text cell with Excel's
    hidden quote prefix: it shows as typed, without a visible apostrophe, and never evaluates — also
    not after a clerk edits the cell."""
    ws.append([cell_value(v) for v in values])
    for cell in ws[ws.max_row]:
        if formula_like(cell.value):
            cell.data_type = "s"  # openpyxl typed a leading "=" as a formula
            cell.quotePrefix = True
