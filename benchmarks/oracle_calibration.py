"""How calibrated the truth itself looks per unit type on a county backtest's test rows (issue 11).

    .venv/bin/python benchmarks/oracle_calibration.py --seeds 0 1 2 3

For each seed: simulate the county, take the backtest's test rows (the last ``test_periods``
labelled as-of months), and print the ECE of the *oracle's* P(tier ≥ orange) per unit type —
``calibration_by_group``, the figure ``summary.calibration_by_group`` reports for the model. On a
group of a few hundred rows this is the noise floor of that metric: a model cannot honestly go below
it (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from sanling.core.config import Settings, load_config
from sanling.models.metrics import calibration_by_group
from sanling.pipeline.context import labelled_frame, prepare
from sanling.pipeline.simulate.world import simulate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = ap.parse_args()
    config = load_config(None)
    for seed in args.seeds:
        work = Path(tempfile.mkdtemp(prefix="sanling-oracle-ece-"))
        simulate_world(work / "w", seed=seed, progress=False)
        _, panel = prepare(work / "w", config, Settings(home=work / "home"))
        frame = labelled_frame(panel, config)
        frame = frame[frame["tier"].notna()]
        dates = sorted(frame["as_of"].unique())[-config.test_periods :]
        test = frame[frame["as_of"].isin(dates)].reset_index(drop=True)
        truth = pd.read_parquet(work / "w" / "truth.parquet")
        truth = truth[truth["horizon_months"] == config.horizon_months]
        rows = test[["unit_id", "as_of"]].merge(truth, on=["unit_id", "as_of"], how="left")
        proba = rows[["p_blue", "p_yellow", "p_orange", "p_red"]].to_numpy()
        ece = calibration_by_group(
            test[["unit_type", "county"]].astype(str), test["tier"].to_numpy(int), proba
        )
        rows_per_type = test["unit_type"].astype(str).value_counts().to_dict()
        print(
            f"seed {seed}: oracle ECE of P(≥ orange) by unit type "
            + ", ".join(f"{t} {v:.4f} ({rows_per_type.get(t, 0)} rows)" for t, v in ece["unit_type"].items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
