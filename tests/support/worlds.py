"""Tiny random worlds in memory for the feature tests, with the edge cases the brief lists:
events on a month's last day, resolved the same day, resolved exactly at a month end, never
resolved, counts > 1, units without events or coordinates, yearly data dated December 31st."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.core.vocabulary import CATEGORIES_ZH


def random_units(rng: np.random.Generator, n: int = 40) -> pd.DataFrame:
    townships = np.array([f"镇{i}" for i in range(6)])
    t = rng.integers(0, len(townships), n)
    lat = rng.uniform(35.0, 40.0, n)
    lon = rng.uniform(110.5, 114.0, n)
    no_loc = rng.random(n) < 0.1
    lat[no_loc] = np.nan
    lon[no_loc] = np.nan
    pop = rng.integers(200, 5000, n).astype(float)
    pop[rng.random(n) < 0.15] = np.nan
    return pd.DataFrame(
        {
            "unit_id": [f"1401{i:08d}" for i in range(n)],
            "unit_name": [f"单位{i}" for i in range(n)],
            "unit_type": rng.choice(["village", "community", "enterprise"], n),
            "township": townships[t],
            "county": np.where(t < 3, "甲县", "乙县"),
            "city": "太原市",
            "lat": lat,
            "lon": lon,
            "population": pop,
            "mediators": rng.integers(0, 6, n).astype(float),
            "industry": rng.choice(["农业", "煤炭", "服务"], n),
        }
    )


def random_events(
    rng: np.random.Generator,
    units: pd.DataFrame,
    n: int = 600,
    start: str = "2019-01",
    months: int = 30,
    categories: dict[str, str] | None = None,
) -> pd.DataFrame:
    cats = list(categories or CATEGORIES_ZH)
    active = units["unit_id"].to_numpy()[: int(len(units) * 0.85)]  # the rest never has an event
    month0 = pd.Period(start, "M")
    m = rng.integers(0, months, n)
    first_days = np.array([(month0 + int(k)).start_time for k in m], dtype="datetime64[ns]")
    days_in = np.array([(month0 + int(k)).days_in_month for k in m])
    day = np.where(rng.random(n) < 0.2, days_in - 1, rng.integers(0, 28, n))  # many on the last day
    occurred = first_days + day.astype("timedelta64[D]") + rng.integers(0, 86400, n).astype("timedelta64[s]")
    kind = rng.random(n)
    delay = rng.integers(0, 200, n).astype("timedelta64[D]")
    resolved = occurred + delay
    resolved = np.where(kind < 0.25, np.datetime64("NaT"), resolved)  # never
    resolved = np.where((kind >= 0.25) & (kind < 0.35), occurred, resolved)  # same day
    month_end = np.array(
        [
            (pd.Timestamp(o).to_period("M") + int(k)).end_time.normalize()
            for o, k in zip(occurred, rng.integers(0, 3, n), strict=True)
        ],
        dtype="datetime64[ns]",
    )
    resolved = np.where((kind >= 0.35) & (kind < 0.5), month_end, resolved)  # exactly a month's last day
    severity = pd.array(rng.integers(1, 5, n), dtype="Int8")
    severity[rng.random(n) < 0.2] = pd.NA
    return pd.DataFrame(
        {
            "event_id": [f"E{i}" for i in range(n)],
            "unit_id": rng.choice(active, n),
            "occurred_at": pd.to_datetime(occurred),
            "category": rng.choice(cats, n),
            "subtype": "其他",
            "severity": severity,
            "count": np.where(rng.random(n) < 0.2, rng.integers(2, 5, n), 1).astype("int32"),
            "escalated": rng.random(n) < 0.25,
            "casualties": np.where(rng.random(n) < 0.1, rng.integers(1, 4, n), 0).astype("int32"),
            "resolved_at": pd.to_datetime(resolved),
        }
    )


def yearly_events(
    rng: np.random.Generator, units: pd.DataFrame, years: range = range(2016, 2022)
) -> pd.DataFrame:
    """Annual statistical reports: every row dated December 31st, counts > 1."""
    rows = []
    for y in years:
        for c in CATEGORIES_ZH:
            who = units["unit_id"].to_numpy()[rng.random(len(units)) < 0.3]
            for u in who:
                rows.append((f"Y{y}{c}{u}", u, pd.Timestamp(f"{y}-12-31"), c, int(rng.integers(1, 6))))
    ev = pd.DataFrame(rows, columns=["event_id", "unit_id", "occurred_at", "category", "count"])
    ev["escalated"] = rng.random(len(ev)) < 0.2
    ev["casualties"] = 0
    ev["resolved_at"] = pd.NaT
    ev["severity"] = pd.array([pd.NA] * len(ev), dtype="Int8")
    return ev
