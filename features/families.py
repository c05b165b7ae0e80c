"""The per-category, overall, long-run history and season families of feature declarations (the
peer, per-capita and static families, which depend on the registry's attributes, are in
:mod:`.registry`)."""

from __future__ import annotations

from collections.abc import Mapping

from sanling.core.config import FeatureParams
from sanling.features.declaration import (
    CASUALTY_WINDOWS,
    ESCALATED_WINDOWS,
    GROUP_ZH_FIXED,
    HISTORY_LEVELS,
    LONG_WINDOW,
    MONTHS_SINCE_CAP,
    SHORT_WINDOW,
    YEAR_WINDOW,
    Feature,
    half_life_tag,
)


def category_features(c: str, zh: str, params: FeatureParams) -> list[Feature]:
    def f(
        name: str,
        label: str,
        template: str,
        family: str,
        window: int | None,
        desc: str,
        direction: int,
        kind: str,
        **kw,
    ) -> Feature:
        return Feature(name, label, template, family, c, zh, c, window, desc, direction, kind, **kw)

    peer = "，同县同类单位平均{peer}"
    out = [
        f(
            f"{c}_count_{w}m",
            f"近{w}个月{zh}",
            f"近{w}个月{zh}{{value}}起{peer}起",
            "count",
            w,
            f"{c} events (sum of count) that occurred in the {w} months up to the as-of month",
            1,
            "window",
            variant="count",
        )
        for w in params.windows
    ]
    out += [
        f(
            f"{c}_escalated_count_{w}m",
            f"近{w}个月越级{zh}",
            f"近{w}个月越级/集体{zh}{{value}}起{peer}起",
            "count",
            w,
            f"escalated {c} events (越级/集体/群体性) in the {w} months up to the as-of month",
            1,
            "window",
            variant="escalated",
        )
        for w in ESCALATED_WINDOWS
    ]
    out.append(
        f(
            f"{c}_casualties_{YEAR_WINDOW}m",
            f"近12个月{zh}伤亡人数",
            f"近12个月{zh}造成伤亡{{value}}人{peer}人",
            "count",
            YEAR_WINDOW,
            f"people killed or injured in {c} events in the last 12 months",
            1,
            "window",
            variant="casualties",
        )
    )
    out += [
        f(
            f"{c}_decayed_hl{half_life_tag(h)}",
            f"{zh}近期加权数（半衰期{half_life_tag(h)}个月）",
            f"{zh}近期加权数{{value}}（半衰期{half_life_tag(h)}个月）{peer}",
            "decay",
            None,
            f"{c} events up to the as-of month, each weighted 2^(-age/{half_life_tag(h)}) with age in whole months "
            f"(0 for the as-of month)",
            1,
            "decay",
            half_life=float(h),
        )
        for h in params.half_lives
    ]
    h0 = float(params.half_lives[0])
    out += [
        f(
            f"{c}_months_since_last",
            f"距上次{zh}月数",
            f"距上次{zh}已{{value}}个月{peer}个月",
            "recency",
            None,
            f"whole months from the latest {c} event to the as-of month (0 = in the as-of month); "
            f"never in the panel or longer ago → {MONTHS_SINCE_CAP}",
            -1,
            "months_since",
        ),
        f(
            f"{c}_recency_decay",
            f"{zh}新近程度",
            f"{zh}新近程度{{value}}（1为本月发生）{peer}",
            "recency",
            None,
            f"2^(-months_since_last/{half_life_tag(h0)}) of the latest {c} event; 0 when there was none in the panel",
            1,
            "recency_decay",
            half_life=h0,
        ),
        f(
            f"{c}_max_severity_{YEAR_WINDOW}m",
            f"近12个月{zh}最高严重程度",
            f"近12个月{zh}最高严重程度{{value}}级{peer}级",
            "severity",
            YEAR_WINDOW,
            f"highest severity (1–4) of {c} events in the last 12 months; 0 if none or unknown",
            1,
            "max_severity",
        ),
        f(
            f"{c}_severe_count_{YEAR_WINDOW}m",
            f"近12个月较大及以上{zh}",
            f"近12个月较大及以上{zh}{{value}}起{peer}起",
            "severity",
            YEAR_WINDOW,
            f"{c} events with severity ≥ 3 in the last 12 months",
            1,
            "window",
            variant="severe",
        ),
        f(
            f"{c}_unresolved_backlog",
            f"未化解{zh}",
            f"目前未化解{zh}{{value}}起{peer}起",
            "backlog",
            None,
            f"{c} events that occurred up to the end of the as-of month and were still open then "
            f"(resolved_at empty or after that month)",
            1,
            "backlog",
        ),
        f(
            f"{c}_backlog_age_months",
            f"最久未化解{zh}挂账月数",
            f"最久未化解{zh}已挂账{{value}}个月{peer}个月",
            "backlog",
            None,
            f"age of the oldest open {c} event at the as-of month, in months counting its "
            f"own month as 1; 0 when nothing is open",
            1,
            "backlog_age",
        ),
        f(
            f"{c}_escalation_ratio_{YEAR_WINDOW}m",
            f"近12个月{zh}越级比例",
            f"近12个月{zh}越级比例{{value}}{peer}",
            "ratio",
            YEAR_WINDOW,
            f"escalated / (all + 1) {c} events of the last 12 months (0 when none)",
            1,
            "escalation_ratio",
        ),
        f(
            f"{c}_resolution_rate_{YEAR_WINDOW}m",
            f"近12个月{zh}化解率",
            f"近12个月{zh}化解率{{value}}{peer}",
            "ratio",
            YEAR_WINDOW,
            f"(resolved by the end of the as-of month + 1) / (all + 1) of the {c} events of "
            f"the last 12 months (1 when none)",
            -1,
            "resolution_rate",
        ),
        f(
            f"{c}_trend_3v12",
            f"{zh}近3个月升降趋势",
            f"{zh}近3个月月均为近12个月月均的{{value}}倍{peer}",
            "trend",
            SHORT_WINDOW,
            f"(3-month count + 1) / (12-month count / 4 + 1): above 1 when {c} is rising",
            1,
            "trend_ratio",
        ),
        f(
            f"{c}_yoy_change_{YEAR_WINDOW}m",
            f"近12个月{zh}同比变化",
            f"近12个月{zh}比上年同期增加{{value}}起{peer}起",
            "trend",
            YEAR_WINDOW,
            f"{c} count of the last 12 months minus that of the 12 months before",
            1,
            "yoy_change",
        ),
        f(
            f"{c}_quiet_{LONG_WINDOW}m",
            f"近24个月无{zh}",
            f"近24个月无{zh}（{{value}}）",
            "onset",
            LONG_WINDOW,
            f"1 if no {c} event occurred in the last 24 months, else 0",
            -1,
            "quiet",
        ),
    ]
    return out


