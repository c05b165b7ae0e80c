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

# (city, 2-digit code, lat, lon, counties in official order: 区 first, then 县, then county-level 市)
CITIES: tuple[tuple[str, str, float, float, tuple[str, ...]], ...] = (
    (
        "太原市",
        "01",
        37.87,
        112.55,
        (
            "小店区",
            "迎泽区",
            "杏花岭区",
            "尖草坪区",
            "万柏林区",
            "晋源区",
            "清徐县",
            "阳曲县",
            "娄烦县",
            "古交市",
        ),
    ),
    (
        "大同市",
        "02",
        40.08,
        113.30,
        ("新荣区", "平城区", "云冈区", "云州区", "阳高县", "天镇县", "广灵县", "灵丘县", "浑源县", "左云县"),
    ),
    ("阳泉市", "03", 37.86, 113.58, ("城区", "矿区", "郊区", "平定县", "盂县")),
    (
        "长治市",
        "04",
        36.20,
        113.12,
        (
            "潞州区",
            "上党区",
            "屯留区",
            "潞城区",
            "襄垣县",
            "平顺县",
            "黎城县",
            "壶关县",
            "长子县",
            "武乡县",
            "沁县",
            "沁源县",
        ),
    ),
    ("晋城市", "05", 35.49, 112.85, ("城区", "沁水县", "阳城县", "陵川县", "泽州县", "高平市")),
    ("朔州市", "06", 39.33, 112.43, ("朔城区", "平鲁区", "山阴县", "应县", "右玉县", "怀仁市")),
    (
        "晋中市",
        "07",
        37.69,
        112.75,
        (
            "榆次区",
            "太谷区",
            "榆社县",
            "左权县",
            "和顺县",
            "昔阳县",
            "寿阳县",
            "祁县",
            "平遥县",
            "灵石县",
            "介休市",
        ),
    ),
    (
        "运城市",
        "08",
        35.03,
        111.00,
        (
            "盐湖区",
            "临猗县",
            "万荣县",
            "闻喜县",
            "稷山县",
            "新绛县",
            "绛县",
            "垣曲县",
            "夏县",
            "平陆县",
            "芮城县",
            "永济市",
            "河津市",
        ),
    ),
    (
        "忻州市",
        "09",
        38.42,
        112.73,
        (
            "忻府区",
            "定襄县",
            "五台县",
            "代县",
            "繁峙县",
            "宁武县",
            "静乐县",
            "神池县",
            "五寨县",
            "岢岚县",
            "河曲县",
            "保德县",
            "偏关县",
            "原平市",
        ),
    ),
    (
        "临汾市",
        "10",
        36.09,
        111.52,
        (
            "尧都区",
            "曲沃县",
            "翼城县",
            "襄汾县",
            "洪洞县",
            "古县",
            "安泽县",
            "浮山县",
            "吉县",
            "乡宁县",
            "大宁县",
            "隰县",
            "永和县",
            "蒲县",
            "汾西县",
            "侯马市",
            "霍州市",
        ),
    ),
    (
        "吕梁市",
        "11",
        37.52,
        111.14,
        (
            "离石区",
            "文水县",
            "交城县",
            "兴县",
            "临县",
            "柳林县",
            "石楼县",
            "岚县",
            "方山县",
            "中阳县",
            "交口县",
            "孝义市",
            "汾阳市",
        ),
    ),
)
LAT_RANGE, LON_RANGE = (34.6, 40.7), (110.2, 114.6)

# Presets: unit mix, counties, townships (docs/simulator.md).
PRESETS: dict[str, dict[str, float]] = {
    "county": {"village": 300, "community": 40, "enterprise": 160, "townships": 15},
    "province": {"village": 28000, "community": 2400, "enterprise": 20000, "townships": 1390},
}
COUNTY_PRESET = ("临汾市", "洪洞县", 36.25, 111.67)

_TOWN_A = "东西南北大小上下新古高前后中龙凤石白红青黄金杨柳桃李张王刘赵马韩郭段梁崔侯乔贾冯薛温卫安永兴泰和平丰义广长宁清明双三五万"
_TOWN_B = "庄堡峪沟河岭坡湾寨关口头营城店集川原坪山泉水桥阳亭陵丘里坊庙垣窑台峰源"
_SURNAMES = "张王李赵刘杨陈郭韩马孙高梁段薛贾冯侯崔乔任武田程宋白郝吕霍卫温范秦阎牛申常"
_PLACE3 = ("家庄", "家沟", "家峪", "家堡", "家河", "家岭", "家坡", "家湾", "家寨", "家村", "家窑", "家营")
_DIR = "东西南北上下前后大小新老石白红青高古龙马杨柳桃杏"
_PLACE1 = "庄村峪沟堡坡岭湾垣营窑坪河寨头口"
_COMMUNITY = (
    "新华",
    "建设",
    "解放",
    "迎泽",
    "和平",
    "光明",
    "文化",
    "幸福",
    "朝阳",
    "胜利",
    "友谊",
    "新民",
    "南关",
    "北关",
    "东关",
    "西关",
    "府东",
    "府西",
    "桥东",
    "桥西",
    "滨河",
    "锦绣",
    "阳光",
    "花园",
    "丽华",
    "龙城",
    "柳巷",
    "五一",
    "长风",
    "学府",
    "并州",
    "晋阳",
    "汾河",
    "鼓楼",
    "钟楼",
    "振兴",
    "团结",
    "育才",
    "铁路",
    "矿机",
    "电厂",
    "纺织",
    "化肥",
    "钢城",
    "康宁",
    "安居",
    "馨园",
    "怡景",
)
_COMMUNITY_SUFFIX = ("", "路", "苑", "街", "里")
_BRAND = "晋华鑫泰盛源恒通丰达汇兴宏祥瑞隆昌德润安康金银宝利嘉信诚顺鼎旺"
_INDUSTRY_WORDS: dict[str, tuple[str, ...]] = {
    "煤炭": ("煤业", "矿业", "煤焦"),
    "化工": ("化工", "焦化", "化学"),
    "建筑": ("建筑工程", "建设", "建工"),
    "制造": ("机械制造", "铸造", "装备制造", "建材"),
    "商贸": ("商贸", "贸易", "物流"),
    "服务": ("物业服务", "餐饮", "酒店管理", "运输"),
    "农业": ("农业开发", "农牧", "食品"),
}
_LEGAL = ("有限公司", "有限责任公司", "股份有限公司")
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


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
    preset: str, n_units: int | None, rng: np.random.Generator
) -> tuple[pd.DataFrame, Registry]:
    """The ``units`` table (docs/data-contract.md columns plus static attributes) and the process arrays.

    Takes the preset name, an optional unit count that scales it, and the world's generator."""
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
    region6 = np.char.add(np.char.add("14", city_code.astype(str)), county_code.astype(str))
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
