"""The reporting process of the simulated world: when what truly happened entered the records
(docs/simulator.md, "Reporting"). Applied after the events are drawn, it changes no count, no
escalation, no casualty and no resolution the process drew, so the oracle — defined on what truly
happened — is untouched. What it adds:

* ``reported_at`` (登记时间): most events the same day; a share (by category, higher in some
  townships) weeks to months later — a log-normal delay;
* ``escalated_at`` (越级时间): escalated events escalate days to weeks after they occur (an
  escalation after the data's last day is not in the records yet);
* ``event_updates`` (续报/更正): casualties and severities first recorded low, corrected later to
  what happened;
* ``unit_history``: mediators added in the month after a bad quarter (≥ 3 disputes), so the
  registry's final ``mediators`` mixes cause and response, as on real ledgers.

Events not yet reported at the data's last day are not in the export (they are still in the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sanling.pipeline.simulate.params import START


@dataclass(frozen=True)
class ReportingParams:
    """The delay distribution and the correction rates (documented in docs/simulator.md)."""

    # Share of each category's events entered late, and the median delay in days of those.
    late_share: dict[str, float] = field(
        default_factory=lambda: {
            "dispute": 0.20,
            "petition": 0.10,
            "public_security": 0.08,
            "criminal": 0.05,
            "safety_accident": 0.12,
            "fire": 0.05,
            "hazard": 0.30,
        }
    )
    late_median_days: float = 21.0
    late_sigma: float = 1.0  # log-normal spread: a tail of a few months
    # Townships differ: a township's late share is multiplied by a log-normal factor.
    township_sigma: float = 0.6
    escalation_median_days: float = 20.0
    escalation_sigma: float = 0.8
    casualty_correction: float = 0.3  # share of events with casualties first reported with fewer
    severity_correction: float = 0.05  # share of severity ≥ 2 events first recorded one level lower
    correction_median_days: float = 30.0
    bad_quarter_disputes: int = 3


@dataclass(frozen=True)
class Reported:
    """What the records hold: events with ``reported_at``/``escalated_at`` (as first recorded),
    ``event_updates`` and ``unit_history``."""

    events: pd.DataFrame
    updates: pd.DataFrame
    history: pd.DataFrame


def _days(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    return np.maximum(1, np.round(rng.lognormal(np.log(median), sigma, n))).astype("timedelta64[D]")


def report(
    events: pd.DataFrame,
    units: pd.DataFrame,
    months: int,
    rng: np.random.Generator,
    params: ReportingParams | None = None,
) -> Reported:
    """The records of ``events`` (the truth, CONTRACT columns) as they stand at the end of the
    data's last month. Takes the units (for townships and mediators), the number of data months and
    the generator; returns :class:`Reported`."""
    p = params or ReportingParams()
    n = len(events)
    end = np.datetime64(str(START + months), "D").astype("datetime64[ns]")  # first day after the data
    occurred = events["occurred_at"].to_numpy(dtype="datetime64[ns]")

    towns, town_idx = np.unique(units["township"].to_numpy(dtype=str), return_inverse=True)
    town_factor = rng.lognormal(0.0, p.township_sigma, len(towns))
    unit_town = pd.Series(town_idx, index=units["unit_id"].to_numpy())
    ev_town = unit_town.reindex(events["unit_id"].to_numpy()).to_numpy()
    share = events["category"].map(p.late_share).fillna(0.1).to_numpy() * town_factor[ev_town]
    late = rng.random(n) < np.minimum(share, 0.9)
    reported = occurred.copy()
    reported[late] = occurred[late] + _days(rng, int(late.sum()), p.late_median_days, p.late_sigma)

    escalated = events["escalated"].to_numpy(dtype=bool)
    escalated_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    esc_day = occurred[escalated].astype("datetime64[D]")
    escalated_at[escalated] = esc_day + _days(
        rng, int(escalated.sum()), p.escalation_median_days, p.escalation_sigma
    )
    # The record shows the escalation only once it has happened.
    esc_known = escalated_at < end

    updates = []
    cas = events["casualties"].to_numpy(dtype=np.int64)
    fix_cas = (cas > 0) & (rng.random(n) < p.casualty_correction)
    first_cas = cas.copy()
    first_cas[fix_cas] = rng.integers(0, cas[fix_cas])  # first report: fewer (often none)
    sev = events["severity"].to_numpy(dtype=np.int64, na_value=0)
    fix_sev = (sev >= 2) & (rng.random(n) < p.severity_correction)
    first_sev = sev.copy()
    first_sev[fix_sev] = sev[fix_sev] - 1  # first report: one level lower
    for name, mask, values in (("casualties", fix_cas, cas), ("severity", fix_sev, sev)):
        idx = np.flatnonzero(mask)
        recorded = reported[idx] + _days(rng, len(idx), p.correction_median_days, 1.0)
        inside = recorded < end
        updates.append(
            pd.DataFrame(
                {
                    "event_id": events["event_id"].to_numpy()[idx[inside]],
                    "field": name,
                    "value": values[idx[inside]].astype(str),
                    "recorded_at": recorded[inside],
                    "row": idx[inside],
                }
            )
        )
    out = events.copy()
    out["casualties"] = first_cas.astype(np.int32)
    out["severity"] = pd.Series(first_sev, dtype="Int8").mask(sev == 0)
    out["escalated"] = escalated & esc_known
    out["reported_at"] = reported
    out["escalated_at"] = np.where(esc_known, escalated_at, np.datetime64("NaT"))
    keep = reported < end
    out = out.loc[keep].reset_index(drop=True)
    upd = pd.concat(updates, ignore_index=True)
    upd = (
        upd[keep[upd.pop("row").to_numpy()]]  # the corrections of the events the records hold
        .sort_values(["recorded_at", "event_id"], kind="stable")
        .reset_index(drop=True)
    )
    return Reported(out, upd, _mediator_history(events, units, months, p))


def _mediator_history(
    events: pd.DataFrame, units: pd.DataFrame, months: int, p: ReportingParams
) -> pd.DataFrame:
    """Mediators over time: the start value, then one more in the month after each quarter with at
    least ``bad_quarter_disputes`` disputes (villages and communities). The registry's ``mediators``
    is the start value; the history ends at the value of the last month."""
    ids = units["unit_id"].to_numpy(dtype=str)
    start = units["mediators"].to_numpy(dtype=np.float64)
    d = events[events["category"] == "dispute"]
    month = (d["occurred_at"].to_numpy(dtype="datetime64[ns]").astype("datetime64[M]") - START).astype(
        np.int64
    )
    u = pd.Index(ids).get_indexer(d["unit_id"].to_numpy(dtype=str))
    quarters = months // 3
    counts = np.zeros((quarters + 1, len(ids)), dtype=np.int64)
    np.add.at(counts, (month // 3, u), 1)
    counts = counts[:quarters]
    eligible = (units["unit_type"] != "enterprise").to_numpy() & np.isfinite(start)
    bad = (counts >= p.bad_quarter_disputes) & eligible[None, :]
    added = np.cumsum(bad, axis=0)
    rows = [
        pd.DataFrame(
            {
                "unit_id": ids[eligible],
                "attribute": "mediators",
                "value": start[eligible],
                "valid_from": np.datetime64(str(START), "D"),
            }
        )
    ]
    qq, uu = np.nonzero(bad)
    valid = qq * 3 + 3
    inside = valid < months
    rows.append(
        pd.DataFrame(
            {
                "unit_id": ids[uu[inside]],
                "attribute": "mediators",
                "value": start[uu[inside]] + added[qq[inside], uu[inside]],
                "valid_from": (np.datetime64(str(START), "M") + valid[inside]).astype("datetime64[D]"),
            }
        )
    )
    out = pd.concat(rows, ignore_index=True)
    out["valid_from"] = out["valid_from"].astype("datetime64[ns]")
    return out.sort_values(["valid_from", "unit_id"], kind="stable").reset_index(drop=True)
