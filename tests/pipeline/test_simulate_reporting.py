"""The simulator's reporting process: a delay distribution, later escalations, corrections toward
what happened, mediators that respond to bad quarters — and an oracle that does not move."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sanling.pipeline.simulate import simulate_world
from sanling.pipeline.simulate.reporting import ReportingParams
from sanling.pipeline.simulate.world import build_world


@pytest.fixture(scope="module")
def worlds():
    kw = {"preset": "county", "n_units": 200, "months": 36, "seed": 11}
    return build_world(**kw), build_world(**kw, reporting=ReportingParams())


def test_reporting_leaves_what_happened_and_the_oracle_unchanged(worlds):
    plain, reported = worlds
    pd.testing.assert_frame_equal(plain.truth, reported.truth)
    ev = reported.events.set_index("event_id")
    truth = plain.events.set_index("event_id").loc[ev.index]
    assert (ev["occurred_at"] == truth["occurred_at"]).all() and (ev["category"] == truth["category"]).all()
    # Only events not yet reported at the data's last day are missing from the export.
    missing = plain.events[~plain.events["event_id"].isin(ev.index)]
    assert 0 < len(missing) < 0.02 * len(plain.events)
    assert (missing["occurred_at"] >= pd.Timestamp("2020-06-01")).all()
    # The final record (events + all corrections) holds what happened, but for corrections that
    # would be recorded after the data's last day.
    final = ev[["casualties", "severity"]].astype("int64").copy()
    assert (final["casualties"] < truth["casualties"]).sum() > 5  # first reports are low
    for u in reported.updates.itertuples(index=False):
        final.loc[u.event_id, u.field] = int(u.value)
    for col in ("casualties", "severity"):
        happened = truth[col].astype("int64")
        assert (final[col] <= happened).all()
        assert (final[col] != happened).mean() < 0.005


def test_delays_are_mostly_zero_with_a_tail_varying_by_category(worlds):
    ev = worlds[1].events
    days = (ev["reported_at"] - ev["occurred_at"]).dt.total_seconds() / 86400
    assert (days >= 0).all()
    assert 0.7 < (days == 0).mean() < 0.95
    assert days.quantile(0.99) > 30  # weeks to months
    late = (days > 0).groupby(ev["category"]).mean()
    assert late["hazard"] > 2 * late["criminal"]
    esc = ev[ev["escalated"]]
    assert len(esc) > 0 and (esc["escalated_at"] > esc["occurred_at"]).all()


def test_mediators_are_added_after_bad_quarters(worlds):
    plain, reported = worlds
    h = reported.history
    assert set(h["attribute"]) == {"mediators"}
    first = h.groupby("unit_id")["value"].first()
    last = h.groupby("unit_id")["value"].last()
    assert (last >= first).all() and (last > first).mean() > 0.05
    registry = reported.units.set_index("unit_id")["mediators"]
    np.testing.assert_array_equal(registry.loc[last.index].to_numpy(), last.to_numpy())
    np.testing.assert_array_equal(
        plain.units.set_index("unit_id")["mediators"].loc[first.index], first.to_numpy()
    )


def test_the_switch_writes_the_old_world(tmp_path):
    simulate_world(tmp_path / "new", preset="county", n_units=60, months=24, seed=1, progress=False)
    simulate_world(
        tmp_path / "old", preset="county", n_units=60, months=24, seed=1, progress=False, reporting=False
    )
    assert (tmp_path / "new" / "event_updates.parquet").exists()
    assert (tmp_path / "new" / "unit_history.parquet").exists()
    assert not (tmp_path / "old" / "event_updates.parquet").exists()
    old = pd.read_parquet(tmp_path / "old" / "events.parquet")
    assert "reported_at" not in old.columns
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "old" / "truth.parquet"),
        pd.read_parquet(tmp_path / "new" / "truth.parquet"),
    )
