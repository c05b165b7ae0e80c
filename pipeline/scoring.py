"""Scoring with the champion: features as of a date (the same code as training), probabilities,
tiers, risk scores and grouped Chinese reasons. Used by ``sanling score`` and by ``POST /v1/score``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from sanling.core.months import month_number
from sanling.core.vocabulary import TIERS
from sanling.features.after_the_fact import late_records
from sanling.features.build import build_frame
from sanling.features.labels import tiers_from_outcomes, window_outcomes
from sanling.models.conformal import ConformalTiers, set_labels
from sanling.models.explain import peer_means
from sanling.models.intensity import intensity_against_peers, reporting_intensity
from sanling.models.policy import decide, risk_score
from sanling.models.relative_risk import peer_mean_probabilities, relative_risk


def frame_at(bundle, panel, as_of: str) -> pd.DataFrame:
    """All units' features as of one month (peers need every unit of the county)."""
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
    peer_risk: pd.DataFrame | None = None,
) -> list[dict]:
    """Explained scores (docs/operations.md shape) for ``unit_ids`` (default: every unit) as of ``as_of``,
    each with its ``relative_risk`` against its peers and, when the model carries one, its conformal
    ``tier_set``.

    ``frame``/``peers``/``peer_risk`` (:func:`peer_risk_table`) may be passed in when the caller
    caches the month's frame; given a ``frame`` of some units only, pass the month's ``peer_risk``.
    """
    if peer_risk is None and unit_ids is None:
        return explained_month(
            bundle, ds, panel, as_of, model_version=model_version, frame=frame, peers=peers
        )[0]
    if frame is None:
        frame = frame_at(bundle, panel, as_of)
    if peers is None:
        peers = peer_means(frame, bundle.feature_names)
    if peer_risk is None:
        peer_risk = peer_risk_table(bundle, frame)
    if unit_ids is not None:
        pos = pd.Index(frame["unit_id"]).get_indexer(list(unit_ids))
        pos = pos[pos >= 0]
        frame, peers = frame.iloc[pos], peers.iloc[pos]
    return _completed(
        bundle.explained(frame, peers), bundle, ds, panel, as_of, frame, peer_risk, model_version
    )


def explained_month(
    bundle,
    ds,
    panel,
    as_of: str,
    *,
    model_version: str | None = None,
    frame: pd.DataFrame | None = None,
    peers: pd.DataFrame | None = None,
) -> tuple[list[dict], pd.DataFrame]:
    """:func:`explained_scores` of every unit of the month and the month's :func:`peer_risk_table`,
    both from one pass of the model (the peers' risk reads the same probabilities)."""
    if frame is None:
        frame = frame_at(bundle, panel, as_of)
    if peers is None:
        peers = peer_means(frame, bundle.feature_names)
    rows, full = bundle.scored(frame, peers)
    peer_risk = peer_risk_from(frame, full)
    return _completed(rows, bundle, ds, panel, as_of, frame, peer_risk, model_version), peer_risk


def _completed(rows, bundle, ds, panel, as_of, frame, peer_risk, model_version) -> list[dict]:
    """``rows`` (the model's explained scores of ``frame``) with the forecast context, the registry's
    names, the reporting intensity and the late records."""
    proba = np.array([[r["probabilities"][t] for t in TIERS] for r in rows], dtype=np.float64).reshape(-1, 4)
    for r, extra in zip(rows, forecast_context(bundle, frame, proba, peer_risk), strict=True):
        r.update(extra)
    cols = ["unit_name", "unit_type", "township", "county"]
    reg = ds.units.loc[ds.units["unit_id"].isin({r["unit_id"] for r in rows}), ["unit_id", *cols]]
    info = {u[0]: dict(zip(cols, map(str, u[1:]), strict=True)) for u in reg.itertuples(index=False)}
    effort = unit_intensity(ds.units, getattr(bundle.config, "reporting_effort", None))
    # What the unit's figures hold that was recorded after the fact (the unit page's 含补录事件N起).
    late = late_records(panel, as_of, [r["unit_id"] for r in rows])
    for i, r in enumerate(rows):
        r.update(info[r["unit_id"]], model_version=model_version)
        if effort:
            r["reporting_intensity"] = effort.get(r["unit_id"])
        if late is not None:
            r["late_records"] = late[i]
    return rows


