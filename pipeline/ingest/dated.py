"""The optional dated tables (docs/data-contract.md): ``event_updates`` (续报/更正, later
corrections of an event) and ``unit_history`` (attribute values valid from a date) → normalised
frames and rejects, with the same checks, reasons and counts as the two main tables.

``event_updates`` normalised: event_id (str), field (str, canonical), value (str, canonical:
severity/casualties as whole numbers, escalated ``true``/``false``, resolved_at ``YYYY-MM-DD`` or
empty for "reopened", category its canonical name, subtype the text), recorded_at (datetime64[ns]).
``unit_history`` normalised: unit_id (str), attribute (str), value (str; a number in its plain
form), valid_from (datetime64[ns]). Rows keep their file order (it breaks ties of equal dates).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from sanling.core.vocabulary import (
    COLUMN_ALIASES,
    HISTORY_COLUMNS,
    IDENTITY_COLUMNS,
    UPDATE_COLUMNS,
    UPDATE_FIELD_ALIASES,
)
from sanling.pipeline.ingest.normalise import (
    MISSING,
    Normalised,
    _Check,
    _concat_rejects,
    _reject,
    _rows,
)
from sanling.pipeline.ingest.parsers import (
    SEVERITY_WORDS,
    clean_text,
    map_words,
    parse_bools,
    parse_dates,
    parse_floats,
    parse_ints,
    text_isin,
)

DATE_REASON = "not a date (or outside 1900–2100)"


def canonical_dated_columns(frame: pd.DataFrame, *, table: str, file: str) -> pd.DataFrame:
    """Headers → canonical names (English any case, or a Chinese alias); the table's four columns
    are all required. Raises :class:`DataError` naming the file when one is missing."""
    from sanling.core.errors import DataError

    wanted = UPDATE_COLUMNS if table == "event_updates" else HISTORY_COLUMNS
    names: dict[str, int] = {}
    for pos, header in enumerate(frame.columns):
        written = str(header).replace("\ufeff", "").strip()
        name = written.lower() if written.lower() in wanted else COLUMN_ALIASES.get(written, written)
        if name in wanted and name not in names:
            names[name] = pos
    missing = [c for c in wanted if c not in names]
    if missing:
        aliases = {c: "/".join(zh for zh, k in COLUMN_ALIASES.items() if k == c) for c in missing}
        what = ", ".join(f"'{c}' ({aliases[c] or 'no alias'})" for c in missing)
        raise DataError(f"{file}: missing required column(s) {what}")
    return pd.DataFrame({n: frame.iloc[:, p] for n, p in names.items()}, index=frame.index)


def normalise_updates(
    raw: pd.DataFrame,
    *,
    events: pd.DataFrame,
    categories: Mapping[str, str],
    file: str = "event_updates",
    rows: np.ndarray | None = None,
) -> Normalised:
    """Raw corrections → normalised ``event_updates`` and rejects.

    ``events``: the accepted, normalised events (an update of any other event is rejected, and so is
    one recorded before its event occurred). A value is checked against its field's type: severity
    1–4 (or 一般…特别重大), casualties a whole number ≥ 0, escalated yes/no, resolved_at a date (or
    empty: reopened), category a configured category.
    """
    rows = _rows(raw, rows)
    frame = canonical_dated_columns(raw, table="event_updates", file=file)
    event_id = clean_text(frame["event_id"])
    field_text = clean_text(frame["field"])
    field = map_words(field_text, UPDATE_FIELD_ALIASES)
    text = clean_text(frame["value"])
    recorded = parse_dates(frame["recorded_at"])

    ids = pd.Index(events["event_id"].to_numpy(dtype=object))
    known = text_isin(event_id, ids)
    pos = ids.get_indexer(event_id.fillna("").to_numpy(dtype=object))
    occurred = pd.Series(
        events["occurred_at"].to_numpy(dtype="datetime64[ns]")[np.maximum(pos, 0)], index=frame.index
    ).where(pos >= 0)
    before = (recorded.values < occurred.dt.normalize()).to_numpy(dtype=bool, na_value=False)

    value = pd.Series(pd.NA, index=frame.index, dtype="str")
    bad_value = np.zeros(len(frame), dtype=bool)
    lookup = {k.lower(): k for k in categories} | {v: k for k, v in categories.items()}
    for name in UPDATE_FIELD_ALIASES.values():
        sel = (field == name).to_numpy(dtype=bool, na_value=False)
        if not sel.any():
            continue
        part = text[sel]
        if name == "severity":
            p = parse_ints(frame["value"][sel], lo=1, hi=4, words=SEVERITY_WORDS)
            ok, out = ~p.invalid & ~p.missing, p.values.astype("Int64").astype("str")
        elif name == "casualties":
            p = parse_ints(frame["value"][sel], lo=0)
            ok, out = ~p.invalid & ~p.missing, p.values.astype("Int64").astype("str")
        elif name == "escalated":
            p = parse_bools(frame["value"][sel])
            ok, out = ~p.invalid & ~p.missing, p.values.map({True: "true", False: "false"}).astype("str")
        elif name == "resolved_at":
            p = parse_dates(frame["value"][sel])
            ok = ~p.invalid
            out = p.values.dt.strftime("%Y-%m-%d").fillna("")
        elif name == "category":
            out = map_words(part, lookup)
            ok = out.notna().to_numpy()
        else:  # subtype: any text
            ok, out = part.notna().to_numpy(), part
        value[sel] = np.where(ok, out.astype("str").fillna("").to_numpy(dtype=object), None)
        bad_value[np.flatnonzero(sel)[~ok]] = True

    fields = "/".join(dict.fromkeys(UPDATE_FIELD_ALIASES.values()))
    checks = [
        _Check("event_id", event_id.isna().to_numpy(), MISSING),
        _Check("event_id", event_id.notna().to_numpy() & ~known, "unknown event_id (not an accepted event)"),
        _Check("field", field_text.isna().to_numpy(), MISSING),
        _Check("field", (field.isna() & field_text.notna()).to_numpy(), f"unknown field (use {fields})"),
        _Check("value", bad_value, "not a value of that field's type"),
        _Check("recorded_at", recorded.missing, MISSING),
        _Check("recorded_at", recorded.invalid, DATE_REASON),
        _Check("recorded_at", before, "before the event's occurred_at"),
    ]
    bad, rejects = _reject(raw, frame, rows, checks, table="event_updates", file=file)
    out = pd.DataFrame(
        {"event_id": event_id, "field": field, "value": value.fillna(""), "recorded_at": recorded.values}
    ).loc[~bad]
    for c in ("event_id", "field", "value"):
        out[c] = out[c].astype("str")
    out["recorded_at"] = out["recorded_at"].astype("datetime64[ns]")
    return Normalised(
        frame=out.reset_index(drop=True), rejects=_concat_rejects([rejects]), rows_read=len(raw)
    )


def normalise_history(
    raw: pd.DataFrame,
    *,
    unit_ids: Iterable[str],
    file: str = "unit_history",
    rows: np.ndarray | None = None,
) -> Normalised:
    """Raw attribute history → normalised ``unit_history`` and rejects.

    ``unit_ids``: the accepted units. The identity columns (unit_id, name, type, township, county,
    city, lat, lon) cannot change here: a changing township would move a unit between access scopes
    (rejected with that reason). A number is written in its plain form (``3.0`` → ``3``).
    """
    rows = _rows(raw, rows)
    frame = canonical_dated_columns(raw, table="unit_history", file=file)
    unit_id = clean_text(frame["unit_id"])
    attr_text = clean_text(frame["attribute"])
    attribute = attr_text.map(lambda a: COLUMN_ALIASES.get(a, a) if isinstance(a, str) else a)
    text = clean_text(frame["value"])
    valid = parse_dates(frame["valid_from"])
    known = text_isin(unit_id, pd.Index(unit_ids, dtype="str"))
    identity = attribute.isin(IDENTITY_COLUMNS).to_numpy()
    num = parse_floats(frame["value"])
    plain = num.values.map(lambda v: f"{v:g}" if pd.notna(v) else None)
    value = plain.where(~pd.Series(num.invalid, index=frame.index) & num.values.notna(), text)
    checks = [
        _Check("unit_id", unit_id.isna().to_numpy(), MISSING),
        _Check("unit_id", unit_id.notna().to_numpy() & ~known, "unknown unit_id (not an accepted unit)"),
        _Check("attribute", attr_text.isna().to_numpy(), MISSING),
        _Check(
            "attribute",
            identity,
            "an identity column (id, name, type, township, county, city, location) "
            "has no history here; change it in units",
        ),
        _Check("value", text.isna().to_numpy(), MISSING),
        _Check("valid_from", valid.missing, MISSING),
        _Check("valid_from", valid.invalid, DATE_REASON),
    ]
    bad, rejects = _reject(raw, frame, rows, checks, table="unit_history", file=file)
    out = pd.DataFrame(
        {"unit_id": unit_id, "attribute": attribute, "value": value, "valid_from": valid.values}
    ).loc[~bad]
    for c in ("unit_id", "attribute", "value"):
        out[c] = out[c].astype("str")
    out["valid_from"] = out["valid_from"].astype("datetime64[ns]")
    return Normalised(
        frame=out.reset_index(drop=True), rejects=_concat_rejects([rejects]), rows_read=len(raw)
    )
