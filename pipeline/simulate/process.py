"""The generating process: monthly Poisson counts per unit and category, vectorised over units and
sequential over months, with the history state (open disputes, open hazards, decayed own counts,
neighbours' last month) carried from one month to the next. The oracle probabilities for month t+1
are computed from the same rates that then generate month t+1, so they are exact by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from tqdm import tqdm

from sanling.pipeline.simulate.geography import Registry
from sanling.pipeline.simulate.oracle import open_at_month_end, tier_probabilities
from sanling.pipeline.simulate.params import (
    BURN_IN_MONTHS,
    CATS,
    DISPUTE_MIX,
    DISPUTE_SEASON,
    SEASON,
    START,
    TYPES,
    C,
    WorldParams,
)

NEVER = -1  # duration marker: never resolved


@dataclass(frozen=True)
class UnitProcess:
    """Per-unit quantities fixed for the whole run (the oracle knows all of them)."""

    log_mu: np.ndarray  # (U, 7) static log rate: base, size, attributes, industry, county/township, frailty
    eta: np.ndarray  # petition escalation hazard (× kappa)
    q_accident: np.ndarray
    q_fire: np.ndarray
    p_slow: np.ndarray  # dispute resolution mixture weights
    p_never: np.ndarray
    neighbours: np.ndarray  # (U, k) indices of the k nearest other units
    type_idx: np.ndarray
    frailty: np.ndarray  # (U, 2) social, safety


@dataclass
class Simulation:
    """What a run produces: the events (one entry per event, months 0 … T-1 of the data) and the
    oracle ``truth[t, i]`` = P(tiers of unit i in month t+1 | end of month t), shape (T-1, U, 4)."""

    unit: np.ndarray
    category: np.ndarray
    month: np.ndarray
    day: np.ndarray
    duration: np.ndarray  # days until resolved_at, NEVER if never resolved
    escalated: np.ndarray
    casualties: np.ndarray
    major: np.ndarray  # hazards: 重大隐患
    truth: np.ndarray
    red_counts: np.ndarray  # (T, U) red-rule events per unit-month (for calibration)


def _zscore(x: np.ndarray, type_idx: np.ndarray) -> np.ndarray:
    z = np.zeros_like(x)
    for t in range(len(TYPES)):  # three types, not units
        m = type_idx == t
        if m.any():
            sd = x[m].std()
            z[m] = (x[m] - x[m].mean()) / sd if sd > 0 else 0.0
    return np.clip(z, -3.0, 3.0)


def unit_process(reg: Registry, p: WorldParams, rng: np.random.Generator) -> UnitProcess:
    """Draw the latent unit quantities (frailties, county and township effects) and fold every static
    effect into one log rate per unit and category."""
    n, t = len(reg.type_idx), reg.type_idx
    kappa = p.arr("kappa")[t]
    base = np.asarray(p.base)[t].copy()
    base[:, C["criminal"]] *= kappa
    log_mu = np.log(base) + p.arr("size_elasticity") * np.log(reg.size / p.arr("ref_size")[t])[:, None]
    for name, x in (
        ("beta_migrant", reg.migrant_ratio),
        ("beta_elderly", reg.elderly_ratio),
        ("beta_left_behind", reg.left_behind_share),
        ("beta_mediators", reg.mediators_per_1000),
        ("beta_grid", reg.grid_per_1000),
    ):
        log_mu += _zscore(x, t)[:, None] * p.arr(name)
    log_mu += reg.moral_bank[:, None] * p.arr("beta_moral_bank")
    ent = reg.industry_idx >= 0
    for cat, mult in p.industry_mult.items():
        log_mu[ent, C[cat]] += np.log(np.asarray(mult))[reg.industry_idx[ent]]
    social = np.arange(len(CATS)) < C["safety_accident"]
    # Random effects are deviations: centred over the counties of the world and over the townships of
    # each county, so a one-county world is not shifted as a whole away from the calibrated level.
    county_eff = rng.normal(0.0, p.county_sd, (reg.n_counties, 2))
    county_eff -= county_eff.mean(axis=0)
    town_eff = rng.normal(0.0, p.township_sd, (reg.n_townships, 2))
    town_county = reg.township_county
    sums = np.zeros((reg.n_counties, 2))
    np.add.at(sums, town_county, town_eff)
    town_eff -= (sums / np.maximum(np.bincount(town_county, minlength=reg.n_counties), 1)[:, None])[
        town_county
    ]
    county, town = county_eff[reg.county_idx], town_eff[reg.township_idx]
    frailty = np.stack(
        [
            rng.gamma(p.frailty_shape_social, 1 / p.frailty_shape_social, n),
            rng.gamma(p.frailty_shape_safety, 1 / p.frailty_shape_safety, n),
        ],
        axis=1,
    )
    log_mu += np.where(
        social,
        (county + town)[:, [0]] + np.log(frailty[:, [0]]),
        (county + town)[:, [1]] + np.log(frailty[:, [1]]),
    )
    ind_cas = np.where(ent, np.asarray(p.industry_casualty)[np.maximum(reg.industry_idx, 0)], 1.0)
    q_acc = 1.0 - (1.0 - np.minimum(p.arr("casualty_accident")[t] * ind_cas, 0.95)) ** kappa
    q_fire = 1.0 - (1.0 - np.minimum(p.arr("casualty_fire")[t] * ind_cas, 0.95)) ** kappa
    logit = np.log(p.arr("dispute_p_slow")[t] / (1 - p.arr("dispute_p_slow")[t]))
    logit += p.p_slow_mediators * _zscore(reg.mediators_per_1000, t) + p.p_slow_moral_bank * reg.moral_bank
    p_never = p.arr("dispute_p_never")[t]
    p_slow = (1.0 - p_never) / (1.0 + np.exp(-logit))
    k = min(p.n_neighbours, n - 1)
    if k >= 1:
        xy = np.stack([reg.lat, reg.lon * np.cos(np.deg2rad(reg.lat.mean()))], axis=1)
        _, nb = cKDTree(xy).query(xy, k=k + 1)
        nb = nb.reshape(n, k + 1)
        own = nb == np.arange(n)[:, None]
        # Drop the unit itself (usually column 0; ties at equal coordinates may move it).
        nb = np.where(
            own.any(axis=1)[:, None], nb[np.arange(n)[:, None], np.argsort(own, axis=1, kind="stable")], nb
        )[:, :k]
    else:
        nb = np.zeros((n, 0), dtype=np.int64)
    return UnitProcess(
        log_mu=log_mu,
        eta=p.arr("escalation_eta")[t] * kappa,
        q_accident=q_acc,
        q_fire=q_fire,
        p_slow=p_slow,
        p_never=np.broadcast_to(p_never, n).copy(),
        neighbours=nb,
        type_idx=t,
        frailty=frailty,
    )


def calendar_effects(p: WorldParams, months: np.ndarray) -> np.ndarray:
    """Log-rate effects of season and trend, shape (len(months), 3 types, 7 categories), for month
    indices counted from 2018-01 (negative in the burn-in)."""
    moy = months % 12
    eff = np.zeros((len(months), len(TYPES), len(CATS)))
    season = np.asarray(DISPUTE_SEASON) / np.asarray(DISPUTE_SEASON).mean(axis=1, keepdims=True)
    for ti, tname in enumerate(TYPES):
        eff[:, ti, C["dispute"]] = np.log(np.asarray(DISPUTE_MIX[tname]) @ season)[moy]
    for cat, s in SEASON.items():
        eff[:, :, C[cat]] = np.log(np.asarray(s) / np.mean(s))[moy][:, None]
    m0 = int(np.datetime64(p.campaign_start, "M") - START)
    ramp = np.clip((months - m0 + 1) / p.campaign_ramp, 0.0, 1.0)
    eff += ramp[:, None, None] * p.arr("campaign_effect")
    eff[:, :, C["criminal"]] += (p.criminal_trend_per_year * np.maximum(months - 12, 0) / 12)[:, None]
    return eff


def _durations(
    rng: np.random.Generator, n: int, median: float, sigma: float, p_never: np.ndarray | float
) -> np.ndarray:
    d = 1 + np.floor(rng.lognormal(np.log(median), sigma, n)).astype(np.int64)
    return np.where(rng.random(n) < p_never, NEVER, d)


def simulate(
    up: UnitProcess,
    p: WorldParams,
    months: int,
    rng: np.random.Generator,
    *,
    progress: bool = False,
    keep_events: bool = True,
) -> Simulation:
    """Run ``BURN_IN_MONTHS`` unwritten months then ``months`` data months from 2018-01.

    Takes the unit process, parameters, month count and generator; returns the events, the oracle
    and the red-rule counts. With ``keep_events=False`` only the counts and the oracle are kept
    (calibration)."""
    n = len(up.type_idx)
    steps = BURN_IN_MONTHS + months
    cal = np.arange(-BURN_IN_MONTHS, months)  # month index from 2018-01
    starts = (START + np.arange(-BURN_IN_MONTHS, months + 1)).astype("datetime64[D]").astype(np.int64)
    lengths = np.diff(starts)
    eff = calendar_effects(p, cal)
    g_backlog, g_hazard = p.arr("gamma_backlog"), p.arr("gamma_open_hazards")
    g_self, g_nb = p.arr("gamma_self"), p.arr("gamma_neighbours")
    serious = [C["petition"], C["public_security"], C["criminal"]]
    # Self-excitation acts on the excess of the decayed own count over the unit's typical level, so it
    # moves a unit around its own mean instead of compounding unit heterogeneity.
    self_ref = np.log1p(np.exp(up.log_mu) / (1.0 - p.self_decay))
    # Likewise the neighbours' serious events count against their typical level: spill-over is contagion
    # around the local mean, not a penalty for living next to a busy urban community.
    typical = np.exp(up.log_mu[:, serious]).sum(axis=1)
    nb_ref = np.log1p(typical[up.neighbours].mean(axis=1)) if up.neighbours.shape[1] else np.zeros(n)

    backlog = np.zeros(n)
    open_hz = np.zeros(n)
    excite = np.zeros((n, len(CATS)))
    nb_prev = np.zeros(n)
    resolve_d = np.zeros((n, steps + 1), dtype=np.int32)  # open disputes that resolve in month s
    resolve_h = np.zeros((n, steps + 1), dtype=np.int32)
    truth = np.empty((max(months - 1, 0), n, 4))
    red_counts = np.zeros((months, n), dtype=np.int32)
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("unit", "category", "month", "day", "duration", "escalated", "casualties", "major")
    }

    for s in tqdm(range(steps), desc="simulating months", unit="month", disable=not progress, leave=False):
        log_lam = up.log_mu + eff[s][up.type_idx]
        log_lam += np.log1p(backlog)[:, None] * g_backlog + np.log1p(open_hz)[:, None] * g_hazard
        log_lam += (np.log1p(excite) - self_ref) * g_self + (np.log1p(nb_prev) - nb_ref)[:, None] * g_nb
        lam = np.exp(log_lam)
        esc = 1.0 - np.exp(-up.eta * (1.0 + backlog) ** p.escalation_backlog)
        data_month = s - BURN_IN_MONTHS
        if data_month >= 1:
            share = open_at_month_end(
                int(lengths[s]),
                up.p_never,
                up.p_slow,
                p.dispute_fast_mean_days,
                p.dispute_slow_median_days,
                p.dispute_slow_sigma,
            )
            truth[data_month - 1] = tier_probabilities(lam, esc, up.q_accident, up.q_fire, share)

        counts = rng.poisson(lam)
        total = counts.sum(axis=0)
        unit = np.repeat(np.tile(np.arange(n), len(CATS)), counts.T.ravel())  # grouped by category
        cat = np.repeat(np.arange(len(CATS)), total)
        m = len(unit)
        day = rng.integers(1, lengths[s] + 1, m)
        escalated = np.zeros(m, dtype=bool)
        casualties = np.zeros(m, dtype=np.int32)
        major = np.zeros(m, dtype=bool)
        duration = np.empty(m, dtype=np.int64)

        sl = {c: slice(int(total[: C[c]].sum()), int(total[: C[c] + 1].sum())) for c in CATS}
        # Disputes: three-way resolution mixture (fast / slow / never) with unit weights.
        u_d = unit[sl["dispute"]]
        v = rng.random(len(u_d))
        fast = 1 + np.floor(rng.exponential(p.dispute_fast_mean_days, len(u_d))).astype(np.int64)
        slow = 1 + np.floor(
            rng.lognormal(np.log(p.dispute_slow_median_days), p.dispute_slow_sigma, len(u_d))
        ).astype(np.int64)
        pn, ps_ = up.p_never[u_d], up.p_slow[u_d]
        duration[sl["dispute"]] = np.where(v < pn, NEVER, np.where(v < pn + ps_, slow, fast))
        escalated[sl["dispute"]] = rng.random(len(u_d)) < p.dispute_escalated
        # Petitions: escalated with the unit-month probability (backlog-dependent).
        u_p = unit[sl["petition"]]
        escalated[sl["petition"]] = rng.random(len(u_p)) < esc[u_p]
        for c, q in (("safety_accident", up.q_accident), ("fire", up.q_fire)):
            u_c = unit[sl[c]]
            hit = rng.random(len(u_c)) < q[u_c]
            casualties[sl[c]] = np.where(hit, 1 + rng.poisson(0.4, len(u_c)), 0)
        for c, (median, sigma, never) in p.other_resolution.items():
            duration[sl[c]] = _durations(rng, sl[c].stop - sl[c].start, median, sigma, never)
        u_h = unit[sl["hazard"]]
        is_major = rng.random(len(u_h)) < p.hazard_major_share
        major[sl["hazard"]] = is_major
        hz_median = np.where(is_major, p.hazard_median_days[1], p.hazard_median_days[0])
        duration[sl["hazard"]] = np.where(
            rng.random(len(u_h)) < p.hazard_p_never,
            NEVER,
            1 + np.floor(hz_median * rng.lognormal(0.0, p.hazard_sigma, len(u_h))).astype(np.int64),
        )

        # State at the end of month s (what the rates of month s+1 depend on).
        occurred = starts[s] + day - 1
        resolved = occurred + duration
        r_month = np.where(duration == NEVER, steps, np.searchsorted(starts, resolved, side="right") - 1)
        r_month = np.minimum(r_month, steps)
        for c, pending in (("dispute", resolve_d), ("hazard", resolve_h)):
            u_c, r_c = unit[sl[c]], r_month[sl[c]]
            still_open = r_c > s
            np.add.at(pending, (u_c[still_open], r_c[still_open]), 1)
            change = np.bincount(u_c[still_open], minlength=n) - pending[:, s]
            if c == "dispute":
                backlog += change
            else:
                open_hz += change
        excite = p.self_decay * excite + counts
        serious_counts = counts[:, serious].sum(axis=1)
        nb_prev = serious_counts[up.neighbours].mean(axis=1) if up.neighbours.shape[1] else np.zeros(n)

        if data_month >= 0:
            red = escalated & (cat == C["petition"])
            red |= cat == C["criminal"]
            red |= casualties > 0
            red_counts[data_month] = np.bincount(unit[red], minlength=n)
            if keep_events:
                for k, a in (
                    ("unit", unit),
                    ("category", cat),
                    ("day", day),
                    ("duration", duration),
                    ("escalated", escalated),
                    ("casualties", casualties),
                    ("major", major),
                ):
                    out[k].append(a)
                out["month"].append(np.full(m, data_month, dtype=np.int16))

    ev = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}
    return Simulation(truth=truth, red_counts=red_counts, **ev)
