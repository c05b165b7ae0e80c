"""Issue 11: the stacked inputs compared on a validation world (docs/model.md, "Candidates compared").

    .venv/bin/python benchmarks/stack_candidates.py [--seed 101] [--refit-every 4]

Simulates the county of ``--seed`` (use validation seeds 100–105, never the evaluation seeds 0–3),
fits the default :class:`TierModel` on each fold of the last ``test_periods`` as-of months, keeps
each fold's stack inputs (boosters' margin, record, linear model, count model) on its calibration
and test rows, and re-fits the stack with the candidate input sets on them. Baselines as
``sanling backtest`` fits them (benchmarks/structural_ceiling.py). Prints RPS and oracle_gap_share
± 1 SE (clustered by unit and month) against the best baseline on the same rows."""

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
from structural_ceiling import backtest_rows

from sanling.core.config import Settings, load_config
from sanling.core.months import add_months
from sanling.features.build import feature_names
from sanling.models.evaluate import oracle_proba
from sanling.models.metrics import rps_per_row
from sanling.models.skill import oracle_share_with_se
from sanling.models.tier_model import CUMULATIVE_LEVELS, TierModel, fit_stack
from sanling.pipeline.context import labelled_frame, prepare
from sanling.pipeline.simulate.world import simulate_world

INPUTS = ("boosters", "record", "linear", "count")
CANDIDATES = {  # name: (inputs used, input the ridge pulls toward, ridge)
    "boosters + record + linear, toward the boosters (previous default)": ((0, 1, 2), 0, 0.002),
    "all four, toward the boosters": ((0, 1, 2, 3), 0, 0.002),
    "count model alone, Platt": ((3,), 3, 0.0),
    "boosters + count, toward the count model": ((0, 3), 3, 0.002),
    "all four, toward the count model, ridge 0.01": ((0, 1, 2, 3), 3, 0.01),
    "all four, toward the count model, ridge 0.1": ((0, 1, 2, 3), 3, 0.1),
    "all four, toward the count model, ridge 1": ((0, 1, 2, 3), 3, 1.0),
    "boosters + count, toward the count model, ridge 0.1": ((0, 3), 3, 0.1),
}


def _proba(logits: np.ndarray) -> np.ndarray:
    ge = np.minimum.accumulate(1 / (1 + np.exp(-logits)), axis=1)
    ge = np.column_stack([np.ones(len(ge)), ge, np.zeros(len(ge))])
    return np.clip(ge[:, :-1] - ge[:, 1:], 0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--refit-every", type=int, default=4)
    args = ap.parse_args()
    if args.seed in (0, 1, 2, 3):
        raise SystemExit("seeds 0–3 are the evaluation seeds: choose nothing on them")
    work = Path(tempfile.mkdtemp(prefix="sanling-candidates-"))
    simulate_world(work / "w", seed=args.seed, progress=False)
    config = load_config(None)
    _, panel = prepare(work / "w", config, Settings(home=work / "home"))
    frame = labelled_frame(panel, config)
    lab = frame[frame["tier"].notna()]
    names = feature_names(frame)
    meta_b, y_b, base = backtest_rows(work / "w", work / "home2")
    base["oracle"] = oracle_proba(
        meta_b, pd.read_parquet(work / "w" / "truth.parquet"), config.horizon_months
    )
    dates = sorted(lab["as_of"].unique())[-config.test_periods :]
    folds = []
    for i in range(0, len(dates), args.refit_every):
        block, t0 = dates[i : i + args.refit_every], time.perf_counter()
        train = lab[lab["as_of"] <= add_months(block[0], -config.horizon_months)]
        test = lab[lab["as_of"].isin(block)]
        m = TierModel(names, config.model, tier_rules=config.tiers).fit(
            train, train["tier"].to_numpy(int), train["as_of"].to_numpy()
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
        print(f"fold {block[0]}: {time.perf_counter() - t0:.0f} s", flush=True)
    meta = pd.concat([f["meta"] for f in folds], ignore_index=True)
    key = lambda d: d["unit_id"].astype(str) + "|" + d["as_of"].astype(str)  # noqa: E731
    idx = pd.Index(key(meta_b)).get_indexer(key(meta))
    y = y_b[idx]
    best = min(
        ("persistence", "historical_rate", "logistic"), key=lambda k: rps_per_row(y, base[k][idx]).mean()
    )
    units, months = meta["unit_id"].to_numpy(), meta["as_of"].to_numpy()
    print(f"\nseed {args.seed}, {len(y):,} test rows; best baseline {best}")
    for name in ("persistence", "historical_rate", "logistic", "oracle"):
        print(f"  {name:70s} RPS {rps_per_row(y, base[name][idx]).mean():.5f}")
    for name, (used, toward, ridge) in CANDIDATES.items():
        used = list(used)
        probas = []
        for f in folds:
            logits = []
            for j, k in enumerate(CUMULATIVE_LEVELS):
                prior = np.zeros(len(used))
                prior[used.index(toward)] = 1.0
                w = fit_stack(f["cal"][:, j, used], (f["y_cal"] >= k).astype(float), prior, ridge)
                logits.append(f["test"][:, j, used] @ w[:-1] + w[-1])
            probas.append(_proba(np.column_stack(logits)))
        P = np.concatenate(probas)
        share, se = oracle_share_with_se(y, base[best][idx], P, base["oracle"][idx], units, months)
        print(f"  {name:70s} RPS {rps_per_row(y, P).mean():.5f}  oracle_gap_share {share:+.2f} ± {se:.2f}")


if __name__ == "__main__":
    main()
