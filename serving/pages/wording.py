"""Sentences the township pages say in plain Chinese about a forecast: how it compares with peers,
what last month's warnings came to, and how sure the tier is. Pure: numbers in, text out."""

from __future__ import annotations

from collections.abc import Sequence

from sanling.core.vocabulary import TIER_ZH

# The coverage the model's conformal tier sets are calibrated to (the model's default; docs/metrics.md).
TIER_SET_LEVEL = 0.9
PEER_NOUN_ZH: dict[str, str] = {"village": "村庄", "community": "社区", "enterprise": "企事业单位"}


def _pct(p: float) -> str:
    v = 100 * float(p)
    return f"{v:.0f}%" if v >= 1 or v == 0 else "不足1%"


def relative_sentence(p_red: float, relative_red: float | None, unit_type: str | None) -> str:
    """ "下月发生红色事件的概率8%，是同县同类村庄的2.4倍" (without the comparison when it is unknown)."""
    head = f"下月发生红色事件的概率{_pct(p_red)}"
    if relative_red is None:
        return head
    noun = PEER_NOUN_ZH.get(unit_type or "", "单位")
    r = float(relative_red)
    if 0.95 <= r <= 1.05:
        return f"{head}，与同县同类{noun}持平"
    return f"{head}，是同县同类{noun}的{r:.1f}倍"


def hits_sentence(month: str, n_red_warned: int, n_red_hit: int | None) -> str:
    """ "上月红色预警3个，其中2个发生红色事件" (``n_red_hit`` None: the month's window is still open)."""
    label = f"上月（{month}）红色预警{n_red_warned}个"
    if n_red_warned == 0:
        return label
    if n_red_hit is None:
        return f"{label}，结果尚待观察"
    return f"{label}，其中{n_red_hit}个发生红色事件"


def tier_set_text(tiers: Sequence[str], level: float = TIER_SET_LEVEL) -> str:
    """ "有90%的把握，下月等级在橙、红之中" for a set of more than one tier; "" otherwise."""
    if len(tiers) <= 1:
        return ""
    names = "、".join(TIER_ZH[t] for t in tiers)
    return f"有{100 * level:.0f}%的把握，下月等级在{names}之中"


def record_sentence(forecast: dict[str, str], observed: dict[str, str]) -> str:
    """The unit's own record over the strip's months: "近24个月中预测红色3次，其中2次发生红色事件"
    (counting only months whose outcome is known); "" when it was never forecast red."""
    red = [m for m, t in forecast.items() if t == "red"]
    known = [m for m in red if m in observed]
    if not red:
        return ""
    text = f"以上月份中预测红色{len(red)}次"
    if known:
        text += f"，已知结果的{len(known)}次中{sum(observed[m] == 'red' for m in known)}次发生红色事件"
    return text


def intensity_sentence(reporting: dict | None, unit_type: str | None) -> str:
    """ "网格员每千人3.2名，是同县同类村庄平均的1.6倍：上报较勤，记录的事件可能偏多" — how hard the unit's
    events are looked for against its peers, and what that means for its counts; "" without it."""
    if not reporting or reporting.get("value") is None:
        return ""
    noun = PEER_NOUN_ZH.get(unit_type or "", "单位")
    label, value, ratio = (
        reporting.get("label_zh") or "上报力度",
        float(reporting["value"]),
        reporting.get("ratio"),
    )
    head = f"{label}{value:.1f}"
    if ratio is None:
        return head
    if ratio >= 1.2:
        return f"{head}，是同县同类{noun}平均的{ratio:.1f}倍：上报较勤，记录的事件可能偏多，风险未必更高"
    if ratio <= 0.8:
        return f"{head}，是同县同类{noun}平均的{ratio:.1f}倍：上报较少，可能有事件未被记录"
    return f"{head}，与同县同类{noun}平均相当"


def late_records_note(late: dict | None) -> tuple[str, str]:
    """("含补录事件2起、事后越级1起、更正3处", the tooltip explaining it) — what the unit's figures of
    the month hold that was recorded after the fact; ("", "") when nothing was, or without
    reporting dates."""
    if not late:
        return "", ""
    parts = []
    if late.get("events"):
        parts.append(f"补录事件{int(late['events'])}起")
    if late.get("escalations"):
        parts.append(f"事后越级{int(late['escalations'])}起")
    if late.get("corrections"):
        parts.append(f"更正{int(late['corrections'])}处")
    if not parts:
        return "", ""
    window = int(late.get("window_months") or 12)
    tip = (
        f"近{window}个月的统计中，有的事件在发生当月之后才登记（补录），有的越级发生在事件当月之后，"
        "有的严重程度、伤亡或化解情况事后更正。本月评分只用本月底已登记的内容；"
        "早先月份的评分当时看不到这些记录，因此前后数字可能不同。"
    )
    return "含" + "、".join(parts), tip
