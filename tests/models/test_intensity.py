"""Reporting intensity: grid workers per 1,000 people (or a configured column) against the peers, and
the residual by intensity decile that tells over-warning of busy units from real risk."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models.intensity import intensity_against_peers, reporting_intensity, residual_by_decile

UNITS = pd.DataFrame(
    {
        "unit_id": ["a", "b", "c", "e"],
        "unit_type": ["village", "village", "village", "enterprise"],
        "county": ["甲县", "甲县", "乙县", "甲县"],
        "population": [1000, 2000, 500, None],
        "employees": [None, None, None, 200],
        "grid_workers": [4, 2, 1, 1],
        "inspections": [10, 20, 30, 40],
    }
)


def test_grid_workers_per_thousand_people_or_employees_against_same_type_same_county():
    values, label = reporting_intensity(UNITS)
    assert label == "网格员每千人" and values.to_dict() == {"a": 4.0, "b": 1.0, "c": 2.0, "e": 5.0}
    peers = intensity_against_peers(UNITS, values, label)
    assert peers["a"] == {"label_zh": "网格员每千人", "value": 4.0, "peer_mean": 2.5, "ratio": 1.6}
    assert peers["c"]["ratio"] == 1.0 and peers["e"]["ratio"] == 1.0  # alone in their groups


def test_a_configured_column_wins_and_units_without_either_have_none():
    values, label = reporting_intensity(UNITS, "inspections")
    assert label == "inspections" and values["c"] == 30.0
    assert reporting_intensity(UNITS, "no_such_column") is None
    assert reporting_intensity(UNITS.drop(columns=["grid_workers"])) is None


def test_over_warning_of_busy_units_shows_in_the_top_deciles_not_for_the_oracle():
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.random(n)  # reporting intensity
    p_orange = np.full(n, 0.2)
    oracle = np.column_stack([np.full(n, 0.5), np.full(n, 0.3), p_orange - 0.05, np.full(n, 0.05)])
    y = (np.cumsum(oracle, axis=1) > rng.random((n, 1))).argmax(axis=1)
    # a model that reads recorded counts as risk: more warning where intensity is high
    bump = 0.15 * x
    model = oracle + np.column_stack([-bump, np.zeros(n), bump, np.zeros(n)])
    rows = residual_by_decile(y, {"lightgbm": model, "oracle": oracle}, x)
    assert [r["decile"] for r in rows] == list(range(1, 11)) and sum(r["n"] for r in rows) == n
    top, bottom = rows[-1], rows[0]
    assert top["residual_ge_orange.lightgbm"] < -0.1 < bottom["residual_ge_orange.lightgbm"]
    assert all(abs(r["residual_ge_orange.oracle"]) < 0.03 for r in rows)
    assert residual_by_decile(y[:5], {"m": model[:5]}, x[:5]) == []
