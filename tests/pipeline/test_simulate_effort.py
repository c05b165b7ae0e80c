"""Reporting effort raises recorded events, not true risk: checked against the oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.pipeline.simulate.params import WorldParams
from sanling.pipeline.simulate.world import build_world


def _worlds():
    kw = {"preset": "county", "n_units": 120, "months": 24, "seed": 5}
    return build_world(**kw), build_world(**kw, params=WorldParams(reporting_effort=0.6))


def test_effort_adds_minor_hazards_where_grid_workers_are_many_and_nothing_else():
    base, busy = _worlds()

    def per_day(events: pd.DataFrame) -> pd.Series:
        day = events["occurred_at"].dt.strftime("%Y-%m-%d")
        return events.groupby([events["unit_id"], day, events["category"]]).size()

    # every event of the world without effort is still there (same unit, day and category); the
    # events' hours and subtypes are drawn afresh, so the comparison is by day
    diff = per_day(busy.events).sub(per_day(base.events), fill_value=0)
    assert (diff >= 0).all() and diff.sum() == len(busy.events) - len(base.events) > 0
    added = diff[diff > 0]
    assert set(added.index.get_level_values("category")) == {"hazard"}
    assert (busy.events["escalated"] & (busy.events["category"] == "hazard")).sum() == 0
    # the added hazards go to units with more grid workers per person than their type's mean
    u = base.units.set_index("unit_id")
    size = u["population"].astype(float).fillna(u["employees"].astype(float))
    per_1000 = u["grid_workers"].astype(float) / size * 1000
    hi = per_1000.groupby(u["unit_type"]).transform(lambda s: s > s.mean())
    got = added.groupby(level="unit_id").sum().reindex(u.index, fill_value=0)
    assert got[hi].sum() == got.sum()


def test_the_oracle_keeps_red_and_orange_and_moves_blue_to_yellow():
    base, busy = _worlds()
    t0, t1 = base.truth, busy.truth
    assert np.allclose(t0[["p_orange", "p_red"]], t1[["p_orange", "p_red"]])
    assert (t1["p_blue"] <= t0["p_blue"] + 1e-12).all() and (t1["p_blue"] < t0["p_blue"] - 1e-6).any()
    assert np.allclose(t1[["p_blue", "p_yellow", "p_orange", "p_red"]].sum(axis=1), 1.0)
    assert np.array_equal(base.red_counts, busy.red_counts)
    # the oracle is exact: the share of blue unit-months it predicts matches what the world recorded
    months = pd.PeriodIndex(busy.events["occurred_at"], freq="M").astype(str)
    any_event = set(zip(busy.events["unit_id"], months, strict=True))
    t = t1[t1["as_of"] >= "2018-06"]
    nxt = (pd.PeriodIndex(t["as_of"], freq="M") + 1).astype(str)
    blue = ~pd.Series([(uid, m) in any_event for uid, m in zip(t["unit_id"], nxt, strict=True)])
    assert abs(blue.mean() - t["p_blue"].mean()) < 0.02
