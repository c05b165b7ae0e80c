"""The ingestion report: what was read, accepted, rejected (by reason) and replaced, and what the
accepted data looks like. Stored as ``report.json`` beside the normalised Parquet and printed by
``sanling validate``."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sanling.core.months import datetimes_to_month_numbers
from sanling.core.vocabulary import UNIT_TYPE_ZH, UNIT_TYPES
from sanling.pipeline.ingest.ledger import row_ranges
from sanling.pipeline.ingest.normalise import REJECTED, Normalised
from sanling.pipeline.ingest.readers import RawTable

MONTHS_SHOWN = 12


@dataclass(frozen=True)
class TableReport:
    """Counts for one input table. ``rows_read == accepted + rejected + replaced_duplicates``."""

    table: str
    file: str
    format: str
    encoding: str | None
    rows_read: int
    accepted: int
    rejected: int
    replaced_duplicates: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)  # "column: reason" → rows
    warnings: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)  # units: attribute → numeric | text
    blank_rows: int = 0
    # Ledgers as kept (docs/data-contract.md): per file or sheet read — file, sheet, label,
    # header_rows [first, last] (None for Parquet), records, skipped {reason: row ranges} — and the
    # sheets skipped as holding no records (file, sheet, reason).
    sources: list[dict[str, Any]] = field(default_factory=list)
    skipped_sheets: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class IngestReport:
    """What one ingestion of a data directory found; :meth:`summary` is the text ``validate`` prints."""

    source: str
    workdir: str
    rejects_path: str
    units: TableReport
    events: TableReport
    first_event: str | None  # YYYY-MM-DD
    last_event: str | None
    units_by_type: dict[str, int]
    events_by_category: dict[str, int]  # sum of ``count``
    events_by_month: dict[str, dict[str, int]]  # YYYY-MM → category → sum of ``count``
    categories: dict[str, str]
    fingerprint: dict[str, Any]
    from_cache: bool = False
    event_updates: TableReport | None = None
    unit_history: TableReport | None = None
    reporting: dict[str, Any] = field(default_factory=dict)  # see :func:`reporting_profile`

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``report.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestReport:
        """The inverse of :meth:`to_dict`."""
        d = dict(d)
        d["units"] = TableReport(**d["units"])
        d["events"] = TableReport(**d["events"])
        for name in ("event_updates", "unit_history"):
            if d.get(name):
                d[name] = TableReport(**d[name])
        return cls(**d)

    def cached(self) -> IngestReport:
        return replace(self, from_cache=True)

    def summary(self) -> str:
        """A plain-text summary for a terminal, Chinese labels first, in a few dozen lines."""
        lines = [f"数据目录 data: {self.source}" + ("  (缓存 cached)" if self.from_cache else "")]
        for t in (self.units, self.events, self.event_updates, self.unit_history):
            if t is None:
                continue
            enc = f", {t.encoding}" if t.encoding else ""
            lines.append(
                f"{_TABLE_ZH[t.table]} {t.table} ({t.file}{enc}): 读取 read {t.rows_read:,} · 接受 accepted "
                f"{t.accepted:,} · 拒绝 rejected {t.rejected:,} · 重复替换 replaced duplicates "
                f"{t.replaced_duplicates:,}"
            )
            for reason, n in sorted(t.rejected_by_reason.items(), key=lambda kv: -kv[1]):
                lines.append(f"    拒绝 {n:>8,}  {reason}")
            for warning, n in t.warnings.items():
                lines.append(f"    提示 {n:>8,}  {warning}")
            if t.ignored_columns:
                lines.append(f"    忽略的列 ignored columns: {', '.join(t.ignored_columns)}")
            if t.attributes:
                attrs = ", ".join(
                    f"{a} ({'数值' if k == 'numeric' else '文本'})" for a, k in t.attributes.items()
                )
                lines.append(f"    静态属性 attributes: {attrs}")
            if t.blank_rows:
                lines.append(f"    空行 blank rows skipped: {t.blank_rows:,}")
            lines.extend(_source_lines(t))
        lines.append(f"拒绝记录 rejects file: {self.rejects_path}")
        lines.append(f"规范化数据 normalised data: {self.workdir}")
        if self.first_event:
            lines.append(
                f"事件时间范围 events from {self.first_event} to {self.last_event} "
                f"({len(self.events_by_month)} 个月 months)"
            )
        lines.append(
            "单位类型 units by type: "
            + " · ".join(f"{UNIT_TYPE_ZH.get(k, k)} {k} {n:,}" for k, n in self.units_by_type.items())
        )
        lines.append(
            "事件类别 events by category: "
            + " · ".join(f"{self.categories.get(k, k)} {k} {n:,}" for k, n in self.events_by_category.items())
        )
        lines.extend(self._month_table())
        lines.extend(_reporting_lines(self.reporting))
        return "\n".join(lines)

    def _month_table(self) -> list[str]:
        months = sorted(self.events_by_month)
        if not months:
            return []
        shown = months[-MONTHS_SHOWN:]
        title = "按月事件数 events by month" + (
            f" (最近 last {len(shown)} of {len(months)} 个月)" if len(shown) < len(months) else ""
        )
        cats = list(self.events_by_category)
        header = ["月份", *(self.categories.get(c, c) for c in cats), "合计"]
        body = []
        for m in shown:
            row = [self.events_by_month[m].get(c, 0) for c in cats]
            body.append([m, *(f"{v:,}" for v in row), f"{sum(row):,}"])
        widths = [max(_width(r[i]) for r in [header, *body]) for i in range(len(header))]
        out = [title]
        for r in [header, *body]:
            cells = [
                _pad(r[0], widths[0], left=True),
                *(_pad(v, w) for v, w in zip(r[1:], widths[1:], strict=True)),
            ]
            out.append("  " + "  ".join(cells))
        return out


_TABLE_ZH = {
    "units": "单位台账",
    "events": "风险事件",
    "event_updates": "续报更正",
    "unit_history": "属性变更",
}


def _reporting_lines(r: dict[str, Any]) -> list[str]:
    """The "what was known when" part of the summary (empty when nothing was recorded late)."""
    out = []
    for key, title in (
        ("reporting_delay", "登记延迟 reporting delay"),
        ("escalation_delay", "越级延迟 escalation delay"),
    ):
        d = r.get(key)
        if d:
            out.append(
                f"{title} (days after occurred_at, {d['n']:,} events): 中位数 median {d['median_days']:g} · "
                f"90% {d['p90_days']:g} · 当月之后登记 after the month ended {d['after_month_share']:.1%}"
            )
    if r.get("corrections_by_field"):
        parts = " · ".join(f"{k} {n:,}" for k, n in r["corrections_by_field"].items())
        out.append(f"更正 corrections by field: {parts}")
    if r.get("history_by_attribute"):
        parts = " · ".join(f"{k} {n:,}" for k, n in r["history_by_attribute"].items())
        out.append(f"属性变更 attribute history (entries): {parts}")
    return out


def _delay(later: pd.Series, occurred: pd.Series) -> dict[str, Any] | None:
    """Median and 90th percentile of the delay in days, and the share dated after the month ended."""
    has = later.notna() & occurred.notna()
    if not has.any():
        return None
    days = (later[has] - occurred[has]).dt.total_seconds().to_numpy() / 86400.0
    after = datetimes_to_month_numbers(later[has].to_numpy()) > datetimes_to_month_numbers(
        occurred[has].to_numpy()
    )
    return {
        "n": int(has.sum()),
        "median_days": round(float(np.median(days)), 1),
        "p90_days": round(float(np.quantile(days, 0.9)), 1),
        "after_month_share": float(after.mean()),
    }


def reporting_profile(
    events: pd.DataFrame,
    updates: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    *,
    dated_columns: tuple[str, ...] = ("reported_at", "escalated_at"),
) -> dict[str, Any]:
    """Reporting delays (``reported_at`` − ``occurred_at``; escalations: ``escalated_at`` −
    ``occurred_at`` of escalated events) for the ``dated_columns`` the input gave, corrections per
    field and history entries per attribute."""
    out: dict[str, Any] = {}
    occ = events["occurred_at"]
    if "reported_at" in dated_columns and "reported_at" in events:
        out["reporting_delay"] = _delay(events["reported_at"], occ)
    if "escalated_at" in dated_columns and "escalated_at" in events:
        esc = events["escalated"].astype(bool)
        out["escalation_delay"] = _delay(events["escalated_at"][esc], occ[esc])
    if updates is not None and len(updates):
        out["corrections_by_field"] = {str(k): int(v) for k, v in updates["field"].value_counts().items()}
    if history is not None and len(history):
        out["history_by_attribute"] = {str(k): int(v) for k, v in history["attribute"].value_counts().items()}
    return {k: v for k, v in out.items() if v}


def _source_lines(t: TableReport) -> list[str]:
    """Where each file or sheet had its header and which rows were skipped — shown when the table
    is not one plain file with its header in row 1."""
    plain = len(t.sources) <= 1 and not t.skipped_sheets
    plain &= all(s["header_rows"] in (None, [1, 1]) and not s["skipped"] for s in t.sources)
    if plain:
        return []
    lines = []
    for s in t.sources:
        parts = []
        if s["header_rows"] is not None:
            first, last = s["header_rows"]
            parts.append(f"表头 header row {first}" if first == last else f"表头 header rows {first}–{last}")
        parts.append(f"记录 records {s['records']:,}")
        if s["skipped"]:
            skipped = "; ".join(
                f"{reason} row{'s' if ('–' in rows or ',' in rows) else ''} {rows}"
                for reason, rows in s["skipped"].items()
            )
            parts.append(f"跳过 skipped: {skipped}")
        lines.append(f"    {s['label']}: " + " · ".join(parts))
    if t.skipped_sheets:
        names = ", ".join(f"{s['file']} [{s['sheet']}]" for s in t.skipped_sheets)
        lines.append(f"    跳过的工作表 skipped sheets: {names}")
    return lines


def _width(text: str) -> int:
    # CJK characters take two terminal columns; alignment needs display width, not len().
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, *, left: bool = False) -> str:
    gap = " " * (width - _width(text))
    return text + gap if left else gap + text


def table_report(raw: RawTable, norm: Normalised) -> TableReport:
    """Counts of one table from its raw read and its normalisation."""
    rejected = norm.rejects[norm.rejects["kind"] == REJECTED]
    by_reason = (rejected["column"] + ": " + rejected["reason"]).value_counts()
    return TableReport(
        table=raw.name,
        file=raw.file,
        format=raw.format,
        encoding=raw.encoding,
        rows_read=norm.rows_read,
        accepted=len(norm.frame),
        rejected=norm.rejected,
        replaced_duplicates=norm.replaced,
        rejected_by_reason={
            str(k): int(v) for k, v in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        },
        warnings=dict(norm.warnings),
        ignored_columns=list(norm.ignored_columns),
        attributes=dict(norm.attributes),
        blank_rows=raw.blank_rows,
        sources=[
            {
                "file": p.file,
                "sheet": p.sheet,
                "label": p.label,
                "header_rows": None if p.header_rows is None else list(p.header_rows),
                "records": p.records,
                "skipped": {reason: row_ranges(rows) for reason, rows in p.skipped.items()},
            }
            for p in raw.parts
        ],
        skipped_sheets=[{"file": s.file, "sheet": s.sheet, "reason": s.reason} for s in raw.skipped_sheets],
    )


def data_profile(units: pd.DataFrame, events: pd.DataFrame, categories: dict[str, str]) -> dict[str, Any]:
    """Units by type, events (sum of ``count``) by category and by month, first and last event date."""
    type_counts = units["unit_type"].value_counts()
    units_by_type = {t: int(type_counts.get(t, 0)) for t in UNIT_TYPES}
    cats = list(categories)
    by_cat = events.groupby("category", observed=True)["count"].sum()
    events_by_category = {c: int(by_cat.get(c, 0)) for c in cats}
    by_month: dict[str, dict[str, int]] = {}
    first = last = None
    if len(events):
        occ = events["occurred_at"]
        # Month keys as integers (year·12 + month): formatting 6 M timestamps as strings is slow.
        key = (occ.dt.year.to_numpy() * 12 + occ.dt.month.to_numpy() - 1).astype(np.int64)
        cat_code = pd.Categorical(events["category"], categories=cats).codes
        lo = int(key.min())
        n_months = int(key.max()) - lo + 1
        flat = (key - lo) * len(cats) + cat_code
        weights = events["count"].to_numpy(dtype=np.float64)
        counts = np.bincount(flat, weights=weights, minlength=n_months * len(cats)).round().astype(np.int64)
        counts = counts.reshape(n_months, len(cats))
        for i in range(n_months):
            y, m = divmod(lo + i, 12)
            by_month[f"{y:04d}-{m + 1:02d}"] = {c: int(v) for c, v in zip(cats, counts[i], strict=True)}
        first = occ.min().strftime("%Y-%m-%d")
        last = occ.max().strftime("%Y-%m-%d")
    return {
        "first_event": first,
        "last_event": last,
        "units_by_type": units_by_type,
        "events_by_category": events_by_category,
        "events_by_month": by_month,
    }
