"""``sanling simulate --preset national``: a national-size world (≈ 1 M units) written region by
region, each region's tables split by city, so that memory holds one region at a time.

A region is a province-size world on the simulated Shanxi geography, drawn with its own seed and
its own two-digit province code (the 区划代码 and credit codes carry it), its city and county names
prefixed with the region's name (``河北·太原市``) so that they are unique in the nation, and its
coordinates moved to its own box on a 4 × 5 grid (no two regions overlap, so nearest neighbours
stay inside a region as they would across a real provincial border). Event ids carry the code.

Files: ``units_<city code>.parquet``, ``events_<city code>.parquet``, ``event_updates_<…>``,
``unit_history_<…>`` (a data directory's table may be split over files: CONTRACT §1), and
``truth_sample.parquet``, the oracle of a seeded sample of units (the whole oracle of a million
units over 60 months would be 60 M rows).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.errors import ConfigError
from sanling.pipeline.simulate.params import START, TYPES, WorldParams
from sanling.pipeline.simulate.reporting import ReportingParams
from sanling.pipeline.simulate.world import build_world

# (code, name): 20 regions of ≈ 50,000 units make the ≈ 1 M units of a national roll-out.
REGIONS: tuple[tuple[str, str], ...] = (
    ("11", "北京"), ("12", "天津"), ("13", "河北"), ("14", "山西"), ("15", "内蒙古"),
    ("21", "辽宁"), ("22", "吉林"), ("23", "黑龙江"), ("31", "上海"), ("32", "江苏"),
    ("33", "浙江"), ("34", "安徽"), ("35", "福建"), ("36", "江西"), ("37", "山东"),
    ("41", "河南"), ("42", "湖北"), ("43", "湖南"), ("44", "广东"), ("45", "广西"),
)  # fmt: skip
NATIONAL_UNITS = 1_000_000
TRUTH_SAMPLE = 0.01
# The Shanxi box is 6.1° of latitude × 4.4° of longitude; regions sit on a 4 × 5 grid of such boxes.
_LAT_STEP, _LON_STEP, _GRID_COLUMNS = 6.2, 4.5, 5


def region_sizes(n_units: int, n_regions: int | None = None) -> list[int]:
    """Units per region: ``n_units`` over as many regions as make ≈ 50,000 each (at most 20)."""
    k = n_regions or int(np.clip(round(n_units / 50_000), 1, len(REGIONS)))
    base = np.full(k, n_units // k)
    base[: n_units % k] += 1
    return base.tolist()


def _relabel(world, code: str, name: str, r: int) -> dict[str, pd.DataFrame | None]:
    """The region's tables with unique names, moved coordinates and event ids carrying the code."""
    units = world.units.copy()
    for col in ("city", "county"):
        units[col] = name + "·" + units[col].astype(str)
    row, col = divmod(r, _GRID_COLUMNS)
    units["lat"] = (units["lat"] + (row - 1.5) * _LAT_STEP).round(5)
    units["lon"] = (units["lon"] + (col - 2) * _LON_STEP).round(5)
    events = world.events.copy()
    events["event_id"] = "SJ" + code + events["event_id"].astype(str).str.slice(2)
    updates = world.updates
    if updates is not None:
        updates = updates.copy()
        updates["event_id"] = "SJ" + code + updates["event_id"].astype(str).str.slice(2)
    return {"units": units, "events": events, "event_updates": updates, "unit_history": world.history}


def _city_codes(units: pd.DataFrame, code: str) -> pd.Series:
    """unit_id → its city's four-digit code (province + city) from the 区划代码 / credit code."""
    ids = units["unit_id"].astype(str)
    return pd.Series(
        np.where(ids.str.len() == 12, ids.str.slice(0, 4), ids.str.slice(2, 6)), index=ids.to_numpy()
    )


def simulate_national(
    out: Path,
    *,
    n_units: int | None = None,
    months: int = 60,
    seed: int = 0,
    reporting: bool = True,
    truth_share: float = TRUTH_SAMPLE,
    n_regions: int | None = None,
    progress: bool = True,
) -> str:
    """Write the national preset to ``out`` region by region (see the module docstring); returns a
    one-line summary. Memory peaks at one region (≈ 50,000 units: 3.8 GB) whatever ``n_units`` is."""
    n_units = NATIONAL_UNITS if n_units is None else int(n_units)
    if n_units < 150:
        raise ConfigError(f"--units {n_units} is too small for the national preset (at least 150)")
    if n_regions is not None and not 1 <= n_regions <= len(REGIONS):
        raise ConfigError(f"regions must be between 1 and {len(REGIONS)}, got {n_regions}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.parquet"):  # a re-run with fewer regions must not keep old cities
        stale.unlink()
    t0 = time.perf_counter()
    sizes = region_sizes(n_units, n_regions)
    totals = {"units": 0, "events": 0, "truth": 0}
    by_type = dict.fromkeys(TYPES, 0)
    truth_parts = []
    rng = np.random.default_rng([seed, 77])
    for r, size in enumerate(sizes):
        code, name = REGIONS[r]
        world = build_world(
            preset="province",
            n_units=size,
            months=months,
            seed=int(np.random.default_rng([seed, r]).integers(2**31)),
            params=WorldParams(),
            reporting=ReportingParams() if reporting else None,
            province_code=code,
        )
        tables = _relabel(world, code, name, r)
        city = _city_codes(tables["units"], code)
        event_city = pd.Series(
            city.reindex(tables["events"]["unit_id"].astype(str)).to_numpy(),
            index=tables["events"]["event_id"].to_numpy(),
        )
        for table, frame in tables.items():
            if frame is None:
                continue
            if "unit_id" in frame:
                key = city.reindex(frame["unit_id"].astype(str)).to_numpy()
            else:  # event_updates: the city of the event
                key = event_city.reindex(frame["event_id"].to_numpy()).to_numpy()
            for c in np.unique(key):
                frame[key == c].to_parquet(out / f"{table}_{c}.parquet", index=False)
        sample = rng.random(len(world.units)) < truth_share
        truth_parts.append(world.truth[world.truth["unit_id"].isin(set(world.units["unit_id"][sample]))])
        totals["units"] += len(world.units)
        totals["events"] += len(world.events)
        for t, k in world.units["unit_type"].value_counts().items():
            by_type[str(t)] += int(k)
        if progress:
            print(
                f"region {r + 1}/{len(sizes)} {name}: {len(world.units):,} units, {len(world.events):,} events "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        del world, tables
    truth = pd.concat(truth_parts, ignore_index=True)
    truth.to_parquet(out / "truth_sample.parquet", index=False)
    meta = {
        "generator": "sanling simulate",
        "preset": "national",
        "n_units": totals["units"],
        "regions": [REGIONS[r][1] for r in range(len(sizes))],
        "months": months,
        "seed": seed,
        "format": "parquet, one file per city and table",
        "start": str(START),
        "end": str(START + months - 1),
        "units_by_type": by_type,
        "n_events": totals["events"],
        "truth_sample_share": truth_share,
        "n_truth_rows": len(truth),
    }
    (out / "world.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    secs = time.perf_counter() - t0
    return (
        f"wrote {totals['units']:,} units in {len(sizes)} regions, {totals['events']:,} events "
        f"{meta['start']}…{meta['end']} by city and {len(truth):,} oracle rows of a "
        f"{truth_share:.0%} unit sample to {out} in {secs:.1f} s"
    )
