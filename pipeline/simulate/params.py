"""The parameters of the simulated world, in one place (docs/simulator.md is their table).

Rates are per unit-month at the reference unit of each type; effects are on the log scale unless
named as a probability. Category order everywhere in the simulator is :data:`CATS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CATS: tuple[str, ...] = (
    "dispute",
    "petition",
    "public_security",
    "criminal",
    "safety_accident",
    "fire",
    "hazard",
)
C = {name: i for i, name in enumerate(CATS)}
TYPES: tuple[str, ...] = ("village", "community", "enterprise")
START = np.datetime64("2018-01", "M")
BURN_IN_MONTHS = 12  # 2017 is simulated but not written, so the backlog is in steady state in 2018-01

INDUSTRIES: tuple[str, ...] = ("煤炭", "化工", "建筑", "制造", "商贸", "服务", "农业", "教育", "医疗卫生")
INDUSTRY_SHARE: tuple[float, ...] = (0.08, 0.05, 0.12, 0.20, 0.22, 0.18, 0.07, 0.05, 0.03)
INSTITUTIONS = frozenset({"教育", "医疗卫生"})  # 事业单位: credit code 12…, not 91…

DISPUTE_SUBTYPES: tuple[str, ...] = (
    "邻里纠纷",
    "土地承包",
    "山林水利权属",
    "婚姻家庭",
    "劳资纠纷",
    "征地拆迁",
    "物业纠纷",
    "建筑质量",
    "医患纠纷",
    "环境污染",
    "村(社区)务管理",
    "经济债务",
    "其他纠纷",
)
# Subtype mix by unit type (docs/simulator.md: rural 邻里 28 %, land 24 %, 婚姻家庭 11 %; urban 劳资 up to a quarter).
DISPUTE_MIX: dict[str, tuple[float, ...]] = {
    "village": (0.28, 0.18, 0.06, 0.11, 0.05, 0.06, 0.00, 0.02, 0.01, 0.04, 0.08, 0.07, 0.04),
    "community": (0.16, 0.00, 0.00, 0.12, 0.22, 0.08, 0.18, 0.05, 0.03, 0.04, 0.03, 0.06, 0.03),
    "enterprise": (0.02, 0.00, 0.00, 0.00, 0.55, 0.00, 0.00, 0.07, 0.05, 0.08, 0.00, 0.15, 0.08),
}
_FLAT = (1.0,) * 12
_PRE_FESTIVAL = (1.8, 1.5, 0.9, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 1.1, 1.5)  # wages and debts before 春节
_FARM_SPRING = (0.8, 0.8, 1.4, 1.6, 1.5, 1.1, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8)  # land disputes in spring
DISPUTE_SEASON: tuple[tuple[float, ...], ...] = (
    (0.9, 1.0, 1.0, 1.0, 1.0, 1.05, 1.1, 1.1, 1.0, 1.0, 0.95, 0.9),  # 邻里
    _FARM_SPRING,
    _FARM_SPRING,
    _FLAT,
    _PRE_FESTIVAL,
    _FLAT,
    _FLAT,
    _FLAT,
    _FLAT,
    _FLAT,
    _FLAT,
    _PRE_FESTIVAL,
    _FLAT,
)
SEASON: dict[str, tuple[float, ...]] = {  # month-of-year multipliers (normalised to mean 1 at use)
    "petition": (1.15, 1.1, 1.25, 1.0, 1.0, 0.95, 0.95, 0.95, 0.95, 1.05, 1.0, 1.05),  # 两会 in March
    "public_security": (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.2, 1.05, 1.0, 0.9, 0.85),
    "criminal": (0.85, 0.9, 0.9, 0.95, 1.05, 1.15, 1.25, 1.2, 1.05, 0.95, 0.9, 0.85),  # summer crime
    "safety_accident": (1.1, 0.85, 1.0, 1.0, 1.05, 1.05, 1.1, 1.1, 1.0, 1.0, 1.0, 1.1),
    "fire": (1.4, 1.5, 1.3, 1.2, 0.9, 0.8, 0.7, 0.7, 0.8, 0.9, 1.1, 1.3),  # heating, fireworks, dry spring
    "hazard": (0.9, 0.8, 1.1, 1.1, 1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.05, 1.0),
}

OTHER_SUBTYPES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "public_security": (
        ("打架斗殴", "盗窃", "赌博", "扰乱公共秩序", "诈骗", "其他治安"),
        (0.30, 0.25, 0.12, 0.13, 0.10, 0.10),
    ),
    "criminal": (
        ("盗窃", "诈骗", "故意伤害", "寻衅滋事", "交通肇事", "非法采矿", "其他刑事"),
        (0.30, 0.30, 0.12, 0.10, 0.06, 0.04, 0.08),
    ),
    "safety_accident": (
        ("生产安全事故", "交通事故", "建筑施工事故", "燃气事故", "农机事故", "其他事故"),
        (0.30, 0.30, 0.12, 0.10, 0.10, 0.08),
    ),
    "fire": (
        ("居民住宅火灾", "电气火灾", "秸秆山林火灾", "厂房仓库火灾", "其他火灾"),
        (0.35, 0.25, 0.15, 0.15, 0.10),
    ),
}
CRIMINAL_WITH_CASUALTIES = ("故意伤害", "交通肇事")
PETITION_ESCALATED = (("越级访", "集体访", "重复访"), (0.45, 0.30, 0.25))


@dataclass(frozen=True)
class WorldParams:
    """Every number of the generating process. ``kappa`` are the calibration multipliers of the
    red-rule channels per unit type, tuned by :mod:`pipeline.simulate.calibrate`."""

    # Base monthly rates at the reference unit (village 800 people, community 6,000, enterprise 80
    # employees), before season, trend, history and frailty; rows = TYPES, columns = CATS.
    base: tuple[tuple[float, ...], ...] = (
        (0.30, 0.045, 0.040, 0.020, 0.020, 0.015, 0.45),
        (2.20, 0.300, 0.300, 0.060, 0.040, 0.050, 2.50),
        (0.04, 0.006, 0.006, 0.0002, 0.006, 0.004, 0.15),
    )
    ref_size: tuple[float, ...] = (800.0, 6000.0, 80.0)
    # Elasticity of each category's rate to population (employees for enterprises).
    size_elasticity: tuple[float, ...] = (0.85, 0.7, 0.8, 0.8, 0.6, 0.6, 0.7)
    # Attribute effects per standard deviation within the unit type (z-scores clipped to ±3), by
    # category; mediators and grid workers are per 1,000 people (employees).
    beta_migrant: tuple[float, ...] = (0.15, 0.10, 0.25, 0.25, 0.08, 0.0, 0.0)
    beta_elderly: tuple[float, ...] = (-0.05, 0.05, -0.12, -0.15, 0.08, 0.20, 0.0)
    beta_left_behind: tuple[float, ...] = (0.15, 0.08, 0.15, 0.12, 0.0, 0.0, 0.0)
    beta_mediators: tuple[float, ...] = (0.0, -0.15, -0.05, -0.10, 0.0, 0.0, 0.0)
    beta_grid: tuple[float, ...] = (0.03, 0.0, -0.05, -0.05, -0.10, -0.08, 0.15)  # more hazards *reported*
    # Reporting effort (effort.py): extra recorded minor hazards a month per SD of grid workers per
    # 1,000 above the unit type's mean, outside the generating process (0 = off, the default world).
    reporting_effort: float = 0.0
    beta_moral_bank: tuple[float, ...] = (-0.15, -0.30, -0.15, -0.20, 0.0, 0.0, 0.0)
    # Enterprise industry multipliers (INDUSTRIES order) for dispute, petition, accident, fire, hazard.
    industry_mult: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {
            "dispute": (1.2, 1.0, 2.0, 1.0, 0.8, 0.8, 0.7, 0.6, 1.5),
            "petition": (1.3, 1.0, 2.5, 1.0, 0.7, 0.7, 0.8, 0.8, 1.5),
            "safety_accident": (4.0, 3.0, 3.0, 1.5, 0.5, 0.5, 0.8, 0.3, 0.4),
            "fire": (1.5, 4.0, 1.0, 1.5, 1.2, 1.0, 0.8, 0.4, 0.6),
            "hazard": (2.5, 2.5, 1.8, 1.2, 0.7, 0.7, 0.7, 0.6, 0.9),
        }
    )
    # Unit-level gamma frailties (mean 1): one for the social categories (dispute … criminal),
    # one for the safety categories (accident, fire, hazard).
    frailty_shape_social: float = 2.0
    frailty_shape_safety: float = 1.5
    county_sd: float = 0.15
    township_sd: float = 0.25
    # Campaign from 2020-04: log-rate reduction reached linearly over ``campaign_ramp`` months.
    campaign_start: str = "2020-04"
    campaign_ramp: int = 24
    campaign_effect: tuple[float, ...] = (-0.15, -0.35, -0.25, -0.30, -0.25, -0.20, 0.10)
    criminal_trend_per_year: float = -0.06  # criminal cases falling since 2019-01
    # History (state at the end of the previous month), effects on the log rate of log1p(state).
    gamma_backlog: tuple[float, ...] = (0.0, 0.45, 0.20, 0.35, 0.0, 0.0, 0.0)  # open disputes
    gamma_open_hazards: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.35, 0.30, 0.0)
    gamma_self: tuple[float, ...] = (0.25, 0.30, 0.25, 0.20, 0.20, 0.15, 0.10)  # own decayed count
    self_decay: float = 0.6  # per month
    gamma_neighbours: tuple[float, ...] = (0.05, 0.20, 0.30, 0.25, 0.0, 0.0, 0.0)
    n_neighbours: int = 8
    # Thinning probabilities. Petition escalation: 1 - exp(-eta * (1 + backlog) ** escalation_backlog).
    escalation_eta: tuple[float, ...] = (0.10, 0.06, 0.02)
    escalation_backlog: float = 0.5
    dispute_escalated: float = 0.03
    casualty_accident: tuple[float, ...] = (0.35, 0.30, 0.03)  # P(casualties ≥ 1 | accident), before kappa
    casualty_fire: tuple[float, ...] = (0.08, 0.08, 0.03)
    industry_casualty: tuple[float, ...] = (1.6, 1.4, 1.6, 1.0, 0.6, 0.6, 0.8, 0.5, 0.5)
    # Calibration multipliers of the red-rule channels (criminal rate, escalation hazard,
    # casualty hazard), per type; see calibrate.py.
    kappa: tuple[float, ...] = (1.114, 0.982, 0.308)
    # Dispute resolution: fast (1 + floor(Exp(mean))) days, slow 1 + floor(LogNormal), never.
    dispute_fast_mean_days: float = 4.0
    dispute_slow_median_days: float = 40.0
    dispute_slow_sigma: float = 1.0
    dispute_p_slow: tuple[float, ...] = (0.20, 0.25, 0.20)
    dispute_p_never: tuple[float, ...] = (0.015, 0.02, 0.01)
    p_slow_mediators: float = -0.30  # logit effect per SD of mediators / 1,000 within the type
    p_slow_moral_bank: float = -0.40
    # Hazard rectification: 1 + floor(LogNormal(median by grade, sigma)), some never rectified.
    hazard_major_share: float = 0.10
    hazard_median_days: tuple[float, float] = (12.0, 45.0)  # 一般, 重大
    hazard_sigma: float = 0.8
    hazard_p_never: float = 0.03
    # Other resolution times (median days, sigma, P(never)): petition, public_security, criminal,
    # safety_accident, fire.
    other_resolution: dict[str, tuple[float, float, float]] = field(
        default_factory=lambda: {
            "petition": (20.0, 0.7, 0.02),
            "public_security": (10.0, 0.8, 0.03),
            "criminal": (60.0, 1.0, 0.10),
            "safety_accident": (30.0, 0.8, 0.05),
            "fire": (7.0, 0.8, 0.02),
        }
    )

    def arr(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), dtype=np.float64)
