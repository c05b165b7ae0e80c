"""The surface of the simulated world: Shanxi's cities and real counties, generated townships with
names unique in the world, units with Chinese names, 12-digit 区划代码 / 18-character credit codes,
coordinates clustered by county and township, and plausible static attributes by unit type.

:func:`build_registry` is the one entry point; it returns the ``units`` table in the contract's input
format plus the arrays the generating process needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sanling.core.errors import ConfigError
from sanling.pipeline.simulate.params import INDUSTRIES, INDUSTRY_SHARE, INSTITUTIONS, TYPES
from sanling.pipeline.simulate.places import (
    _BRAND,
    _COMMUNITY,
    _COMMUNITY_SUFFIX,
    _DIR,
    _INDUSTRY_WORDS,
    _LEGAL,
    _PLACE1,
    _PLACE3,
    _SURNAMES,
    _TOWN_A,
    _TOWN_B,
    _USCC_CHARS,
    CITIES,
    COUNTY_PRESET,
    LAT_RANGE,
    LON_RANGE,
    PRESETS,
)


@dataclass(frozen=True)
class Registry:
    """Arrays over units (row order of ``units``) that the generating process reads."""

    type_idx: np.ndarray  # 0 village, 1 community, 2 enterprise
    township_idx: np.ndarray
    county_idx: np.ndarray
    township_county: np.ndarray  # county of each township (townships may hold no unit)
    industry_idx: np.ndarray  # -1 for villages and communities
    size: np.ndarray  # population, or employees for enterprises
    migrant_ratio: np.ndarray
    elderly_ratio: np.ndarray  # 0 where not recorded
    left_behind_share: np.ndarray  # 0 where not recorded
    mediators_per_1000: np.ndarray
    grid_per_1000: np.ndarray
    moral_bank: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    n_townships: int
    n_counties: int


def unit_mix(preset: str, n_units: int | None) -> tuple[dict[str, int], int]:
    """Units per type and the number of townships for a preset scaled to ``n_units``."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    total = sum(spec[t] for t in TYPES)
    n = total if n_units is None else int(n_units)
    if n < 3:
        raise ConfigError(f"--units must be at least 3 (one unit of each type), got {n}")
    f = n / total
    counts = {t: max(1, round(spec[t] * f)) for t in TYPES}
    counts["village"] += n - sum(counts.values())  # keep the requested total exactly
    if counts["village"] < 1:
        raise ConfigError(f"--units {n} is too small for the {preset} preset")
    return counts, max(1, round(spec["townships"] * f))


