"""The fast path of late records (features/late.py: the final record corrected over the cells that
hold a stale event) against the plain rebuild (``Panel.as_known``: the panel of the records as they
stood at each month), on tiny random worlds with random late reports, escalations, corrections and
attribute history."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records import late_records
from worlds import random_events, random_units

from sanling.core.config import Config
from sanling.core.months import month_label
from sanling.features.build import build_frame, feature_names
from sanling.features.late import late_view
from sanling.features.panel import build_panel

CFG = Config()
FIRST = "2019-01"


def _frame(panel, as_of, unit_ids=None):
    return build_frame(
        panel,
        as_of,
        tier_rules=CFG.tiers,
        horizon_months=1,
        params=CFG.features,
        unit_ids=unit_ids,
        with_labels=False,
    )


def _numeric(frame: pd.DataFrame) -> list[str]:
    return [n for n in feature_names(frame) if frame[n].dtype in (np.float32, np.int16)]


def _world(seed: int, n_units: int, n_events: int, months: int):
    rng = np.random.default_rng(seed)
    units = random_units(rng, n_units)
    events = random_events(rng, units, n=n_events, start=FIRST, months=months)
    events, updates, history = late_records(rng, units, events)
    panel = build_panel(units, events, CFG.categories, first_month=FIRST, updates=updates, history=history)
    return units, panel


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_units=st.integers(6, 30),
    n_events=st.integers(20, 300),
    months=st.integers(3, 20),
)
def test_the_corrected_final_record_equals_the_rebuild_at_every_month(seed, n_units, n_events, months):
    units, panel = _world(seed, n_units, n_events, months)
    labels = [month_label(panel.first_month + t) for t in range(panel.n_months)]
    fast = _frame(panel, labels)
    names = _numeric(fast)
    for t, label in enumerate(labels):
        then = _frame(panel.as_known(t), [label])
        now = fast[fast["as_of"] == label]
        np.testing.assert_array_equal(now[names].to_numpy(), then[names].to_numpy(), err_msg=label)
    # A few units and a repeated month take the same path.
    some = list(units["unit_id"].iloc[:: max(1, n_units // 4)])
    pick = [labels[-1], labels[len(labels) // 2], labels[-1]]
    few = _frame(panel, pick, unit_ids=some)
    for i, label in enumerate(pick):
        expected = _frame(panel.as_known(labels.index(label)), [label], unit_ids=some)
        got = few.iloc[i * len(some) : (i + 1) * len(some)]
        np.testing.assert_array_equal(got[names].to_numpy(), expected[names].to_numpy(), err_msg=label)


def test_the_fast_path_corrects_the_features_that_are_no_window_sums():
    """The world has late records for every kind of feature: the correction reaches months since,
    decayed counts, highest severity, oldest open event, tier history and peer averages."""
    _, panel = _world(7, 40, 600, 30)
    labels = [month_label(panel.first_month + t) for t in range(panel.n_months)]
    fast = _frame(panel, labels)
    # The final record's features of the same months, with no correction.
    final = _frame(_without_knowledge(panel), labels)
    changed = {
        n
        for n in _numeric(fast)
        if not np.array_equal(fast[n].to_numpy(), final[n].to_numpy(), equal_nan=True)
    }
    for needle in (
        "months_since",
        "decay",
        "max_severity",
        "backlog_age",
        "tier_share",
        "tier_months",
        "peer_knn",
        "unresolved",
    ):
        assert any(needle in n for n in changed), needle
    assert late_view(panel, np.arange(panel.n_months), None) is not None


def _without_knowledge(panel):
    """The same final record with no record of when it was learnt."""
    from dataclasses import replace

    return replace(panel, knowledge=None, _cache={})
