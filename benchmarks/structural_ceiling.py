"""Issue 11's ceiling: what a forecaster that knows the simulator's structure reaches from the same history.

    .venv/bin/python benchmarks/structural_ceiling.py [--seeds 0 1 2 3] [--boot 1000]

For every seed: simulate the county preset (500 units, 60 months) exactly as ``sanling simulate``
does, recording each month's Poisson rates λ (a pass-through wrapper around the generator that
``simulate`` receives) and the escalation, casualty and open-dispute probabilities (a wrapper around
``process.tier_probabilities``); the draws and the written world are unchanged. Then forecast the
backtest's rows (the last 12 labelled as-of months, ``test_periods``) with a Bayesian forecaster that
knows every parameter, mechanism and the full observed past of the process, but not the units'
latent multipliers, which it infers from the counts recorded up to the as-of month:

* ``frailty``: the multiplier W = Z (unit frailty, Gamma(k, k), one social and one safety) unknown;
  county and township effects known.
* ``frailty+area``: W = Z · exp(u_county + u_township) unknown as well, with a Gamma prior matched
  to the mean and variance of Z · lognormal(0, 0.15² + 0.25²).

λ_ict depends on W through the unit's level and through the self-excitation reference
log(1 + μ/(1 − ρ)), so λ(W) = λ_true · r · ((1 + S) / (1 + S·r))^γˢ with r = W / W_true and
S = μ_true/(1 − ρ). The posterior of W (from the data's first month to the as-of month, the 12
burn-in months are not data) is computed on a log grid, and the next month's tier probabilities are
the exact posterior expectations of the oracle's closed forms (docs/simulator.md §3), which factor
into a social and a safety expectation. Row ``conjugate`` is the Gamma-conjugate shortcut
e = λ/Z (closed form, ignores the W-dependence of the self-excitation reference).

Baselines (persistence, historical rate, logistic) are fitted exactly as ``sanling backtest`` does
(same folds, training labels as known at each origin) on the same rows; the oracle is truth.parquet.
Prints RPS, log loss and oracle_gap_share = (RPS_best_baseline − RPS) / (RPS_best_baseline −
RPS_oracle), with a bootstrap over units (the best baseline is the one of the full sample).
Writes benchmarks/_out/structural_ceiling.json. See docs/benchmarks.md."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
from scipy.special import gammaln

from sanling.core.config import Settings, load_config
from sanling.models.evaluate import oracle_proba
from sanling.models.metrics import log_loss, rps_per_row
from sanling.pipeline.simulate import process, world
from sanling.pipeline.simulate.params import BURN_IN_MONTHS, CATS, START, WorldParams

ROOT = Path(__file__).resolve().parents[1]
SOCIAL = [CATS.index(c) for c in ("dispute", "petition", "public_security", "criminal")]
SAFETY = [CATS.index(c) for c in ("safety_accident", "fire", "hazard")]
GROUPS = (SOCIAL, SAFETY)
D, PET, PS, CR, ACC, FIRE, HZ = (
    CATS.index(c)
    for c in ("dispute", "petition", "public_security", "criminal", "safety_accident", "fire", "hazard")
)
GRID = np.exp(np.linspace(np.log(1e-4), np.log(40.0), 400))
BASELINES = ("persistence", "historical_rate", "logistic")


# -- recording the process ------------------------------------------------------------------------
class _RecordingRng:
    """Pass-through wrapper around the generator ``simulate`` receives: every call goes to the same
    generator in the same order (so the world is unchanged); the monthly (units × 7) Poisson rates
    and draws are kept."""

    def __init__(self, rng: np.random.Generator, log: dict):
        self._rng, self._log = rng, log

    def __getattr__(self, name):
        return getattr(self._rng, name)

    def poisson(self, lam=1.0, size=None):
        out = self._rng.poisson(lam, size)
        if np.ndim(lam) == 2:
            self._log["lam"].append(np.array(lam))
            self._log["counts"].append(out.copy())
        return out


def simulate_recorded(out: Path, seed: int) -> dict:
    """Write the county world of ``seed`` to ``out`` (as ``sanling simulate``) and return what the
    process used: ``lam`` and ``counts`` (steps × units × 7, burn-in first), ``esc``, ``q_acc``,
    ``q_fire``, ``share`` (data months 1 …, units), ``log_mu``, ``frailty``, ``area`` (units × 2:
    county + township effect of the social and safety group)."""
    log: dict = {"lam": [], "counts": [], "tiers": []}
    orig_sim, orig_tp, orig_up = world.simulate, process.tier_probabilities, world.unit_process

    def unit_process(reg, p, rng):
        # The same draws with the area effects' scale set to 0 give the log rates without them.
        twin = orig_up(reg, dataclasses.replace(p, county_sd=0.0, township_sd=0.0), copy.deepcopy(rng))
        up = orig_up(reg, p, rng)
        assert np.array_equal(twin.frailty, up.frailty)
        area = up.log_mu - twin.log_mu
        log["area"] = np.stack([area[:, SOCIAL[0]], area[:, SAFETY[0]]], axis=1)
        log["log_mu"], log["frailty"] = up.log_mu, up.frailty
        return up

    def simulate(up, p, months, rng, **kw):
        return orig_sim(up, p, months, _RecordingRng(rng, log), **kw)

    def tier_probabilities(lam, esc, q_acc, q_fire, share):
        log["tiers"].append((np.array(lam), np.array(esc), q_acc, q_fire, np.array(share)))
        return orig_tp(lam, esc, q_acc, q_fire, share)

    world.simulate, world.unit_process, process.tier_probabilities = (
        simulate,
        unit_process,
        tier_probabilities,
    )
    try:
        world.simulate_world(out, seed=seed, progress=False)
    finally:
        world.simulate, world.unit_process, process.tier_probabilities = orig_sim, orig_up, orig_tp
    lam, counts = np.stack(log["lam"]), np.stack(log["counts"])
    tiers = log["tiers"]
    # The oracle's rates of data month k are the rates that generated month k.
    assert np.allclose(tiers[0][0], lam[BURN_IN_MONTHS + 1])
    return {
        "lam": lam[BURN_IN_MONTHS:],
        "counts": counts[BURN_IN_MONTHS:],
        "esc": np.stack([t[1] for t in tiers]),
        "q_acc": tiers[0][2],
        "q_fire": tiers[0][3],
        "share": np.stack([t[4] for t in tiers]),
        "log_mu": log["log_mu"],
        "frailty": log["frailty"],
        "area": log["area"],
    }


# -- the structural forecaster ----------------------------------------------------------------------
def gamma_log_prior(shape: float, rate: float) -> np.ndarray:
    """Log weights of Gamma(shape, rate) on the log grid (density × W for the log spacing)."""
    lw = shape * np.log(rate) - gammaln(shape) + shape * np.log(GRID) - rate * GRID
    return lw - np.logaddexp.reduce(lw)


def widened_prior(k: float, sd2: float) -> tuple[float, float]:
    """Gamma (shape, rate) with the mean and variance of Z · exp(u), Z ~ Gamma(k, k), u ~ N(0, sd2)."""
    mean = np.exp(sd2 / 2)
    cv2 = (1 + 1 / k) * np.exp(sd2) - 1
    return 1 / cv2, 1 / cv2 / mean


def structural_forecast(rec: dict, params: WorldParams, as_of: np.ndarray, w_true: np.ndarray, priors):
    """Tier probabilities (len(as_of) × units × 4) for data months ``as_of`` + 1.

    ``w_true`` (units × 2): the true multiplier the forecaster does not know (frailty, or frailty ×
    area effect); ``priors``: (shape, rate) of its prior per group. Everything else is known."""
    lam, counts = rec["lam"], rec["counts"]
    g_self = np.asarray(params.gamma_self)
    s_ref = np.exp(rec["log_mu"]) / (1 - params.self_decay)  # (U, 7) typical level incl. W_true
    n_units = lam.shape[1]
    out = np.empty((len(as_of), n_units, 4))
    expect = []
    for g, cats in enumerate(GROUPS):
        r = GRID[None, :] / w_true[:, [g]]  # (U, G) ratio to the true multiplier
        # λ(W) / λ_true per category: (U, c, G)
        factor = (
            r[:, None, :]
            * ((1 + s_ref[:, cats, None]) / (1 + s_ref[:, cats, None] * r[:, None, :]))
            ** g_self[cats][None, :, None]
        )
        ll = np.zeros((n_units, len(GRID)))
        prior = gamma_log_prior(*priors[g])
        post = {}
        for t in range(int(as_of.max()) + 1):
            lam_t = lam[t][:, cats, None] * factor
            ll += (counts[t][:, cats, None] * np.log(lam_t) - lam_t).sum(axis=1)
            if t in set(as_of.tolist()):
                lp = prior[None, :] + ll
                lp -= lp.max(axis=1, keepdims=True)
                w = np.exp(lp)
                post[t] = w / w.sum(axis=1, keepdims=True)
        expect.append((factor, post))

    (f_s, post_s), (f_f, post_f) = expect
    for j, t in enumerate(as_of):
        m = t + 1
        lam_m, esc, share = rec["lam"][m], rec["esc"][m - 1], rec["share"][m - 1]
        ls = lam_m[:, SOCIAL, None] * f_s  # (U, 4 social, G): dispute, petition, ps, criminal
        lf = lam_m[:, SAFETY, None] * f_f  # (U, 3 safety, G): accident, fire, hazard
        d, pet, ps, cr = ls[:, 0], ls[:, 1], ls[:, 2], ls[:, 3]
        acc, fire, hz = lf[:, 0], lf[:, 1], lf[:, 2]
        ps_, pf_ = post_s[t], post_f[t]
        opn = d * share[:, None]
        le_orange = (ps_ * np.exp(-(cr + pet * esc[:, None]))).sum(1) * (
            pf_ * np.exp(-(acc * rec["q_acc"][:, None] + fire * rec["q_fire"][:, None]))
        ).sum(1)
        le_yellow = (ps_ * np.exp(-(cr + pet + ps) - opn) * (1 + opn)).sum(1) * (
            pf_ * np.exp(-(acc + fire))
        ).sum(1)
        blue = (ps_ * np.exp(-(cr + pet + ps + d))).sum(1) * (pf_ * np.exp(-(acc + fire + hz))).sum(1)
        out[j] = np.stack([blue, le_yellow - blue, le_orange - le_yellow, 1 - le_orange], axis=1)
    return out


def conjugate_forecast(rec: dict, params: WorldParams, as_of: np.ndarray) -> np.ndarray:
    """The Gamma-conjugate shortcut: e = λ / Z, posterior Gamma(k + ΣN, k + Σe), closed-form
    predictive E[exp(−Z·x)] = (1 + x/b)^−a and E[Z·exp(−Z·x)] = (a/(b + x))·(b/(b + x))^a."""
    z = rec["frailty"]
    e = rec["lam"] / np.where(np.isin(np.arange(len(CATS)), SOCIAL), z[:, [0]], z[:, [1]])[None]
    k = (params.frailty_shape_social, params.frailty_shape_safety)
    cum_n = np.cumsum(rec["counts"], axis=0)
    cum_e = np.cumsum(e, axis=0)
    out = np.empty((len(as_of), z.shape[0], 4))
    for j, t in enumerate(as_of):
        a = [k[g] + cum_n[t][:, cats].sum(1) for g, cats in enumerate(GROUPS)]
        b = [k[g] + cum_e[t][:, cats].sum(1) for g, cats in enumerate(GROUPS)]
        m = t + 1
        em, esc, share = e[m], rec["esc"][m - 1], rec["share"][m - 1]

        def lap(g, x, a=a, b=b):
            return (1 + x / b[g]) ** -a[g]

        opn = em[:, D] * share
        y0 = em[:, CR] + em[:, PET] + em[:, PS] + opn
        le_orange = lap(0, em[:, CR] + em[:, PET] * esc) * lap(
            1, em[:, ACC] * rec["q_acc"] + em[:, FIRE] * rec["q_fire"]
        )
        social_y = lap(0, y0) + opn * a[0] / (b[0] + y0) * (b[0] / (b[0] + y0)) ** a[0]
        le_yellow = social_y * lap(1, em[:, ACC] + em[:, FIRE])
        blue = lap(0, em[:, CR] + em[:, PET] + em[:, PS] + em[:, D]) * lap(
            1, em[:, ACC] + em[:, FIRE] + em[:, HZ]
        )
        out[j] = np.stack([blue, le_yellow - blue, le_orange - le_yellow, 1 - le_orange], axis=1)
    return out


# -- the backtest's rows and baselines ------------------------------------------------------------------
def backtest_rows(data_dir: Path, home: Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, np.ndarray]]:
    """The backtest's test rows (meta), their realised tiers and the baselines' probabilities,
    fitted as :func:`sanling.models.evaluate.rolling_origin` does (without LightGBM)."""
    from sanling.features.build import feature_names
    from sanling.features.labels import KnownLabels
    from sanling.models.evaluate import baseline_forecasts, tier_history
    from sanling.pipeline.context import labelled_frame, prepare

    config = load_config()
    _, panel = prepare(data_dir, config, Settings(home=home))
    frame = labelled_frame(panel, config)
    known = KnownLabels(panel, config.horizon_months, config.tiers) if panel.knowledge is not None else None
    meta, y, proba = baseline_forecasts(
        frame, feature_names(frame), tier_history(panel, config), config, train_labels=known
    )
    return meta[["unit_id", "as_of"]], y, {k: proba[k] for k in BASELINES}


# -- scoring ----------------------------------------------------------------------------------------------
def gap_share(rps_best: float, rps_model: float, rps_oracle: float) -> float:
    """(RPS_best_baseline − RPS_model) / (RPS_best_baseline − RPS_oracle)."""
    return (rps_best - rps_model) / (rps_best - rps_oracle)


def run_seed(seed: int, work: Path, n_boot: int) -> dict:
    t0 = time.perf_counter()
    data = work / f"world{seed}"
    rec = simulate_recorded(data, seed)
    meta, y, proba = backtest_rows(data, work / f"home{seed}")
    units = pd.read_parquet(data / "units.parquet")["unit_id"].astype(str).to_numpy()
    proba["oracle"] = oracle_proba(meta, pd.read_parquet(data / "truth.parquet"), 1)

    u_idx = pd.Index(units).get_indexer(meta["unit_id"].astype(str))
    m_idx = (meta["as_of"].astype(str).map(lambda s: int(np.datetime64(s, "M") - START))).to_numpy()
    assert (u_idx >= 0).all()
    # The recorded oracle is the one in truth.parquet (the world is unchanged by the recording).
    as_of = np.unique(m_idx)
    pos = np.searchsorted(as_of, m_idx)
    params = WorldParams()
    k = (params.frailty_shape_social, params.frailty_shape_safety)
    sd2 = params.county_sd**2 + params.township_sd**2
    variants = {
        "structural_frailty": structural_forecast(
            rec, params, as_of, rec["frailty"], [(k[0], k[0]), (k[1], k[1])]
        ),
        "structural_frailty_area": structural_forecast(
            rec, params, as_of, rec["frailty"] * np.exp(rec["area"]), [widened_prior(kk, sd2) for kk in k]
        ),
        "conjugate_frailty": conjugate_forecast(rec, params, as_of),
    }
    for name, p in variants.items():
        proba[name] = p[pos, u_idx]
    assert np.allclose(proba["structural_frailty"].sum(1), 1) and (proba["structural_frailty"] > -1e-12).all()

    per_row = {k: rps_per_row(y, np.clip(p, 0, 1)) for k, p in proba.items()}
    rps = {k: float(v.mean()) for k, v in per_row.items()}
    best = min(BASELINES, key=lambda b: rps[b])
    # Block bootstrap over units: resample whole units (all their test months) with replacement.
    codes, inv = np.unique(u_idx, return_inverse=True)
    sums = {k: np.bincount(inv, weights=v, minlength=len(codes)) for k, v in per_row.items()}
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(codes), np.full(len(codes), 1 / len(codes)), size=n_boot).astype(float)
    boot = {k: w @ v for k, v in sums.items()}
    out = {"seed": seed, "n_rows": len(y), "best_baseline": best, "models": {}}
    for name in proba:
        share = gap_share(rps[best], rps[name], rps["oracle"])
        bs = gap_share(boot[best], boot[name], boot["oracle"])
        out["models"][name] = {
            "rps": rps[name],
            "log_loss": log_loss(y, np.clip(proba[name], 1e-15, 1)),
            "oracle_gap_share": share,
            "share_se": float(bs.std(ddof=1)),
        }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


ROWS = (
    "persistence",
    "historical_rate",
    "logistic",
    "conjugate_frailty",
    "structural_frailty",
    "structural_frailty_area",
    "oracle",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap replicates over units")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sanling-ceiling-"))
    runs = []
    for seed in args.seeds:
        r = run_seed(seed, work, args.boot)
        runs.append(r)
        print(f"\nseed {seed}: {r['n_rows']} rows, best baseline {r['best_baseline']} ({r['seconds']} s)")
        print(f"  {'forecaster':<24} {'RPS':>8} {'log loss':>9} {'gap share':>15}")
        for name in ROWS:
            m = r["models"][name]
            print(
                f"  {name:<24} {m['rps']:>8.5f} {m['log_loss']:>9.4f}"
                f" {m['oracle_gap_share']:>7.3f} ± {m['share_se']:.3f}",
                flush=True,
            )
    print(f"\nmean over seeds {args.seeds} (± SE of the mean over seeds)")
    for name in ROWS:
        s = np.array([r["models"][name]["oracle_gap_share"] for r in runs])
        se = s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else float("nan")
        rps = np.mean([r["models"][name]["rps"] for r in runs])
        ll = np.mean([r["models"][name]["log_loss"] for r in runs])
        print(f"  {name:<24} {rps:>8.5f} {ll:>9.4f} {s.mean():>7.3f} ± {se:.3f}")
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "structural_ceiling.json").write_text(json.dumps({"runs": runs}, indent=2))


if __name__ == "__main__":
    main()
