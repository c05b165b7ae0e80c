"""Issue 11: the stack's candidates and the label lag compared on validation worlds (docs/model.md,
"Candidates compared").

    .venv/bin/python benchmarks/stack_candidates.py [--seeds 100 101 102 103] [--lags 0 2] [--refit-every 3]

For every seed (validation worlds 100–105; the evaluation seeds 0–3 are refused) it simulates the
county, builds the features once, and for every ``label_lag`` fits the default :class:`TierModel` on
each fold of the last ``test_periods`` as-of months exactly as ``sanling backtest`` does: training
labels as the records held them at the fold's origin (``KnownLabels``), the latest ``label_lag``
months left out. It keeps each fold's stack inputs (boosters' margin, record, linear model, count
model) on the calibration and test months and re-fits the stack per candidate on them. Baselines as
the backtest fits them. Prints, per seed and lag, ``oracle_gap_share`` ± 1 SE (clustered by unit
and month) against the best baseline on the same rows, then the mean over seeds."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scipy.optimize import minimize
from structural_ceiling import backtest_rows

from sanling.core.config import Settings, load_config
from sanling.core.months import add_months
from sanling.features.build import feature_names
from sanling.features.labels import KnownLabels
from sanling.models.evaluate import oracle_proba
from sanling.models.metrics import rps_per_row
from sanling.models.skill import oracle_share_with_se
from sanling.models.tier_model import CUMULATIVE_LEVELS, TierModel, fit_stack
from sanling.pipeline.context import labelled_frame, prepare
from sanling.pipeline.simulate.world import simulate_world

ALL, COUNT = (0, 1, 2, 3), 3  # stack inputs: boosters, record, linear, count model
# name: (inputs used, ridge, ridge the intercept too); every ridge pulls toward the count model alone
CANDIDATES = {
    "count model alone, as it forecasts": None,
    "count model alone, Platt (free a, b)": ((COUNT,), 0.0, True),
    "all four, ridge 0.01 on the weights (previous default)": (ALL, 0.01, False),
    "all four, ridge 1 on the weights": (ALL, 1.0, False),
    "all four, ridge 0.01 on weights and intercept": (ALL, 0.01, True),
    "all four, ridge 0.1 on weights and intercept (default)": (ALL, 0.1, True),
    "all four, ridge 0.3 on weights and intercept": (ALL, 0.3, True),
    "all four, ridge 1 on weights and intercept": (ALL, 1.0, True),
    "boosters alone, Platt": ((0,), 0.0, True),
}


def _proba(logits: np.ndarray) -> np.ndarray:
    ge = np.minimum.accumulate(1 / (1 + np.exp(-logits)), axis=1)
    ge = np.column_stack([np.ones(len(ge)), ge, np.zeros(len(ge))])
    return np.clip(ge[:, :-1] - ge[:, 1:], 0, 1)


def _weights_only(Z: np.ndarray, y: np.ndarray, prior: np.ndarray, ridge: float) -> np.ndarray:
    """The stack of the previous version: the weights ridged, the intercept free."""
    n, p = Z.shape

    def loss(w):
        z = Z @ w[:p] + w[p]
        d = w[:p] - prior
        r = 1.0 / (1.0 + np.exp(-z)) - y
        value = np.mean(np.logaddexp(0.0, z) - y * z) + ridge * float(d @ d)
        return value, np.append(Z.T @ r / n + 2 * ridge * d, r.mean())

    bounds = [(0.0, 10.0)] * p + [(-20.0, 20.0)]
    return minimize(loss, np.append(prior, 0.0), jac=True, method="L-BFGS-B", bounds=bounds).x


def candidate_proba(fold: dict, spec) -> np.ndarray:
    if spec is None:
        return _proba(fold["test"][:, :, COUNT])
    used, ridge, intercept = list(spec[0]), spec[1], spec[2]
    logits = []
    for j, k in enumerate(CUMULATIVE_LEVELS):
        prior = np.zeros(len(used))
        prior[used.index(COUNT) if COUNT in used else 0] = 1.0
        Z, y = fold["cal"][:, j, used], (fold["y_cal"] >= k).astype(float)
        w = fit_stack(Z, y, prior, ridge) if intercept else _weights_only(Z, y, prior, ridge)
        logits.append(fold["test"][:, j, used] @ w[:-1] + w[-1])
    return _proba(np.column_stack(logits))


def folds_of(lab: pd.DataFrame, names, config, known, lag: int, refit_every: int, seed: int) -> list[dict]:
    dates = sorted(lab["as_of"].unique())[-config.test_periods :]
    folds = []
    for i in range(0, len(dates), refit_every):
        block, t0 = dates[i : i + refit_every], time.perf_counter()
        train = lab[lab["as_of"] <= add_months(block[0], -config.horizon_months)]
        train = train.assign(**known(train, block[0]))
        test = lab[lab["as_of"].isin(block)]
        m = TierModel(names, config.model, tier_rules=config.tiers).fit(
            train,
            train["tier"].to_numpy(int),
            train["as_of"].to_numpy(),
            horizon_months=config.horizon_months,
            label_lag=lag,
        )
        cal = train[train["as_of"].isin(m.calibration_months_)]
        folds.append(
            {
                "cal": m._stack_inputs(cal, m.encoder_.transform(cal)),
                "y_cal": cal["tier"].to_numpy(int),
                "test": m._stack_inputs(test, m.encoder_.transform(test)),
                "meta": test[["unit_id", "as_of"]].reset_index(drop=True),
            }
        )
        print(f"  seed {seed} lag {lag} fold {block[0]}: {time.perf_counter() - t0:.0f} s", flush=True)
    return folds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103])
    ap.add_argument("--lags", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--refit-every", type=int, default=3)
    args = ap.parse_args()
    if set(args.seeds) & {0, 1, 2, 3}:
        raise SystemExit("seeds 0–3 are the evaluation seeds: choose nothing on them")
    work = Path(tempfile.mkdtemp(prefix="sanling-candidates-"))
    config = load_config(None)
    shares: dict[tuple[int, str], float] = {}
    for seed in args.seeds:
        w = work / f"w{seed}"
        simulate_world(w, seed=seed, progress=False)
        _, panel = prepare(w, config, Settings(home=work / f"home{seed}"))
        frame = labelled_frame(panel, config)
        lab, names = frame[frame["tier"].notna()], feature_names(frame)
        known = KnownLabels(panel, config.horizon_months, config.tiers)
        meta_b, y_b, base = backtest_rows(w, work / f"home{seed}b")
        base["oracle"] = oracle_proba(meta_b, pd.read_parquet(w / "truth.parquet"), config.horizon_months)
        for lag in args.lags:
            folds = folds_of(lab, names, config, known, lag, args.refit_every, seed)
            meta = pd.concat([f["meta"] for f in folds], ignore_index=True)
            key = lambda d: d["unit_id"].astype(str) + "|" + d["as_of"].astype(str)  # noqa: E731
            idx = pd.Index(key(meta_b)).get_indexer(key(meta))
            y = y_b[idx]
            best = min(
                ("persistence", "historical_rate", "logistic"),
                key=lambda k: rps_per_row(y, base[k][idx]).mean(),
            )
            units, months = meta["unit_id"].to_numpy(), meta["as_of"].to_numpy()
            print(f"seed {seed}, label_lag {lag}: {len(y):,} test rows, best baseline {best}")
            for name, spec in CANDIDATES.items():
                P = np.concatenate([candidate_proba(f, spec) for f in folds])
                share, se = oracle_share_with_se(y, base[best][idx], P, base["oracle"][idx], units, months)
                shares[(lag, name)] = shares.get((lag, name), 0.0) + share / len(args.seeds)
                print(f"  {name:58s} RPS {rps_per_row(y, P).mean():.5f}  share {share:+.2f} ± {se:.2f}")
    print(f"\nmean oracle_gap_share over seeds {args.seeds}")
    for lag in args.lags:
        for name in CANDIDATES:
            print(f"  label_lag {lag}  {name:58s} {shares[(lag, name)]:+.3f}")


if __name__ == "__main__":
    main()
