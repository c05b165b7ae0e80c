"""Dress the simulated event arrays as the contract's ``events`` table: ids, timestamps, subtypes,
severities, casualties of violent crimes and resolution dates. Nothing here changes a count, an
escalation, an accident's casualties or a resolution time that the process drew, so the oracle is
untouched; subtypes are drawn from the same seasonal mix that made up the dispute rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sanling.pipeline.simulate.params import (
    CATS,
    CRIMINAL_WITH_CASUALTIES,
    DISPUTE_MIX,
    DISPUTE_SEASON,
    DISPUTE_SUBTYPES,
    OTHER_SUBTYPES,
    PETITION_ESCALATED,
    START,
    TYPES,
    C,
)
from sanling.pipeline.simulate.process import NEVER, Simulation

_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3.5, 4.5, 5, 5, 4, 4, 4.5, 5, 5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5]
)
# Severity 1–4 mixes keyed by (category, flag): flag = escalated (dispute, petition) or 重大 (hazard).
_SEVERITY: dict[tuple[str, bool], tuple[float, float, float, float]] = {
    ("dispute", False): (0.88, 0.11, 0.01, 0.0),
    ("dispute", True): (0.0, 0.7, 0.3, 0.0),
    ("petition", False): (0.8, 0.2, 0.0, 0.0),
    ("petition", True): (0.0, 0.6, 0.35, 0.05),
    ("public_security", False): (0.7, 0.3, 0.0, 0.0),
    ("criminal", False): (0.0, 0.55, 0.35, 0.10),
    ("hazard", False): (0.7, 0.3, 0.0, 0.0),
    ("hazard", True): (0.0, 0.0, 0.85, 0.15),
}


def _vocabulary() -> list[str]:
    words = [*DISPUTE_SUBTYPES, "正常访", *PETITION_ESCALATED[0], "一般隐患", "重大隐患"]
    for names, _ in OTHER_SUBTYPES.values():
        words += [w for w in names if w not in words]
    return words


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows sum to 1), vectorised by inverse CDF."""
    cdf = np.cumsum(probs, axis=1)
    return np.minimum((rng.random(len(probs))[:, None] > cdf).sum(axis=1), probs.shape[1] - 1)


def events_frame(
    sim: Simulation, unit_ids: np.ndarray, type_idx: np.ndarray, months: int, rng: np.random.Generator
) -> pd.DataFrame:
    """The events table (docs/data-contract.md columns), sorted by occurrence time.

    Takes the simulation, unit ids and types (registry order), the number of data months and the
    generator; returns one row per event with ``count`` = 1."""
    n = len(sim.unit)
    vocab = _vocabulary()
    code = {w: i for i, w in enumerate(vocab)}
    subtype = np.zeros(n, dtype=np.int32)
    cat = sim.category
    moy = sim.month % 12

    is_d = cat == C["dispute"]
    season = np.asarray(DISPUTE_SEASON) / np.asarray(DISPUTE_SEASON).mean(axis=1, keepdims=True)
    mix = (
        np.asarray([DISPUTE_MIX[t] for t in TYPES])[:, None, :] * season.T[None, :, :]
    )  # type × moy × subtype
    mix /= mix.sum(axis=2, keepdims=True)
    subtype[is_d] = _pick(rng, mix[type_idx[sim.unit[is_d]], moy[is_d]])  # DISPUTE_SUBTYPES come first

    is_p = cat == C["petition"]
    esc_names, esc_probs = PETITION_ESCALATED
    esc_codes = np.array([code[w] for w in esc_names])
    picked = esc_codes[_pick(rng, np.broadcast_to(np.asarray(esc_probs), (int(is_p.sum()), 3)))]
    subtype[is_p] = np.where(sim.escalated[is_p], picked, code["正常访"])
    for cname, (names, probs) in OTHER_SUBTYPES.items():
        m = cat == C[cname]
        codes = np.array([code[w] for w in names])
        subtype[m] = codes[_pick(rng, np.broadcast_to(np.asarray(probs), (int(m.sum()), len(probs))))]
    is_h = cat == C["hazard"]
    subtype[is_h] = np.where(sim.major[is_h], code["重大隐患"], code["一般隐患"])

    casualties = sim.casualties.copy()
    violent = np.isin(subtype, [code[w] for w in CRIMINAL_WITH_CASUALTIES]) & (cat == C["criminal"])
    casualties[violent] = 1 + rng.poisson(0.3, int(violent.sum()))

    severity = np.zeros(n, dtype=np.int8)
    flag = np.where(is_h, sim.major, sim.escalated)
    u = rng.random(n)
    for (cname, f), probs in _SEVERITY.items():
        m = (cat == C[cname]) & (flag == f)
        severity[m] = 1 + (u[m, None] > np.cumsum(probs)[None, :3]).sum(axis=1)
    harm = np.isin(cat, [C["safety_accident"], C["fire"]])
    severity[harm] = (
        1 + (casualties[harm] >= 1) + (casualties[harm] >= 3) + (casualties[harm] >= 10)
    ).astype(np.int8)

    starts = (START + np.arange(months + 1)).astype("datetime64[D]").astype(np.int64)
    occurred_day = starts[sim.month] + sim.day - 1
    seconds = rng.choice(24, n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()) * 3600 + rng.integers(0, 60, n) * 60
    occurred = occurred_day * 86400 + seconds
    resolved_day = occurred_day + sim.duration
    # Resolutions after the data's last day are not known yet: empty, like never-resolved ones.
    open_ = (sim.duration == NEVER) | (resolved_day > starts[-1] - 1)

    order = np.lexsort((sim.unit, occurred))
    month_sorted = sim.month[order]
    first = np.r_[0, np.flatnonzero(np.diff(month_sorted)) + 1]
    seq = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
    month_sorted = month_sorted.astype(np.int64)
    yyyymm = (2018 + month_sorted // 12) * 100 + month_sorted % 12 + 1
    event_id = pc.binary_join_element_wise(
        "SJ",
        pc.cast(pa.array(yyyymm), pa.string()),
        pc.utf8_lpad(pc.cast(pa.array(seq + 1), pa.string()), 7, "0"),
        "",
    )
    table = pa.table(
        {
            "event_id": event_id,
            "unit_id": pa.array(unit_ids.astype(str)).take(pa.array(sim.unit[order])),
            "occurred_at": pa.array(occurred[order].astype("datetime64[s]")),
            "category": pa.array(np.asarray(CATS)).take(pa.array(cat[order])),
            "subtype": pa.array(np.asarray(vocab)).take(pa.array(subtype[order])),
            "severity": pa.array(severity[order]),
            "count": pa.array(np.ones(n, dtype=np.int32)),
            "escalated": pa.array(sim.escalated[order]),
            "casualties": pa.array(casualties[order].astype(np.int32)),
            "resolved_at": pa.array(
                np.where(open_, 0, resolved_day)[order].astype("datetime64[D]").astype("datetime64[s]"),
                mask=open_[order],
            ),
        }
    )
    return table.to_pandas()
