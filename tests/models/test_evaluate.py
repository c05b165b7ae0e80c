"""The rolling-origin backtest: folds, pooled metrics, and that training never sees a test row's outcome."""

import numpy as np
import pandas as pd
from tiny_frames import FEATURES, make_frame

from sanling.core.config import BacktestParams, Config, ModelParams
from sanling.core.months import add_months
from sanling.models.evaluate import TierHistory, oracle_proba, rolling_origin

CFG = Config(
    test_periods=3,
    backtest=BacktestParams(min_train_periods=6, refit_every=1),  # a fold per test month
    model=ModelParams(n_estimators=60, learning_rate=0.15, num_leaves=7, min_child_samples=20),
)


def _history(frame: pd.DataFrame) -> TierHistory:
    """Tier of the window ending at each month = the label of the previous as-of month."""
    wide = frame.pivot(index="unit_id", columns="as_of", values="tier").astype(float)
    months = list(wide.columns)
    tiers = np.full(wide.shape, -1, dtype=np.int64)
    tiers[:, 1:] = np.nan_to_num(wide.to_numpy()[:, :-1], nan=-1).astype(np.int64)
    return TierHistory(wide.index.to_numpy(dtype=object), months, tiers, 1)


def test_folds_pool_and_report_every_model():
    frame = make_frame(n_units=120, n_months=14)
    res = rolling_origin(frame, FEATURES, _history(frame), CFG)
    dates = sorted(frame["as_of"].unique())
    assert res.metrics["as_of_dates"] == dates[-3:]
    assert res.metrics["n_rows"] == 3 * 120 == len(res.y)
    assert set(res.metrics["models"]) == {"lightgbm", "persistence", "historical_rate", "logistic"}
    for f in res.folds:  # outcome windows of training rows end at or before the test date
        assert add_months(f["train_until"], 1) <= f["test"][0]
    m = res.metrics["models"]
    assert m["lightgbm"]["rps"] < m["persistence"]["rps"]
    assert abs(sum(res.metrics["class_balance"].values()) - 1) < 1e-9


def test_training_never_sees_a_test_rows_outcome():
    frame = make_frame(n_units=120, n_months=14)
    history = _history(frame)
    base = rolling_origin(frame, FEATURES, history, CFG)
    first_test = base.metrics["as_of_dates"][0]
    flipped = frame.copy()
    later = flipped["as_of"] >= first_test
    flipped.loc[later, "tier"] = (3 - flipped.loc[later, "tier"].astype(int)).astype("Int8").to_numpy()
    moved = rolling_origin(flipped, FEATURES, history, CFG)
    first = (base.meta["as_of"] == first_test).to_numpy()
    for name, (p, _) in base.predictions.items():
        np.testing.assert_array_equal(p[first], moved.predictions[name][0][first], err_msg=name)
    # … while later folds, which may train on the first test month's known outcomes, do move
    assert not np.array_equal(
        base.predictions["lightgbm"][0][~first], moved.predictions["lightgbm"][0][~first]
    )


def test_oracle_alignment_requires_every_row():
    meta = pd.DataFrame({"unit_id": ["a", "b"], "as_of": ["2020-01", "2020-01"]})
    truth = pd.DataFrame(
        {
            "unit_id": ["b", "a"],
            "as_of": ["2020-01", "2020-01"],
            "horizon_months": [1, 1],
            "p_blue": [0.1, 0.7],
            "p_yellow": [0.2, 0.1],
            "p_orange": [0.3, 0.1],
            "p_red": [0.4, 0.1],
        }
    )
    np.testing.assert_allclose(oracle_proba(meta, truth, 1), [[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]])
    assert oracle_proba(meta, truth.head(1), 1) is None
    assert oracle_proba(meta, truth, 12) is None