def overall_features(params: FeatureParams) -> list[Feature]:
    g, gz = "overall", GROUP_ZH_FIXED["overall"]
    peer = "，同县同类单位平均{peer}"
    out = [
        Feature(
            f"events_count_{w}m",
            f"近{w}个月各类事件",
            f"近{w}个月各类风险事件{{value}}起{peer}起",
            "count",
            g,
            gz,
            None,
            w,
            f"events of all categories in the {w} months up to the as-of month",
            1,
            "window",
            variant="count",
        )
        for w in params.windows
    ]
    out += [
        Feature(
            f"casualties_count_{w}m",
            f"近{w}个月伤亡人数",
            f"近{w}个月各类事件造成伤亡{{value}}人{peer}人",
            "count",
            g,
            gz,
            None,
            w,
            f"people killed or injured in all events of the last {w} months",
            1,
            "window",
            variant="casualties",
        )
        for w in CASUALTY_WINDOWS
    ]
    out.append(
        Feature(
            "unresolved_backlog_total",
            "未化解事件总数",
            f"目前未化解各类事件{{value}}起{peer}起",
            "backlog",
            g,
            gz,
            None,
            None,
            "events of all categories still open at the end of the as-of month",
            1,
            "backlog",
        )
    )
    return out


def history_features(categories: Mapping[str, str]) -> list[Feature]:
    """The unit's long-run record since the panel's first month: its monthly rate of each category
    and how often its months met each tier's rule — a unit's persistent level of risk, which short
    windows estimate noisily."""
    g, gz = "history", GROUP_ZH_FIXED["history"]
    peer = "，同县同类单位平均{peer}"
    out = [
        Feature(
            f"{c}_rate_all",
            f"有记录以来月均{zh}",
            f"有记录以来月均{zh}{{value}}起{peer}起",
            "history",
            c,
            zh,
            c,
            None,
            f"{c} events per month from the panel's first month to the as-of month",
            1,
            "rate_all",
        )
        for c, zh in categories.items()
    ]
    out.append(
        Feature(
            "events_rate_all",
            "有记录以来月均各类事件",
            f"有记录以来月均各类事件{{value}}起{peer}起",
            "history",
            "overall",
            GROUP_ZH_FIXED["overall"],
            None,
            None,
            "events of all categories per month from the panel's first month to the as-of month",
            1,
            "rate_all",
        )
    )
    for name, _, zh in HISTORY_LEVELS:
        out.append(
            Feature(
                f"tier_share_{name}_all",
                f"以往达到{zh}预警标准的月份占比",
                f"以往{{value_pct}}的月份达到{zh}预警标准，同县同类单位平均{{peer_pct}}",
                "history",
                g,
                gz,
                None,
                None,
                f"share of the months from the panel's first month to the as-of month whose own events met the "
                f"{name} rule (or a higher one) of the configured tiers, judged at each month's end",
                1,
                "tier_share",
                variant=name,
            )
        )
    for name, _, zh in HISTORY_LEVELS[1:]:
        out.append(
            Feature(
                f"tier_months_{name}_{YEAR_WINDOW}m",
                f"近12个月达到{zh}预警标准的月数",
                f"近12个月有{{value}}个月达到{zh}预警标准{peer}个月",
                "history",
                g,
                gz,
                None,
                YEAR_WINDOW,
                f"months among the last 12 whose own events met the {name} rule (or a higher one)",
                1,
                "tier_months",
                variant=name,
            )
        )
    return out


