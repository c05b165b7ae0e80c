"""The summary block of metrics.json: best baseline, the oracle shares and their error bars,
calibration by group and the compared policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sanling.core.config import Config
from sanling.models.evaluate import BacktestResult
from sanling.models.metrics import rps, tier_metrics
from sanling.pipeline.jobs import summarise


def _result() -> BacktestResult:
    rng = np.random.default_rng(0)
    n_units, n_months = 100, 12
    n = n_units * n_months
    meta = pd.DataFrame(
        {
            "unit_id": np.tile([f"u{i:03d}" for i in range(n_units)], n_months),
            "as_of": np.repeat([f"2022-{m:02d}" for m in range(1, 13)], n_units),
            "unit_type": np.tile(["village"] * 60 + ["community"] * 30 + ["enterprise"] * 10, n_months),
            "township": np.tile([f"t{i % 5}" for i in range(n_units)], n_months),
            "county": "洪洞县",
        }
    )
    oracle = rng.dirichlet([4, 3, 2, 1], n)
    y = (oracle.cumsum(1) < rng.uniform(size=(n, 1))).sum(1)
    flat = np.full((n, 4), 0.25)
    preds = {
        "lightgbm": 0.7 * oracle + 0.3 * flat,
        "persistence": flat,
        "historical_rate": 0.4 * oracle + 0.6 * flat,
        "logistic": 0.3 * oracle + 0.7 * flat,
        "oracle": oracle,
    }
    predictions = {k: (p, p.argmax(1)) for k, p in preds.items()}
    metrics = {"models": {k: tier_metrics(y, p, d) for k, (p, d) in predictions.items()}}
    red = np.zeros(n, dtype=int)
    red[np.argsort(-preds["lightgbm"][:, 3])[: n // 20]] = 3
    return BacktestResult(meta, y, predictions, metrics, policy_decisions={"capacity": red})


def test_summary_measures_against_the_best_baseline_and_persistence():
    r = _result()
    s = summarise(r, Config())
    p = {k: v[0] for k, v in r.predictions.items()}
    assert s["best_baseline"] == "historical_rate"
    best, model, oracle = (rps(r.y, p[k]) for k in ("historical_rate", "lightgbm", "oracle"))
    assert s["oracle_gap_share"] == pytest.approx((best - model) / (best - oracle))
    pers = rps(r.y, p["persistence"])
    assert s["oracle_share"] == pytest.approx((pers - model) / (pers - oracle))
    assert s["oracle_gap_share"] < s["oracle_share"]  # the persistence gap is the easy one
    assert 0 < s["oracle_gap_share_se"] < 0.2 and 0 < s["oracle_share_se"] < 0.2
    assert s["formulation"] == "cumulative/stacked+counts/3 seeds" and s["policy"] == "capacity"


def test_summary_groups_and_policies():
    s = summarise(_result(), Config())
    assert set(s["calibration_by_group"]["unit_type"]) == {"village", "community", "other"}
    assert list(s["calibration_by_group"]["county"]) == ["洪洞县"]
    cap = s["policies"]["capacity"]
    assert cap["red_share"] == pytest.approx(0.05)
    # 60 red rows over 12 months × 5 townships
    assert cap["red_per_township_month"] == pytest.approx(1.0)
    assert 0 <= cap["red_recall"] <= 1 and 0 <= cap["red_precision"] <= 1
