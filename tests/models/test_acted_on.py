"""Visits split the backtest rows; visits in the forecast window only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models.acted_on import acted_on_metrics, visited_in_window


def test_a_visit_counts_for_the_rows_whose_forecast_window_holds_it():
    meta = pd.DataFrame(
        {
            "unit_id": ["a", "a", "a", "b", "c"],
            "as_of": ["2022-01", "2022-02", "2022-03", "2022-01", "2022-01"],
        }
    )
    visits = pd.DataFrame(
        {
            "unit_id": ["a", "b", "zz"],
            "visited_at": pd.to_datetime(["2022-03-15", "2022-01-31", "2022-02-01"]),
        }
    )
    # a's visit in March lies in the window of as-of February (h=1); b's visit is in its as-of month
    assert visited_in_window(meta, visits, 1).tolist() == [False, True, False, False, False]
    # with a 2-month horizon the window of as-of January also holds March
    assert visited_in_window(meta, visits, 2).tolist() == [True, True, False, False, False]
    assert not visited_in_window(meta, visits.iloc[:0], 1).any()


def test_metrics_are_computed_apart_for_visited_and_not_visited_rows():
    y = np.array([3, 0, 0, 3, 0, 1])
    proba = np.tile([0.4, 0.3, 0.2, 0.1], (6, 1))
    decided = np.array([3, 3, 0, 3, 0, 1])
    visited = np.array([False, True, True, False, False, False])
    out = acted_on_metrics(y, {"lightgbm": (proba, decided)}, visited)
    assert out["visited"]["n_rows"] == 2 and out["not_visited"]["n_rows"] == 4
    assert out["visited"]["red_share"] == 0.0 and out["not_visited"]["red_share"] == 0.5
    assert out["not_visited"]["models"]["lightgbm"]["red_recall"] == 1.0
    assert out["visited"]["models"]["lightgbm"]["red_precision"] == 0.0  # the warned, visited, quiet unit
    empty = acted_on_metrics(y, {"lightgbm": (proba, decided)}, np.zeros(6, dtype=bool))
    assert empty["visited"] == {"n_rows": 0, "red_share": None, "models": {}}
