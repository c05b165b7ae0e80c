"""Scoring with the champion: features as of a date (the same code as training), probabilities,
tiers, risk scores and grouped Chinese reasons. Used by ``sanling score`` and by ``POST /v1/score``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sanling.models.explain import peer_means


def frame_at(bundle, panel, as_of: str) -> pd.DataFrame:
    """All units' features as of one month (peers need every unit of the county)."""
    from sanling.features.build import build_frame

    c = bundle.config
    return build_frame(
        panel,
        [as_of],
        tier_rules=c.tiers,
        horizon_months=c.horizon_months,
        params=c.features,
        with_labels=False,
    )


def explained_scores(
    bundle,
    ds,
    panel,
    as_of: str,
    unit_ids: Sequence[str] | None = None,
    *,
    model_version: str | None = None,
    frame: pd.DataFrame | None = None,
    peers: pd.DataFrame | None = None,
) -> list[dict]:
    """Explained scores (docs/operations.md shape) for ``unit_ids`` (default: every unit) as of ``as_of``.

    ``frame``/``peers`` may be passed in when the caller caches the month's frame.
    """
    if frame is None:
        frame = frame_at(bundle, panel, as_of)
    if peers is None:
        peers = peer_means(frame, bundle.feature_names)
    if unit_ids is not None:
        pos = pd.Index(frame["unit_id"]).get_indexer(list(unit_ids))
        pos = pos[pos >= 0]
        frame, peers = frame.iloc[pos], peers.iloc[pos]
    rows = bundle.explained(frame, peers)
    cols = ["unit_name", "unit_type", "township", "county"]
    reg = ds.units.loc[ds.units["unit_id"].isin({r["unit_id"] for r in rows}), ["unit_id", *cols]]
    info = {u[0]: dict(zip(cols, map(str, u[1:]), strict=True)) for u in reg.itertuples(index=False)}
    for r in rows:
        r.update(info[r["unit_id"]], model_version=model_version)
    return rows


def history_tables(events: pd.DataFrame, as_of: str, months: int = 24) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For the unit pages: monthly counts per category over the last ``months`` months up to
    ``as_of`` (with the red-rule pseudo-categories ``petition_escalated`` and ``casualties``), and the
    events still open at the end of ``as_of``."""
    end = pd.Period(as_of, freq="M")
    start = end - (months - 1)
    ev = events[(events["occurred_at"] < (end + 1).start_time)]
    recent = ev[ev["occurred_at"] >= start.start_time]
    month = recent["occurred_at"].dt.strftime("%Y-%m")
    parts = [
        pd.DataFrame(
            {
                "unit_id": recent["unit_id"],
                "month": month,
                "category": recent["category"],
                "n": recent["count"],
            }
        ),
    ]
    esc = recent["escalated"].astype(bool) & (recent["category"] == "petition")
    parts.append(
        pd.DataFrame(
            {
                "unit_id": recent["unit_id"][esc],
                "month": month[esc],
                "category": "petition_escalated",
                "n": recent["count"][esc],
            }
        )
    )
    cas = recent["casualties"] > 0
    parts.append(
        pd.DataFrame(
            {
                "unit_id": recent["unit_id"][cas],
                "month": month[cas],
                "category": "casualties",
                "n": recent["casualties"][cas],
            }
        )
    )
    em = (
        pd.concat(parts, ignore_index=True)
        .groupby(["unit_id", "month", "category"], as_index=False, observed=True)["n"]
        .sum()
    )
    em["n"] = em["n"].astype(np.int64)
    end_ts = (end + 1).start_time
    still_open = ev["resolved_at"].isna() | (ev["resolved_at"] >= end_ts)
    open_ev = ev.loc[
        still_open & ev["category"].isin(["dispute", "hazard"]),
        ["event_id", "unit_id", "category", "subtype", "occurred_at", "severity", "escalated"],
    ]
    return em, open_ev.reset_index(drop=True)
