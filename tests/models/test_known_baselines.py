"""The baselines of a backtest origin read the tier history as the records held it then: a late
report after the origin is not seen by persistence or the historical rate, like the training labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from records import late_records, records_at
from worlds import random_events, random_units

from sanling.core.config import BacktestParams, Config, ModelParams
from sanling.core.months import month_label, month_number
from sanling.features.build import build_frame, feature_names
from sanling.features.grid import labelled_as_of
from sanling.features.labels import KnownLabels
from sanling.features.panel import build_panel
from sanling.models.baselines import Persistence
from sanling.models.evaluate import rolling_origin, tier_history

CFG = Config(
    test_periods=1,
    backtest=BacktestParams(min_train_periods=6),
    model=ModelParams(n_estimators=40, learning_rate=0.2, num_leaves=7, min_child_samples=20),
)
FIRST, LAST = "2019-01", "2021-06"


@pytest.mark.parametrize("seed", [0, 1])
def test_history_at_an_origin_equals_the_history_of_the_records_then(seed):
    rng = np.random.default_rng(seed)
    units = random_units(rng)
    events, updates, history = late_records(rng, units, random_events(rng, units))
    panel = build_panel(
        units, events, CFG.categories, first_month=FIRST, last_month=LAST, updates=updates, history=history
    )
    final = tier_history(panel, CFG)
    origin = "2020-06"
    known = final.known_at(origin)
    ev_t, up_t, hist_t = records_at(events, updates, history, origin)
    then = build_panel(
        units, ev_t, CFG.categories, first_month=FIRST, last_month=origin, updates=up_t, history=hist_t
    )
    expected = tier_history(then, CFG).tiers
    n = expected.shape[1]
    np.testing.assert_array_equal(known.tiers[:, :n], expected)
    assert (known.tiers[:, n:] == -1).all()  # windows ending after the origin are not known yet
    assert (final.tiers[:, :n] != known.tiers[:, :n]).any()  # the late records matter here
    # the same rule as the training labels: the label of as-of a is the tier of the window ending a + 1
    rows = pd.DataFrame(
        {
            "unit_id": np.repeat(units["unit_id"].to_numpy(), 3),
            "as_of": ["2020-03", "2020-04", "2020-05"] * len(units),
        }
    )
    labels = KnownLabels(panel, 1, CFG.tiers)(rows, origin)["tier"]
    ends = rows["as_of"].map({"2020-03": "2020-04", "2020-04": "2020-05", "2020-05": "2020-06"})
    np.testing.assert_array_equal(known.last_tier(rows["unit_id"], ends), labels)


def _event(eid: str, unit: str, occurred: str, reported: str) -> dict:
    return {
        "event_id": eid,
        "unit_id": unit,
        "occurred_at": pd.Timestamp(occurred),
        "category": "criminal",
        "subtype": "其他",
        "severity": 2,
        "count": 1,
        "escalated": False,
        "casualties": 0,
        "resolved_at": pd.Timestamp(occurred),
        "reported_at": pd.Timestamp(reported),
    }


def test_persistence_at_an_origin_does_not_see_a_later_report():
    rng = np.random.default_rng(5)
    units = random_units(rng)
    events = random_events(rng, units, start=FIRST, months=30)
    events["reported_at"] = events["occurred_at"]
    quiet, late, prompt, earlier = units["unit_id"].to_numpy()[-4:]  # units random_events leaves alone
    origin = "2021-05"  # the last labelled month: the one test month
    extra = pd.DataFrame(
        [
            _event(
                "late", late, "2021-05-10", "2021-06-03"
            ),  # a criminal case of the origin's month, entered after it
            _event("prompt", prompt, "2021-05-10", "2021-05-10"),
            _event(
                "earlier", earlier, "2021-04-10", "2021-06-03"
            ),  # a training row's window, entered after the origin
        ]
    )
    events = pd.concat([events, extra], ignore_index=True)
    panel = build_panel(units, events, CFG.categories, first_month=FIRST, last_month=LAST)
    assert panel.knowledge is not None
    dates = labelled_as_of(panel, 1, 1)
    assert dates[-1] == origin
    frame = build_frame(panel, dates, tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)
    names = feature_names(frame)
    history = tier_history(panel, CFG)
    known_labels = KnownLabels(panel, 1, CFG.tiers)
    honest = rolling_origin(frame, names, history, CFG, train_labels=known_labels)
    naive = rolling_origin(frame, names, history, CFG)

    def p(result, model: str, unit: str) -> np.ndarray:
        return result.predictions[model][0][(result.meta["unit_id"] == unit).to_numpy()][0]

    # the final record: the late case made the origin's month red, as for the prompt one
    np.testing.assert_array_equal(p(naive, "persistence", late), p(naive, "persistence", prompt))
    # as known at the origin the month was quiet: the unit is forecast as a quiet unit is
    np.testing.assert_array_equal(p(honest, "persistence", late), p(honest, "persistence", quiet))
    assert not np.array_equal(p(honest, "persistence", late), p(honest, "persistence", prompt))
    assert not np.array_equal(p(honest, "historical_rate", late), p(naive, "historical_rate", late))
    # the transition matrix is fitted on the training rows' last tiers and labels as known at the origin
    train = frame[(frame["as_of"] < origin) & frame["tier"].notna()]
    last = history.known_at(origin).last_tier(train["unit_id"], train["as_of"])
    y = known_labels(train, origin)["tier"]
    pers = Persistence().fit(last[last >= 0], y[last >= 0])
    np.testing.assert_allclose(p(honest, "persistence", quiet), pers.predict_proba([0])[0])
    final_last = history.last_tier(train["unit_id"], train["as_of"])
    assert (final_last != last).any()  # the earlier case: its window's tier differs at the origin

    # label_lag "auto": each fold's model leaves out the months still settling as the records held
    # them at its origin; final-record labels are settled
    for fold in honest.folds:
        lag = known_labels.label_lag(fold["test"][0])
        assert fold["label_lag"] == lag
    assert [f["label_lag"] for f in naive.folds] == [0] * len(naive.folds)
    assert honest.last_model.train_window_[1] == month_label(
        month_number(honest.folds[-1]["train_until"]) - honest.folds[-1]["label_lag"]
    )