def _county_table(preset: str, n_townships: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for city, ccode, lat, lon, counties in CITIES:
        n_qu = sum(c.endswith("区") for c in counties)
        n_xian = sum(c.endswith("县") for c in counties)
        for j, name in enumerate(counties):
            if j < n_qu:
                code, kind = 2 + j, "区"
            elif j < n_qu + n_xian:
                code, kind = 21 + j - n_qu, "县"
            else:
                code, kind = 81 + j - n_qu - n_xian, "市"
            rows.append((city, ccode, lat, lon, name, f"{code:02d}", kind))
    table = pd.DataFrame(
        rows, columns=["city", "city_code", "city_lat", "city_lon", "county", "county_code", "kind"]
    )
    if preset == "county":
        city, county, lat, lon = COUNTY_PRESET
        table = table[(table.city == city) & (table.county == county)].reset_index(drop=True)
        table["lat"], table["lon"] = lat, lon
        return table
    n_counties = int(
        np.clip(round(len(table) * np.sqrt(n_townships / PRESETS["province"]["townships"])), 11, len(table))
    )
    n_counties = min(n_counties, max(11, n_townships))
    if n_counties < len(table):
        # Keep every city's seat district, then a random sample of the rest.
        first = table.groupby("city", sort=False).head(1).index.to_numpy()
        rest = rng.permutation(np.setdiff1d(table.index.to_numpy(), first))[: n_counties - len(first)]
        table = table.loc[np.sort(np.concatenate([first, rest]))].reset_index(drop=True)
    spread = np.where(table.kind == "区", 0.12, 0.38)  # districts sit near the city seat
    table["lat"] = table.city_lat + rng.normal(0.0, 1.0, len(table)) * spread
    table["lon"] = table.city_lon + rng.normal(0.0, 1.2, len(table)) * spread
    return table


def _unique_names(groups: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A name from ``pool`` for each row, distinct within its group (rows sorted by group) while the
    group is no larger than the pool; a stride coprime to the pool size walks it from a random start."""
    p = len(pool)
    stride = next(s for s in (7919, 104729, 1299709) if p % s)
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    sizes = np.diff(np.r_[starts, len(groups)])
    rank = np.arange(len(groups)) - np.repeat(starts, sizes)
    offset = np.repeat(rng.integers(0, p, len(starts)), sizes)
    return pool[(offset + rank * stride) % p]


def _township_table(counties: pd.DataFrame, n_townships: int, rng: np.random.Generator) -> pd.DataFrame:
    k = len(counties)
    if k == 1:
        per = np.array([n_townships])
    else:
        floor = min(4, n_townships // k)
        per = floor + rng.multinomial(n_townships - floor * k, np.full(k, 1.0 / k))
        per = np.maximum(per, 1)
    county_idx = np.repeat(np.arange(k), per)
    urban_share = counties.kind.map({"区": 0.6, "市": 0.25, "县": 0.13}).to_numpy()[county_idx]
    # The first township of every county is urban (the county seat's 街道 or 城关镇).
    first = np.r_[True, np.diff(county_idx) != 0]
    urban = first | (rng.random(len(county_idx)) < urban_share)
    kind = np.where(urban, "街道", np.where(rng.random(len(county_idx)) < 0.6, "镇", "乡"))
    stems = np.array([a + b for a in _TOWN_A for b in _TOWN_B])
    order = rng.permutation(len(stems))
    idx = np.arange(len(county_idx))
    # Unique in the world: a township is the access-control scope of township staff.
    stem = stems[order[idx % len(stems)]]
    extra = idx // len(stems)
    stem = np.where(extra > 0, np.array(list("东西南北上下前后"))[np.minimum(extra, 8) - 1] + stem, stem)
    # Codes: 街道 001…, 镇 100…, 乡 200… within the county.
    base = np.select([kind == "街道", kind == "镇"], [1, 100], 200)
    key = pd.Series(county_idx.astype(np.int64) * 10 + base)
    code = base + key.groupby(key).cumcount().to_numpy()
    lat = counties.lat.to_numpy()[county_idx] + rng.normal(0, 0.07, len(county_idx)) * np.where(
        urban, 0.4, 1.0
    )
    lon = counties.lon.to_numpy()[county_idx] + rng.normal(0, 0.09, len(county_idx)) * np.where(
        urban, 0.4, 1.0
    )
    return pd.DataFrame(
        {
            "county_idx": county_idx,
            "township": np.char.add(stem.astype(str), kind.astype(str)),
            "kind": kind,
            "code": code,
            "lat": lat,
            "lon": lon,
        }
    )


def _credit_codes(region6: np.ndarray, institution: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """18-character unified social credit codes (GB 32100) with valid check characters: registration
    authority and type (91 enterprise, 12 public institution), region, organisation code (GB 11714)."""
    n = len(region6)
    cand = rng.integers(10_000_000, 100_000_000, n + n // 10 + 20)
    first = np.sort(np.unique(cand, return_index=True)[1])  # drop the rare repeats, keep the draw order
    body = cand[first][:n]
    org = (body[:, None] // 10 ** np.arange(7, -1, -1)) % 10
    c9 = 11 - (org @ np.array([3, 7, 9, 10, 5, 8, 4, 2])) % 11  # 10 → X (value 33 in the charset), 11 → 0
    org_chk = np.where(c9 == 11, 0, np.where(c9 == 10, _USCC_CHARS.index("X"), c9))
    reg = (region6.astype(np.int64)[:, None] // 10 ** np.arange(5, -1, -1)) % 10
    head = np.where(institution[:, None], [1, 2], [9, 1])
    vals = np.concatenate([head, reg, org, org_chk[:, None]], axis=1)
    weights = np.array([pow(3, i, 31) for i in range(17)])
    chk = (31 - (vals @ weights) % 31) % 31
    vals = np.concatenate([vals, chk[:, None]], axis=1)
    chars = np.frombuffer(_USCC_CHARS.encode(), dtype=np.uint8)[vals].astype(np.uint32)
    return np.ascontiguousarray(chars).view("<U18").ravel()


def _pool(first: tuple[str, ...] | str, second: tuple[str, ...] | str) -> np.ndarray:
    """Every combination first + second, as a name pool."""
    return np.array([a + b for a in first for b in second])


def build_registry(
    preset: str, n_units: int | None, rng: np.random.Generator, *, province_code: str = "14"
) -> tuple[pd.DataFrame, Registry]:
    """The ``units`` table (docs/data-contract.md columns plus static attributes) and the process arrays.

    Takes the preset name, an optional unit count that scales it, the world's generator and the
    two-digit province code of the 区划代码 (Shanxi's 14; the national preset gives each region its own)."""
    counts, n_townships = unit_mix(preset, n_units)
    counties = _county_table(preset, n_townships, rng)
    towns = _township_table(counties, n_townships, rng)
    urban = (towns.kind == "街道").to_numpy()
    county_kind = counties.kind.to_numpy()[towns.county_idx.to_numpy()]
    weights = {
        "village": np.where(urban, 0.1, np.where(towns.kind == "乡", 0.8, 1.0)),
        "community": np.where(urban, 1.0, 0.08) * np.where(county_kind == "区", 1.5, 1.0),
        "enterprise": np.where(urban, 1.5, np.where(towns.kind == "乡", 0.4, 1.0)),
    }
    type_idx = np.repeat(np.arange(3), [counts[t] for t in TYPES])
    town_idx = np.concatenate(
        [rng.choice(len(towns), counts[t], p=weights[t] / weights[t].sum()) for t in TYPES]
    )
    order = np.lexsort((type_idx, town_idx))
    type_idx, town_idx = type_idx[order], town_idx[order]
    n = len(type_idx)
    county_idx = towns.county_idx.to_numpy()[town_idx]
    is_v, is_c, is_e = type_idx == 0, type_idx == 1, type_idx == 2

    # Names, distinct within a township for each type.
    vpool = np.concatenate([_pool(_SURNAMES, _PLACE3), _pool(_DIR, _PLACE1)])
    vpool = np.array([s if s.endswith("村") else s + "村" for s in vpool])
    cpool = np.array([a + b + "社区" for a in _COMMUNITY for b in _COMMUNITY_SUFFIX])
    names = np.empty(n, dtype=object)
    names[is_v] = _unique_names(town_idx[is_v], vpool, rng)
    names[is_c] = _unique_names(town_idx[is_c], cpool, rng)

    # Enterprise attributes first: industry drives size, names and codes.
    n_e = int(is_e.sum())
    industry_idx = np.full(n, -1)
    industry_idx[is_e] = rng.choice(len(INDUSTRIES), n_e, p=np.asarray(INDUSTRY_SHARE) / sum(INDUSTRY_SHARE))
    industry = np.where(industry_idx >= 0, np.asarray(INDUSTRIES)[np.maximum(industry_idx, 0)], "")
    county_name = counties.county.to_numpy()[county_idx]
    short = np.array([c[:-1] if len(c) > 2 else c for c in county_name])
    brand = _pool(_BRAND, _BRAND)[rng.integers(0, len(_BRAND) ** 2, n)]
    legal = np.asarray(_LEGAL)[rng.choice(3, n, p=[0.7, 0.22, 0.08])]
    words = np.array(
        [
            _INDUSTRY_WORDS.get(i, ("",))[k % len(_INDUSTRY_WORDS.get(i, ("",)))]
            for i, k in zip(industry[is_e], rng.integers(0, 12, n_e), strict=True)
        ],
        dtype=object,
    )
    ent_names = np.char.add(
        np.char.add(np.char.add(short[is_e].astype(str), brand[is_e]), words.astype(str)), legal[is_e]
    )
    school = np.char.add(
        np.char.add(short[is_e].astype(str), brand[is_e]), np.where(rng.random(n_e) < 0.5, "中学", "小学")
    )
    clinic = np.char.add(
        np.char.add(short[is_e].astype(str), brand[is_e]), np.where(rng.random(n_e) < 0.8, "卫生院", "医院")
    )
    ind_e = industry[is_e]
    names[is_e] = np.where(ind_e == "教育", school, np.where(ind_e == "医疗卫生", clinic, ent_names))

    # Codes.
    city_code = counties.city_code.to_numpy()[county_idx]
    county_code = counties.county_code.to_numpy()[county_idx]
    region6 = np.char.add(np.char.add(province_code, city_code.astype(str)), county_code.astype(str))
    t_code = towns.code.to_numpy()[town_idx]
    key = pd.Series(town_idx * 2 + is_v)
    seq = key.groupby(key).cumcount().to_numpy() + np.where(is_v, 200, 1)
    village_id = np.char.add(
        np.char.add(region6, np.char.zfill(t_code.astype(str), 3)), np.char.zfill(seq.astype(str), 3)
    )
    unit_id = village_id.astype(object)
    institution = np.isin(industry, list(INSTITUTIONS))
    unit_id[is_e] = _credit_codes(region6[is_e].astype(np.int64), institution[is_e], rng)

    # Size and composition.
    size = np.empty(n)
    size[is_v] = np.clip(rng.lognormal(np.log(800), 0.6, is_v.sum()), 60, 9000).round()
    size[is_c] = np.clip(rng.lognormal(np.log(6000), 0.5, is_c.sum()), 800, 40000).round()
    emp_median = np.array([600, 300, 150, 120, 40, 50, 30, 90, 150], dtype=float)
    size[is_e] = np.clip(rng.lognormal(np.log(emp_median[industry_idx[is_e]]), 1.0), 5, 20000).round()
    migrant = np.empty(n)
    migrant[is_v] = rng.beta(1.5, 18, is_v.sum())
    migrant[is_c] = rng.beta(3, 9, is_c.sum())
    migrant[is_e] = rng.beta(np.where(industry_idx[is_e] == 2, 5.0, 2.0), 5.0)
    elderly = np.where(is_v, rng.beta(5, 17, n), np.where(is_c, rng.beta(4, 18, n), np.nan))
    left = np.where(is_v, np.round(size * rng.beta(2, 18, n)), np.nan)
    mediators = np.where(
        is_e, rng.poisson(size / 200), 1 + rng.poisson(np.where(is_v, 4.0, 2.0) * size / 1000)
    )
    grid = np.where(is_e, rng.poisson(0.8, n), 1 + rng.poisson(size / np.where(is_v, 600, 300)))
    # 道德银行 spreads county by county (蒲县 is the model case).
    adoption = rng.beta(1.0, 3.0, len(counties))
    adoption[counties.county.to_numpy() == "蒲县"] = 0.9
    moral = (rng.random(n) < adoption[county_idx] * np.where(is_v, 1.0, np.where(is_c, 0.2, 0.0))).astype(
        np.int64
    )
    households = np.where(is_e, np.nan, np.round(size / rng.uniform(2.6, 3.4, n)))

    # Coordinates clustered by township; enterprises and communities nearer the township seat.
    spread = np.where(is_v, 0.025, 0.008)
    lat = np.clip(towns.lat.to_numpy()[town_idx] + rng.normal(0, 1, n) * spread, *LAT_RANGE)
    lon = np.clip(towns.lon.to_numpy()[town_idx] + rng.normal(0, 1.2, n) * spread, *LON_RANGE)

    def int_col(x: np.ndarray, mask: np.ndarray | None = None) -> pd.Series:
        s = pd.Series(np.where(np.isnan(x), 0, x).astype(np.int64), dtype="Int64")
        return s.mask(np.isnan(x)) if mask is None else s.mask(mask)

    units = pd.DataFrame(
        {
            "unit_id": pd.array(unit_id.astype(str), dtype="string"),
            "unit_name": pd.array(names.astype(str), dtype="string"),
            "unit_type": pd.array(np.asarray(TYPES)[type_idx], dtype="string"),
            "township": pd.array(towns.township.to_numpy()[town_idx], dtype="string"),
            "county": pd.array(county_name.astype(str), dtype="string"),
            "city": pd.array(counties.city.to_numpy()[county_idx].astype(str), dtype="string"),
            "lat": lat.round(5),
            "lon": lon.round(5),
            "population": int_col(np.where(is_e, np.nan, size)),
            "households": int_col(households),
            "migrant_ratio": migrant.round(3),
            "elderly_ratio": elderly.round(3),
            "left_behind": int_col(left),
            "mediators": int_col(mediators.astype(float)),
            "grid_workers": int_col(grid.astype(float)),
            "industry": pd.array(industry.astype(str), dtype="string"),
            "employees": int_col(np.where(is_e, size, np.nan)),
            "moral_bank": int_col(moral.astype(float)),
        }
    )
    per_1000 = 1000.0 / size
    reg = Registry(
        type_idx=type_idx,
        township_idx=town_idx,
        county_idx=county_idx,
        township_county=towns.county_idx.to_numpy(),
        industry_idx=industry_idx,
        size=size,
        migrant_ratio=migrant,
        elderly_ratio=np.nan_to_num(elderly),
        left_behind_share=np.nan_to_num(left / size),
        mediators_per_1000=mediators * per_1000,
        grid_per_1000=grid * per_1000,
        moral_bank=moral.astype(float),
        lat=lat,
        lon=lon,
        n_townships=len(towns),
        n_counties=len(counties),
    )
    return units, reg
