"""The forecast history's two halves, on a tiny world with a stand-in model: earlier months scored
one at a time with relative risk and tier sets, and the observed tier of every closed window."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from worlds import random_events, random_units

from sanling.core.config import Config
from sanling.core.vocabulary import CATEGORIES_ZH, TIERS
from sanling.features.build import build_frame
from sanling.features.panel import build_panel
from sanling.pipeline.scoring import backfill_scores, observed_tiers


class Model:
    """P(red) grows with the unit's position in the frame: a deterministic stand-in."""

    def predict_proba(self, frame):
        n = len(frame)
        red = np.linspace(0.01, 0.2, n)
        return np.column_stack([0.6 - red, np.full(n, 0.3), np.full(n, 0.1), red])


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(4)
    units = random_units(rng)
    events = random_events(rng, units)
    panel = build_panel(units, events, CATEGORIES_ZH)
    conformal = {"level": 0.9, "thresholds": {"all": 0.7}, "n_calibration": {"all": 100}}
    bundle = SimpleNamespace(model=Model(), config=Config(), info={"conformal": conformal})
    return units, panel, bundle


def test_backfill_scores_each_month_with_peers_and_tier_sets(world):
    units, panel, bundle = world
    months = ["2020-06", "2020-07"]
    out = dict(backfill_scores(bundle, None, panel, months, model_version="7"))
    assert list(out) == months
    rows = out["2020-07"]
    assert len(rows) == len(units) and {r["as_of"] for r in rows} == {"2020-07"}
    assert all(r["reasons"] == [] and r["tier"] in TIERS for r in rows)
    # relative risk: within each (county, unit type) the ratios average to 1
    by_group = {}
    for r, (_, u) in zip(rows, units.iterrows(), strict=True):
        by_group.setdefault((u["county"], u["unit_type"]), []).append(r["relative_risk"]["red"])
    assert all(abs(np.mean(v) - 1) < 0.01 for v in by_group.values())
    # tier sets from the bundle's thresholds: every tier with p ≥ 0.3
    assert rows[0]["tier_set"] == ["blue", "yellow"] and rows[0]["tier_set_level"] == 0.9


def test_observed_tiers_only_for_closed_windows_and_as_the_labels_say(world):
    _, panel, _ = world
    last = panel.last_month
    out = observed_tiers(panel, Config(), ["2020-06", last])
    assert {m for _, m, _ in out} == {"2020-06"}  # the last month's window is still open
    c = Config()
    frame = build_frame(panel, ["2020-06"], tier_rules=c.tiers, horizon_months=1, params=c.features)
    expected = {(u, TIERS[int(t)]) for u, t in zip(frame["unit_id"], frame["tier"], strict=True)}
    assert {(u, t) for u, _, t in out} == expected
