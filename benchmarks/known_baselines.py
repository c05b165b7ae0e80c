"""Issue 12: the baselines of a backtest origin with the tier history as known then, against the
final record (docs/model.md, "Labels as known at the origin").

    .venv/bin/sanling simulate --out w1 --seed 0
    .venv/bin/python benchmarks/known_baselines.py w1 [--refit-every 4]

Runs the persistence and historical-rate baselines over the backtest's folds
(:func:`sanling.models.evaluate.baseline_forecasts`: the same rows, labels and history as
``sanling backtest``, without LightGBM) three ways and prints their probability metrics over the
pooled test rows (scored against the final record):

- ``final record``: training labels and tier history from the final record (no dates);
- ``labels known, history final``: training labels as known at each origin, the tier history of
  the final record (the backtest before the history followed the rule);
- ``labels and history known``: both as the records held them at each origin (``sanling backtest``).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sanling.core.config import BacktestParams, Config, Settings  # noqa: E402
from sanling.features.build import feature_names  # noqa: E402
from sanling.features.labels import KnownLabels  # noqa: E402
from sanling.models.evaluate import baseline_forecasts, tier_history  # noqa: E402
from sanling.models.metrics import (  # noqa: E402
    ORANGE,
    RED,
    average_precision,
    expected_calibration_error,
    log_loss,
    p_at_least,
    rps,
)
from sanling.pipeline.context import labelled_frame, prepare  # noqa: E402

BASELINES = ("persistence", "historical_rate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a data directory with late records (sanling simulate)")
    ap.add_argument("--refit-every", type=int, default=4)
    args = ap.parse_args()
    config = Config(backtest=BacktestParams(refit_every=args.refit_every))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        _, panel = prepare(args.data, config, Settings(home=Path(home)))
        frame = labelled_frame(panel, config)
    if panel.knowledge is None:
        raise SystemExit(f"{args.data}: the records hold nothing late; the three ways are the same")
    names, history = feature_names(frame), tier_history(panel, config)
    known = KnownLabels(panel, config.horizon_months, config.tiers)
    ways = {
        "final record": (dataclasses.replace(history, at=None), None),
        "labels known, history final": (dataclasses.replace(history, at=None), known),
        "labels and history known": (history, known),
    }
    print("| baseline | labels / history | RPS | log loss | red PR-AUC | ECE (≥ orange) | ECE (red) |")
    print("|---|---|---|---|---|---|---|")
    for way, (hist, labels) in ways.items():
        _, y, proba = baseline_forecasts(frame, names, hist, config, train_labels=labels)
        for name in BASELINES:
            p = proba[name]
            figures = (
                rps(y, p),
                log_loss(y, p),
                average_precision((y == RED).astype("int8"), p[:, RED]),
                expected_calibration_error((y >= ORANGE).astype("int8"), p_at_least(p, ORANGE)),
                expected_calibration_error((y == RED).astype("int8"), p[:, RED]),
            )
            print(f"| {name} | {way} | " + " | ".join(f"{v:.4f}" for v in figures) + " |")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"\n{len(y):,} test rows, refit every {args.refit_every}; {time.perf_counter() - t0:.1f} s wall, "
        f"{usage.ru_utime + usage.ru_stime:.1f} s CPU"
    )


if __name__ == "__main__":
    main()
