"""The as-of grid (docs/data-contract.md): which months are labelled and which month is scored.

A panel stores its months as offsets from its first month; month arithmetic itself lives in
:mod:`sanling.core.months`. The functions take anything with ``first_month`` and ``n_months`` (a
:class:`~sanling.features.panel.Panel`), so this module needs no import of the panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from sanling.core.errors import ConfigError, DataError
from sanling.core.months import month_label, month_number


class MonthSpan(Protocol):
    """The months a panel covers: month number of offset 0, and how many."""

    first_month: int
    n_months: int


def labelled_as_of(panel: MonthSpan, horizon_months: int, cadence_months: int) -> list[str]:
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


def scoring_as_of(panel: MonthSpan) -> str:
    """The as-of month a fresh score uses: the panel's last month (its outcome is not yet known)."""
    return month_label(panel.first_month + panel.n_months - 1)


def as_of_offsets(panel: MonthSpan, as_of: Sequence[str]) -> np.ndarray:
    """``'YYYY-MM'`` labels → month offsets into ``panel`` (int64); outside the panel → DataError."""
    if len(as_of) == 0:
        raise DataError("no as-of month given")
    numbers = np.array([month_number(a) for a in as_of], dtype=np.int64)
    offsets = numbers - panel.first_month
    bad = (offsets < 0) | (offsets >= panel.n_months)
    if bad.any():
        first_bad = as_of[int(np.flatnonzero(bad)[0])]
        raise DataError(
            f"as-of month {first_bad} lies outside the data "
            f"({month_label(panel.first_month)} … {month_label(panel.first_month + panel.n_months - 1)})"
        )
    return offsets
