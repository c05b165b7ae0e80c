"""The monthly bulletin (月度通报, 长治's 定期排名通报 and 晋城's 五个一 monthly report) for one county.

Pure functions over store rows (plain dicts, as :mod:`serving.pages.queries` reads them): no I/O
except :func:`bulletin_xlsx`, which only turns a built bulletin into bytes.

Definitions shown on the page (so a reader can check them):

* *counts by tier* — units of the county in each tier at the as-of month, and the change against
  the previous scored month;
* *red+orange share* of a township — units in 红 or 橙 ÷ listed units of the township;
* *follow-up completion* (整改完成率) — of the township's 红/橙 units, the share whose latest
  follow-up record has status 已整改 or 误报; *screening coverage* (排查覆盖率) — the share with
  any follow-up record at all. A township without 红/橙 units has no rate (shown as —);
* *new red units* — red this month and not red (or not scored) the month before.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pandas as pd

from sanling.core.vocabulary import TIER_ZH, TIERS, UNIT_TYPE_ZH
from sanling.serving.spreadsheet import append_row

DONE_STATUSES: tuple[str, ...] = ("已整改", "误报")
FOLLOWUP_STATUSES: tuple[str, ...] = ("待排查", "排查中", "已整改", "误报")
NOT_SCREENED = "未排查"
_HOT = ("red", "orange")


@dataclass(frozen=True)
class Bulletin:
    """A built bulletin: everything the page and the download show."""

    county: str
    as_of: str
    previous_as_of: str | None
    tier_counts: list[dict]  # tier, tier_zh, n, n_prev, delta
    townships: list[
        dict
    ]  # township, n_units, n_red, n_orange, hot_share, n_screened, n_done, completion, rank_hot, rank_done
    new_red: list[
        dict
    ]  # unit_id, unit_name, township, unit_type_zh, risk_score, prev_tier_zh, reasons (text_zh list)
    n_units: int = 0
    notes: list[str] = field(default_factory=list)


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)
    for c in columns:
        if c not in df.columns:
            df[c] = None
    return df


def build_bulletin(
    county: str,
    as_of: str,
    current: list[dict],
    previous: list[dict],
    latest_followups: list[dict],
    previous_as_of: str | None = None,
    n_reasons: int = 3,
) -> Bulletin:
    """Build the bulletin of one county for one month.

    Parameters
    ----------
    current : the county's scores at ``as_of``, one dict per unit with ``unit_id, unit_name,
        unit_type, township, tier, risk_score, reasons`` (reasons: list of dicts with ``text_zh``).
    previous : the scores of the previous scored month (``unit_id, tier``), possibly empty.
    latest_followups : the latest follow-up of each unit (``unit_id, status``); units without one
        are 未排查.

    Returns a :class:`Bulletin`; townships are ordered by red+orange share (highest first), and
    carry both rankings (``rank_hot``: 1 = largest share; ``rank_done``: 1 = best completion).
    """
    cur = _frame(current, ["unit_id", "unit_name", "unit_type", "township", "tier", "risk_score", "reasons"])
    prev = _frame(previous, ["unit_id", "tier"])
    fu = _frame(latest_followups, ["unit_id", "status"])
    bad = set(cur["tier"].dropna()) - set(TIERS)
    if bad:
        raise ValueError(f"unknown tier(s) in scores: {sorted(bad)}")

    n_now = cur["tier"].value_counts().reindex(list(TIERS), fill_value=0)
    n_prev = prev["tier"].value_counts().reindex(list(TIERS), fill_value=0)
    has_prev = len(prev) > 0
    tier_counts = [
        {
            "tier": t,
            "tier_zh": TIER_ZH[t],
            "n": int(n_now[t]),
            "n_prev": int(n_prev[t]) if has_prev else None,
            "delta": int(n_now[t] - n_prev[t]) if has_prev else None,
        }
        for t in reversed(TIERS)
    ]

    status = fu.drop_duplicates("unit_id", keep="last").set_index("unit_id")["status"]
    cur = cur.assign(
        status=cur["unit_id"].map(status).fillna(NOT_SCREENED),
        hot=cur["tier"].isin(_HOT),
    )
    cur["screened"] = cur["hot"] & (cur["status"] != NOT_SCREENED)
    cur["done"] = cur["hot"] & cur["status"].isin(DONE_STATUSES)
    g = cur.groupby("township", sort=True)
    town = pd.DataFrame(
        {
            "n_units": g.size(),
            "n_red": g["tier"].agg(lambda s: int((s == "red").sum())),
            "n_orange": g["tier"].agg(lambda s: int((s == "orange").sum())),
            "n_hot": g["hot"].sum(),
            "n_screened": g["screened"].sum(),
            "n_done": g["done"].sum(),
        }
    ).reset_index()
    town["hot_share"] = town["n_hot"] / town["n_units"]
    town["completion"] = (town["n_done"] / town["n_hot"]).where(town["n_hot"] > 0)
    town["coverage"] = (town["n_screened"] / town["n_hot"]).where(town["n_hot"] > 0)
    town["rank_hot"] = town["hot_share"].rank(ascending=False, method="min").astype(int)
    # Townships without red/orange units have nothing to rectify: they are not ranked on completion.
    town["rank_done"] = town["completion"].rank(ascending=False, method="min").astype("Int64")
    town = town.sort_values(["hot_share", "township"], ascending=[False, True])
    townships = [
        {k: (None if pd.isna(v) else (int(v) if k.startswith(("n_", "rank_")) else v)) for k, v in r.items()}
        for r in town.to_dict("records")
    ]

    prev_tier = prev.drop_duplicates("unit_id").set_index("unit_id")["tier"]
    cur["prev_tier"] = cur["unit_id"].map(prev_tier)
    new_red = cur[(cur["tier"] == "red") & (cur["prev_tier"] != "red")].sort_values(
        "risk_score", ascending=False
    )
    new_red_rows = [
        {
            "unit_id": r["unit_id"],
            "unit_name": r["unit_name"],
            "township": r["township"],
            "unit_type_zh": UNIT_TYPE_ZH.get(r["unit_type"], r["unit_type"]),
            "risk_score": float(r["risk_score"]),
            "prev_tier_zh": TIER_ZH.get(r["prev_tier"], "新") if isinstance(r["prev_tier"], str) else "新",
            "reasons": [x.get("text_zh", "") for x in (r["reasons"] or [])[:n_reasons]],
            "status": r["status"],
        }
        for r in new_red.to_dict("records")
    ]
    notes = [] if has_prev else ["无上月评分，环比变化不可计算。"]
    return Bulletin(
        county=county,
        as_of=as_of,
        previous_as_of=previous_as_of if has_prev else None,
        tier_counts=tier_counts,
        townships=townships,
        new_red=new_red_rows,
        n_units=len(cur),
        notes=notes,
    )


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def bulletin_xlsx(b: Bulletin) -> bytes:
    """The bulletin as an Excel workbook (three sheets: 分级统计, 乡镇排名, 新增红色预警)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "分级统计"
    append_row(ws, [f"{b.county} 三零单位风险预警月度通报（{b.as_of}）"])
    ws["A1"].font = Font(bold=True, size=14)
    append_row(ws, ["预警等级", "本月单位数", "上月单位数", "环比变化"])
    for r in b.tier_counts:
        append_row(ws, [r["tier_zh"], r["n"], r["n_prev"], r["delta"]])
    append_row(ws, ["合计", b.n_units])

    ws = wb.create_sheet("乡镇排名")
    append_row(
        ws,
        [
            "红橙占比排名",
            "乡镇（街道）",
            "单位数",
            "红色",
            "橙色",
            "红橙占比",
            "已排查",
            "已整改/误报",
            "整改完成率",
            "完成率排名",
        ],
    )
    for r in b.townships:
        append_row(
            ws,
            [
                r["rank_hot"],
                r["township"],
                r["n_units"],
                r["n_red"],
                r["n_orange"],
                _pct(r["hot_share"]),
                r["n_screened"],
                r["n_done"],
                _pct(r["completion"]),
                r["rank_done"],
            ],
        )

    ws = wb.create_sheet("新增红色预警")
    append_row(
        ws, ["单位编码", "单位名称", "乡镇（街道）", "类型", "风险分", "上月等级", "排查状态", "主要原因"]
    )
    for r in b.new_red:
        append_row(
            ws,
            [
                r["unit_id"],
                r["unit_name"],
                r["township"],
                r["unit_type_zh"],
                round(r["risk_score"], 1),
                r["prev_tier_zh"],
                r["status"],
                "；".join(r["reasons"]),
            ],
        )
    for sheet in wb.worksheets:
        for col, width in zip("ABCDEFGHIJ", (14, 22, 16, 10, 10, 10, 10, 12, 12, 10), strict=True):
            sheet.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
