"""Month arithmetic, written once. Months are handled as integers ``year * 12 + (month - 1)``
("month numbers"); outside arrays they are ``'YYYY-MM'`` labels. An as-of label means "everything up
to the end of that month is known" (docs/data-contract.md)."""

from __future__ import annotations

import re

import numpy as np

from sanling.core.errors import DataError

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
# The month number that stands for "no date" (NaT) in int64 arrays.
NO_MONTH = np.iinfo(np.int64).min


def month_number(label: str) -> int:
    """``'YYYY-MM'`` → ``year * 12 + month - 1``; a malformed label raises :class:`DataError`."""
    m = _MONTH_RE.match(str(label).strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise DataError(f"as-of month {label!r} is not of the form YYYY-MM")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def month_label(number: int) -> str:
    """Month number → ``'YYYY-MM'``."""
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def add_months(label: str, k: int) -> str:
    """``'YYYY-MM'`` shifted by ``k`` months (negative: back)."""
    return month_label(month_number(label) + k)


def months_back(label: str, n: int) -> list[str]:
    """The ``n`` months ending at ``label``, oldest first."""
    end = month_number(label)
    return [month_label(i) for i in range(end - n + 1, end + 1)]


def datetimes_to_month_numbers(values: np.ndarray) -> np.ndarray:
    """datetime64 values (any unit) → int64 month numbers; NaT → :data:`NO_MONTH`."""
    months = np.asarray(values).astype("datetime64[M]").astype(np.int64)
    # numpy counts months from 1970-01; shift to year*12 + month-1.
    out = months + 1970 * 12
    out[np.isnat(np.asarray(values))] = NO_MONTH
    return out