def season_features() -> list[Feature]:
    g, gz = "season", GROUP_ZH_FIXED["season"]
    return [
        Feature(
            "season_month",
            "预测期月份",
            "预测期为{value}月",
            "season",
            g,
            gz,
            None,
            None,
            "month of year (1–12) of the first forecast month (as-of + 1)",
            0,
            "season_month",
        ),
        Feature(
            "season_month_sin",
            "预测期月份（正弦）",
            "预测期季节位置{value}",
            "season",
            g,
            gz,
            None,
            None,
            "sin(2π·(month-1)/12) of the first forecast month",
            0,
            "season_sin",
        ),
        Feature(
            "season_month_cos",
            "预测期月份（余弦）",
            "预测期季节位置{value}",
            "season",
            g,
            gz,
            None,
            None,
            "cos(2π·(month-1)/12) of the first forecast month",
            0,
            "season_cos",
        ),
        Feature(
            "months_to_spring_festival",
            "距春节月数",
            "预测期距春节{value}个月",
            "season",
            g,
            gz,
            None,
            None,
            "signed months from the 15th of the first forecast month to the nearest Spring Festival "
            "(positive: still ahead)",
            0,
            "spring_festival_months",
        ),
        Feature(
            "spring_festival_in_window",
            "预测期含春节",
            "预测期内有春节（{value}）",
            "season",
            g,
            gz,
            None,
            None,
            "1 if a Spring Festival falls in the forecast window (as-of+1 … as-of+horizon)",
            1,
            "spring_festival_in_window",
        ),
    ]
