"""The optional ``followups`` table (docs/data-contract.md): 双排查 visits kept outside sanling or exported from
it (``sanling followups export``), one row per visit — unit_id, visited_at, status, measures.

Read like the other tables (every ``followups*.csv|xlsx|parquet`` of the data directory, through
:mod:`sanling.pipeline.ingest.readers`), normalised here: Chinese headers accepted, a row with an
unknown unit, a bad date or a status outside 排查中 / 整改中 / 已整改 / 误报 is set aside with its
reason (the rejects' columns are those of the other tables). Visits only ever split the evaluation
(``summary.acted_on``); they are never a model feature.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.errors import DataError
from sanling.pipeline.ingest.normalise import REJECT_COLUMNS, REJECTED
from sanling.pipeline.ingest.parsers import clean_text, parse_dates
from sanling.pipeline.ingest.readers import locate_tables, read_table

TABLE = "followups"
STATUSES: tuple[str, ...] = ("排查中", "整改中", "已整改", "误报")
REQUIRED: tuple[str, ...] = ("unit_id", "visited_at", "status")
COLUMNS: tuple[str, ...] = (*REQUIRED, "measures")
ALIASES: dict[str, str] = {
    "unit_id": "unit_id",
    "单位编码": "unit_id",
    "单位代码": "unit_id",
    "统一社会信用代码": "unit_id",
    "visited_at": "visited_at",
    "排查日期": "visited_at",
    "排查时间": "visited_at",
    "走访日期": "visited_at",
    "status": "status",
    "状态": "status",
    "整改状态": "status",
    "排查状态": "status",
    "measures": "measures",
    "整改措施": "measures",
}


def normalise_followups(
    raw: pd.DataFrame, unit_ids: Iterable[str], *, file: str = TABLE, rows: np.ndarray | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A raw followups table → (visits: unit_id str, visited_at datetime64, status str, measures str,
    rejects in the ingestion's reject columns). A missing required column raises :class:`DataError`
    naming the file and the column."""
    named = {}
    for c in raw.columns:
        canonical = ALIASES.get(str(c).strip()) or ALIASES.get(str(c).strip().lower())
        if canonical and canonical not in named:
            named[canonical] = c
    missing = [c for c in REQUIRED if c not in named]
    if missing:
        raise DataError(
            f"{file}: followups table lacks column {missing[0]!r} "
            f"(accepted headers: {', '.join(k for k, v in ALIASES.items() if v == missing[0])})"
        )
    rows = np.arange(2, len(raw) + 2, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    unit = clean_text(raw[named["unit_id"]])
    dates = parse_dates(raw[named["visited_at"]])
    status = clean_text(raw[named["status"]])
    measures = (
        clean_text(raw[named["measures"]])
        if "measures" in named
        else pd.Series(pd.NA, index=raw.index, dtype="str")
    )
    known = set(map(str, unit_ids))
    checks = [
        ("unit_id", unit.isna().to_numpy(), "missing value"),
        (
            "unit_id",
            ~unit.isna().to_numpy() & ~unit.fillna("").isin(known).to_numpy(),
            "unit_id not in units",
        ),
        ("visited_at", dates.missing, "missing value"),
        ("visited_at", dates.invalid, "not a date"),
        ("status", status.isna().to_numpy(), "missing value"),
        (
            "status",
            ~status.isna().to_numpy() & ~status.fillna("").isin(STATUSES).to_numpy(),
            "status must be one of " + " / ".join(STATUSES),
        ),
    ]
    bad = np.zeros(len(raw), dtype=bool)
    column = np.full(len(raw), "", dtype=object)
    reason = np.full(len(raw), "", dtype=object)
    for col, mask, why in checks:
        new = np.asarray(mask, dtype=bool) & ~bad
        column[new], reason[new] = col, why
        bad |= new
    idx = np.flatnonzero(bad)
    source = {"unit_id": unit, "visited_at": clean_text(raw[named["visited_at"]]), "status": status}
    rejects = pd.DataFrame(
        {
            "table": TABLE,
            "file": file,
            "row": rows[idx],
            "kind": REJECTED,
            "column": column[idx],
            "value": [
                source[c].iloc[i] if not pd.isna(source[c].iloc[i]) else ""
                for c, i in zip(column[idx], idx, strict=True)
            ],
            "reason": reason[idx],
            "other_reasons": "",
            "record": raw.iloc[idx]
            .astype(str)
            .to_json(orient="records", lines=True, force_ascii=False)
            .splitlines()
            if len(idx)
            else [],
        },
        columns=list(REJECT_COLUMNS),
    )
    ok = ~bad
    visits = pd.DataFrame(
        {
            "unit_id": unit[ok].astype(str).to_numpy(),
            "visited_at": dates.values[ok].to_numpy(),
            "status": status[ok].astype(str).to_numpy(),
            "measures": measures[ok].to_numpy(),
        }
    )
    return visits.sort_values(["unit_id", "visited_at"], kind="stable").reset_index(drop=True), rejects


def load_followups(data_dir: Path, unit_ids: Iterable[str]) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """The data directory's visits (``None`` when it has no followups table) and their rejects."""
    files = locate_tables(Path(data_dir), tables=(), optional=(TABLE,))
    if TABLE not in files:
        return None, pd.DataFrame(columns=list(REJECT_COLUMNS))
    # Every file and sheet of the table at once, headers found under title rows like any ledger's.
    raw = read_table(TABLE, files[TABLE], required=REQUIRED, known=COLUMNS)
    return normalise_followups(raw.frame, list(unit_ids), file=raw.file, rows=raw.rows)


# The store keeps 待排查 for a unit put on the list but not yet visited: no visit to export.
NOT_VISITED = "待排查"


def export_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Store follow-up records (``unit_id, screened_on, status, measures``) → the followups table
    (unit_id, visited_at YYYY-MM-DD, status, measures), oldest visit first; records without a
    screening date or still 待排查 are left out."""
    rows = [
        {
            "unit_id": r["unit_id"],
            "visited_at": r["screened_on"].isoformat(),
            "status": r["status"],
            "measures": r.get("measures") or "",
        }
        for r in records
        if r.get("screened_on") and r.get("status") in STATUSES
    ]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values(["visited_at", "unit_id"], kind="stable").reset_index(drop=True)


def check_followups(
    data_dir: Path, units: pd.DataFrame, workdir: Path
) -> tuple[pd.DataFrame | None, str | None]:
    """Read the directory's followups table against ``units``; its rejects go to
    ``<workdir>/followups_rejects.csv`` (removed when there are none). Returns the visits (``None``
    without a table) and a one-line summary for the user (``None`` without a table)."""
    visits, rejects = load_followups(Path(data_dir), units["unit_id"])
    path = Path(workdir) / "followups_rejects.csv"
    if visits is None:
        return None, None
    if len(rejects):
        tmp = path.with_suffix(".csv.tmp")
        rejects.to_csv(tmp, index=False, encoding="utf-8-sig")
        tmp.replace(path)
        first = rejects.iloc[0]
        return visits, (
            f"followups: {len(visits):,} visits accepted, {len(rejects):,} set aside "
            f"(e.g. {first['file']} row {first['row']}, {first['column']}: {first['reason']}); see {path}"
        )
    path.unlink(missing_ok=True)
    return visits, f"followups: {len(visits):,} visits accepted"
