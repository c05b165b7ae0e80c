"""Calendar context of a forecast window: month of year and Spring-Festival (春节) proximity.

Wage and debt disputes peak before the Spring Festival, which moves between January 21st and
February 20th; a month-of-year feature alone cannot see that, so the lunar new-year dates are
tabulated here.
"""

from __future__ import annotations

import numpy as np

# Chinese New Year (正月初一), 2010–2035.
SPRING_FESTIVAL: dict[int, str] = {
    2010: "2010-02-14",
    2011: "2011-02-03",
    2012: "2012-01-23",
    2013: "2013-02-10",
    2014: "2014-01-31",
    2015: "2015-02-19",
    2016: "2016-02-08",
    2017: "2017-01-28",
    2018: "2018-02-16",
    2019: "2019-02-05",
    2020: "2020-01-25",
    2021: "2021-02-12",
    2022: "2022-02-01",
    2023: "2023-01-22",
    2024: "2024-02-10",
    2025: "2025-01-29",
    2026: "2026-02-17",
    2027: "2027-02-06",
    2028: "2028-01-26",
    2029: "2029-02-13",
    2030: "2030-02-03",
    2031: "2031-01-23",
    2032: "2032-02-11",
    2033: "2033-01-31",
    2034: "2034-02-19",
    2035: "2035-02-08",
}
# Outside the table the festival is taken as February 5th, its median date.
_FALLBACK_MONTH_DAY = "-02-05"
_DAYS_PER_MONTH = 365.2425 / 12


def spring_festival_date(year: int) -> np.datetime64:
    """The Spring Festival of ``year`` (tabulated 2010–2035, February 5th outside the table)."""
    return np.datetime64(SPRING_FESTIVAL.get(year, f"{year:04d}{_FALLBACK_MONTH_DAY}"), "D")


def months_to_spring_festival(month_numbers: np.ndarray) -> np.ndarray:
    """Signed months from the middle (15th) of each month to the nearest Spring Festival
    (positive: the festival is still ahead). ``month_numbers`` are ``year*12 + month-1``."""
    month_numbers = np.asarray(month_numbers, dtype=np.int64)
    years = month_numbers // 12
    mid = (month_numbers - 1970 * 12).astype("datetime64[M]").astype("datetime64[D]") + np.timedelta64(
        14, "D"
    )
    best = np.full(month_numbers.shape, np.inf)
    for shift in (-1, 0, 1):
        fest = np.array([spring_festival_date(int(y) + shift) for y in years.ravel()], dtype="datetime64[D]")
        diff = (fest.reshape(years.shape) - mid).astype(np.float64) / _DAYS_PER_MONTH
        best = np.where(np.abs(diff) < np.abs(best), diff, best)
    return best


def spring_festival_in_window(first_months: np.ndarray, horizon_months: int) -> np.ndarray:
    """1.0 where a Spring Festival falls in months ``first … first + horizon - 1``, else 0.0."""
    first_months = np.asarray(first_months, dtype=np.int64)
    hit = np.zeros(first_months.shape, dtype=bool)
    for k in range(horizon_months):
        m = first_months + k
        fest_month = np.array(
            [
                spring_festival_date(int(y)).astype("datetime64[M]").astype(np.int64) + 1970 * 12
                for y in (m // 12).ravel()
            ]
        ).reshape(m.shape)
        hit |= fest_month == m
    return hit.astype(np.float64)
