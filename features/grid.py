"""The as-of grid (CONTRACT §2): which months are labelled, which month is scored, and the month
arithmetic every other module uses.

Months are handled as integers ``year * 12 + (month - 1)`` ("month numbers"); a panel stores its
months as offsets from its first month. Labels outside this module are always ``'YYYY-MM'`` strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pipeline.errors import ConfigError, DataError

if TYPE_CHECKING:
    from features.panel import Panel

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def month_number(label: str) -> int:
    """``'YYYY-MM'`` → ``year * 12 + month - 1``; a malformed label raises :class:`DataError`."""
    m = _MONTH_RE.match(str(label).strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise DataError(f"as-of month {label!r} is not of the form YYYY-MM")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


def month_label(number: int) -> str:
    """Month number → ``'YYYY-MM'``."""
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def datetimes_to_month_numbers(values: np.ndarray) -> np.ndarray:
    """datetime64 values (any unit) → int64 month numbers; NaT → ``np.iinfo(int64).min``."""
    months = np.asarray(values).astype("datetime64[M]").astype(np.int64)
    # numpy counts months from 1970-01; shift to year*12 + month-1.
    out = months + 1970 * 12
    out[np.isnat(np.asarray(values))] = np.iinfo(np.int64).min
    return out


def labelled_as_of(panel: Panel, horizon_months: int, cadence_months: int) -> list[str]:
    """The labelled as-of months, ascending: from the latest month whose whole outcome window lies
    in the data (``last - horizon``) back to the panel's first month, ``cadence_months`` apart.

    With yearly data dated December 31st, ``horizon_months=12`` and ``cadence_months=12`` they fall
    on Decembers. Returns an empty list when the data is shorter than one outcome window.
    """
    if horizon_months < 1 or cadence_months < 1:
        raise ConfigError(
            f"horizon_months ({horizon_months}) and cadence_months ({cadence_months}) must be ≥ 1"
        )
    last = panel.first_month + panel.n_months - 1
    start = last - horizon_months
    dates = range(start, panel.first_month - 1, -cadence_months)
    return [month_label(t) for t in reversed(dates)]


def scoring_as_of(panel: Panel) -> str:
    """The as-of month a fresh score uses: the panel's last month (its outcome is not yet known)."""
    return panel.last_month


def as_of_offsets(panel: Panel, as_of: Sequence[str]) -> np.ndarray:
    """``'YYYY-MM'`` labels → month offsets into ``panel`` (int64); outside the panel → DataError."""
    if len(as_of) == 0:
        raise DataError("no as-of month given")
    numbers = np.array([month_number(a) for a in as_of], dtype=np.int64)
    offsets = numbers - panel.first_month
    bad = (offsets < 0) | (offsets >= panel.n_months)
    if bad.any():
        first_bad = as_of[int(np.flatnonzero(bad)[0])]
        raise DataError(
            f"as-of month {first_bad} lies outside the data ({panel.first_label} … {panel.last_month})"
        )
    return offsets