def unit_intensity(units: pd.DataFrame, attribute: str | None) -> dict[str, dict]:
    """unit_id → its reporting intensity against its peers ({} when the units carry none)."""
    found = reporting_intensity(units, attribute)
    return {} if found is None else intensity_against_peers(units, *found)


def peer_risk_table(bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """The peers' mean P(red) and P(≥ orange) for every row of ``frame`` (all units of the month),
    indexed by (unit_id, as_of): what :func:`explained_scores` divides by for ``relative_risk``."""
    return peer_risk_from(frame, bundle.model.predict_proba(frame))


def peer_risk_from(frame: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    """:func:`peer_risk_table` from probabilities already computed for ``frame``'s rows."""
    idx = pd.MultiIndex.from_arrays(
        [frame["unit_id"].astype(str).to_numpy(), frame["as_of"].astype(str).to_numpy()]
    )
    return pd.DataFrame(peer_mean_probabilities(frame, proba), columns=["red", "orange_or_worse"], index=idx)


def forecast_context(bundle, frame: pd.DataFrame, proba: np.ndarray, peer_risk: pd.DataFrame) -> list[dict]:
    """Per row of ``frame``: ``relative_risk`` against the peers in ``peer_risk`` and, when the bundle
    carries a conformal calibration, the ``tier_set`` and its ``tier_set_level``."""
    idx = pd.MultiIndex.from_arrays(
        [frame["unit_id"].astype(str).to_numpy(), frame["as_of"].astype(str).to_numpy()]
    )
    rr = relative_risk(proba, peer_risk.reindex(idx).to_numpy(dtype=np.float64))
    out = [{"relative_risk": r} for r in rr]
    conformal = bundle.info.get("conformal") if isinstance(bundle.info, dict) else None
    if conformal:
        ct = ConformalTiers.from_dict(conformal)
        for o, s in zip(out, set_labels(ct.sets(proba, frame["unit_type"].astype(str))), strict=True):
            o["tier_set"], o["tier_set_level"] = s, ct.level
    return out


def backfill_scores(
    bundle, ds, panel, months: Sequence[str], *, model_version: str
) -> Iterator[tuple[str, list[dict]]]:
    """Forecasts of the same model for earlier ``months``, one month at a time (a province's 24
    months of features at once would not fit in memory): ``(month, rows)`` with tier,
    probabilities, risk score, relative risk and tier set, without reasons — the history needs what
    was forecast, not why, and explaining 24 months of a province would take an hour
    (docs/pages.md). The model may have been trained on these months' outcomes: the history is a
    reading aid, the backtest is the evaluation."""
    c = bundle.config
    for month in months:
        frame = frame_at(bundle, panel, month)
        proba = bundle.model.predict_proba(frame)
        tiers, scores = decide(proba, c.policy), risk_score(proba)
        context = forecast_context(bundle, frame, proba, peer_risk_from(frame, proba))
        rows = [
            {
                "unit_id": uid,
                "as_of": str(month),
                "tier": TIERS[int(tiers[i])],
                "risk_score": float(scores[i]),
                "probabilities": {t: round(float(proba[i, k]), 4) for k, t in enumerate(TIERS)},
                "reasons": [],
                "protective": [],
                **context[i],
            }
            for i, uid in enumerate(frame["unit_id"].astype(str))
        ]
        yield str(month), rows


def observed_tiers(panel, config, months: Sequence[str]) -> list[tuple[str, str, str]]:
    """(unit_id, as_of, observed tier) for every unit and every month of ``months`` whose outcome
    window lies inside the data (the others are still open and left out)."""
    last = month_number(panel.last_month)
    closed = [m for m in months if month_number(m) + config.horizon_months <= last]
    if not closed:
        return []
    tiers = np.asarray(
        tiers_from_outcomes(window_outcomes(panel, closed, config.horizon_months), config.tiers)
    )
    ids = [str(u) for u in panel.unit_ids]
    return [(u, m, TIERS[int(t)]) for j, m in enumerate(closed) for u, t in zip(ids, tiers[j], strict=True)]


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
