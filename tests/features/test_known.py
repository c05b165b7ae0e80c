"""What was known when: features and labels of a month use only what the records held at its end
(late reports, later escalations, corrections, attribute history)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records import late_records, records_at
from worlds import random_events, random_units

from sanling.core.config import Config
from sanling.core.months import month_label
from sanling.features.build import build_frame, feature_names
from sanling.features.labels import (
    OUTCOME_PREFIX,
    KnownLabels,
    rule_outcomes,
    rule_thresholds,
    tiers_from_outcomes,
    tiers_known_at,
    window_outcomes,
)
from sanling.features.panel import build_panel

CFG = Config()
FIRST = "2019-01"


def _late_world(seed: int):
    rng = np.random.default_rng(seed)
    units = random_units(rng)
    events = random_events(rng, units)
    events, updates, history = late_records(rng, units, events)
    return units, events, updates, history


def _frame(units, events, updates, history, as_of: list[str], last: str | None = None) -> pd.DataFrame:
    panel = build_panel(
        units, events, CFG.categories, first_month=FIRST, last_month=last, updates=updates, history=history
    )
    return build_frame(
        panel, as_of, tier_rules=CFG.tiers, horizon_months=1, params=CFG.features, with_labels=False
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_features_of_a_month_equal_those_from_the_records_as_they_stood_then(seed):
    units, events, updates, history = _late_world(seed)
    months = ["2019-02", "2019-09", "2020-01", "2020-07", "2021-03"]
    full = _frame(units, events, updates, history, months)
    names = feature_names(full)
    differs_from_naive = 0
    naive_panel_frame = _frame(
        units, events.drop(columns=["reported_at", "escalated_at"]), None, None, months
    )
    for m in months:
        ev_t, up_t, hist_t = records_at(events, updates, history, m)
        then = _frame(units, ev_t, up_t, hist_t, [m], last=m)
        now = full[full["as_of"] == m].reset_index(drop=True)
        pd.testing.assert_frame_equal(now[names], then[names], check_exact=False, rtol=1e-6, obj=m)
        naive = naive_panel_frame[naive_panel_frame["as_of"] == m].reset_index(drop=True)
        numeric = [n for n in names if now[n].dtype in (np.float32, np.int16)]
        differs_from_naive += int((naive[numeric].to_numpy() != now[numeric].to_numpy()).any())
    # The late records matter: treating them as known changes the features of most months.
    assert differs_from_naive >= 3


def test_one_unit_request_follows_the_same_rule():
    units, events, updates, history = _late_world(2)
    panel = build_panel(units, events, CFG.categories, first_month=FIRST, updates=updates, history=history)
    assert panel.stale_months().any()
    some = list(units["unit_id"].iloc[[3, 17, 30]])
    every = build_frame(
        panel, ["2020-05"], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features, with_labels=False
    )
    few = build_frame(
        panel,
        ["2020-05"],
        tier_rules=CFG.tiers,
        horizon_months=1,
        params=CFG.features,
        unit_ids=some,
        with_labels=False,
    )
    names = feature_names(every)
    expected = every.set_index("unit_id").loc[some, names].reset_index(drop=True)
    pd.testing.assert_frame_equal(few[names].reset_index(drop=True), expected)


def test_attribute_history_gives_the_value_valid_at_each_month():
    units, events, updates, history = _late_world(3)
    frame = _frame(units, events, updates, history, ["2019-01", "2020-06", "2021-06"])
    h = history.sort_values("valid_from", kind="stable")
    for m in ("2019-01", "2020-06", "2021-06"):
        end = (pd.Period(m, "M") + 1).start_time
        expected = (
            h[h["valid_from"] < end]
            .groupby("unit_id")["value"]
            .last()
            .astype(float)
            .reindex(units["unit_id"])
            .to_numpy()
        )
        got = frame.loc[frame["as_of"] == m, "mediators"].to_numpy(dtype=float)
        np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_text_attribute_history_gives_the_category_valid_at_each_month():
    units, events, updates, history = _late_world(3)
    rng = np.random.default_rng(7)
    first = pd.Timestamp(FIRST)
    rows = [(u, "industry", v, first) for u, v in zip(units["unit_id"], units["industry"], strict=True)]
    for u in units["unit_id"].iloc[::3]:  # a third of the units change trade, one to a new one
        day = first + pd.Timedelta(days=int(rng.integers(30, 800)))
        rows.append((u, "industry", str(rng.choice(["服务", "旅游"])), day))
    text = pd.DataFrame(rows, columns=["unit_id", "attribute", "value", "valid_from"])
    history = pd.concat([history, text], ignore_index=True)
    months = ["2019-01", "2020-06", "2021-06"]
    frame = _frame(units, events, updates, history, months)
    assert "旅游" in frame["industry"].cat.categories  # a value only the history holds
    h = text.sort_values("valid_from", kind="stable")
    for m in months:
        end = (pd.Period(m, "M") + 1).start_time
        expected = h[h["valid_from"] < end].groupby("unit_id")["value"].last().reindex(units["unit_id"])
        got = frame.loc[frame["as_of"] == m, "industry"].astype(str).to_numpy()
        np.testing.assert_array_equal(got, expected.astype(str).to_numpy(), err_msg=m)
        # the records as they stood then give the same values
        ev_t, up_t, hist_t = records_at(events, updates, history, m)
        then = _frame(units, ev_t, up_t, hist_t, [m], last=m)
        np.testing.assert_array_equal(then["industry"].astype(str).to_numpy(), got, err_msg=m)
    changed = frame.pivot(index="unit_id", columns="as_of", values="industry").astype(str)
    assert (changed["2019-01"] != changed["2021-06"]).any()  # not the registry's one value


def test_labels_at_an_origin_exclude_later_reports():
    units, events, updates, history = _late_world(4)
    panel = build_panel(units, events, CFG.categories, first_month=FIRST, updates=updates, history=history)
    origin, as_of = "2020-06", ["2020-03", "2020-04", "2020-05"]
    known = tiers_known_at(panel, as_of, origin, 1, CFG.tiers)
    ev_t, up_t, hist_t = records_at(events, updates, history, origin)
    then = build_panel(
        units, ev_t, CFG.categories, first_month=FIRST, last_month=origin, updates=up_t, history=hist_t
    )
    expected = tiers_from_outcomes(window_outcomes(then, as_of, 1), CFG.tiers)
    np.testing.assert_array_equal(known, expected)
    final = tiers_from_outcomes(window_outcomes(panel, as_of, 1), CFG.tiers)
    assert (final != known).any()  # later reports raise some of these labels in the final record
    assert (final >= known).mean() > 0.9

    rows = pd.DataFrame({"unit_id": np.repeat(units["unit_id"].to_numpy()[:5], 3), "as_of": as_of * 5})
    got = KnownLabels(panel, 1, CFG.tiers)(rows, origin)
    u = np.repeat(np.arange(5), 3)
    d = np.tile(np.arange(3), 5)
    np.testing.assert_array_equal(got["tier"], known[d, u])
    # the count model's targets too: every window total the rules name, as the records held it
    then_totals, final_totals = window_outcomes(then, as_of, 1), window_outcomes(panel, as_of, 1)
    names = rule_outcomes(CFG.tiers, list(panel.categories))
    assert {"dispute", "petition_escalated", "dispute_unresolved", "casualties"} <= set(names)
    assert set(got) == {"tier", *(OUTCOME_PREFIX + n for n in names)}
    for n in names:
        np.testing.assert_array_equal(got[OUTCOME_PREFIX + n], then_totals[n][d, u])
    assert any((final_totals[n][d, u] != then_totals[n][d, u]).any() for n in names)


def _one_event_panel(base: int, updates: list[tuple[int, int]], field: str = "casualties"):
    """One unit, one event in 2020-01 with ``casualties=base``; updates (value, day offset)."""
    units = pd.DataFrame(
        {
            "unit_id": ["u"],
            "unit_name": ["甲"],
            "unit_type": ["village"],
            "township": ["镇"],
            "county": ["县"],
            "city": ["市"],
        }
    )
    t0 = pd.Timestamp("2020-01-10")
    events = pd.DataFrame(
        {
            "event_id": ["e"],
            "unit_id": ["u"],
            "occurred_at": [t0],
            "category": ["criminal"],
            "count": [1],
            "casualties": [base],
            "escalated": [False],
            "severity": [2],
            "resolved_at": [pd.NaT],
            "reported_at": [t0],
            "escalated_at": [pd.NaT],
        }
    )
    ups = pd.DataFrame(
        {
            "event_id": "e",
            "field": field,
            "value": [str(v) for v, _ in updates],
            "recorded_at": [t0 + pd.Timedelta(days=d) for _, d in updates],
        }
    )
    return build_panel(units, events, CFG.categories, last_month="2021-12", updates=ups), t0


@settings(max_examples=60, deadline=None)
@given(
    base=st.integers(0, 5),
    a=st.integers(0, 5),
    b=st.integers(0, 5),
    day_a=st.integers(0, 600),
    day_b=st.integers(0, 600),
    b_first_in_file=st.booleans(),
)
def test_the_later_recorded_correction_wins_at_any_month(base, a, b, day_a, day_b, b_first_in_file):
    ups = [(b, day_b), (a, day_a)] if b_first_in_file else [(a, day_a), (b, day_b)]
    panel, t0 = _one_event_panel(base, ups)
    month_of = lambda d: (t0 + pd.Timedelta(days=d)).to_period("M")  # noqa: E731
    start = t0.to_period("M")
    for t in range(panel.n_months):
        now = start + t
        seen = [(day, pos, v) for pos, (v, day) in enumerate(ups) if month_of(day) <= now]
        expected = max(seen)[2] if seen else base  # latest recorded_at; a tie goes to the later row
        got = panel.knowledge.at(t).casualties if panel.knowledge is not None else np.array([base])
        assert int(got[0]) == expected, (t, ups)
    assert int(panel.ev_casualties[0]) == max((day, pos, v) for pos, (v, day) in enumerate(ups))[2]


def test_rule_thresholds_are_the_counts_where_a_rule_can_flip():
    from sanling.core.config import TierRules

    rules = TierRules(
        red="dispute >= 200", orange="150 <= dispute or hazard > 2.5", yellow="fire == 3 or petition"
    )
    assert rule_thresholds(rules) == {"dispute": [150, 200], "hazard": [3], "fire": [3, 4]}
    assert rule_thresholds(CFG.tiers)["dispute_unresolved"] == [2]


def test_the_labelled_frame_carries_the_window_totals_the_rules_name():
    units, events, updates, history = _late_world(2)
    panel = build_panel(units, events, CFG.categories, first_month=FIRST, updates=updates, history=history)
    as_of = [month_label(panel.first_month + i) for i in range(panel.n_months)]
    frame = build_frame(panel, as_of, tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)
    totals = window_outcomes(panel, as_of[:-1], 1)
    for name in rule_outcomes(CFG.tiers, list(panel.categories)):
        col = frame[OUTCOME_PREFIX + name].to_numpy().reshape(len(as_of), -1)
        np.testing.assert_array_equal(col[:-1], totals[name])
        assert np.isnan(col[-1]).all()  # the last month's window is not in the data
    assert not any(c.startswith(OUTCOME_PREFIX) for c in feature_names(frame))


def test_unsettled_shares_are_read_from_the_records_own_delays():
    from sanling.features.labels import settled_lag, unsettled_shares

    units, events, updates, history = _late_world(5)
    panel = build_panel(units, events, CFG.categories, first_month=FIRST, updates=updates, history=history)
    shares = unsettled_shares(panel, 1, CFG.tiers, max_lag=4, n_origins=2)
    # recompute one entry by hand: the windows ending L months before origin o, as held at o, vs now
    o, lag = panel.n_months - 1 - 4, 1
    as_of = [month_label(panel.first_month + o - lag - 1), month_label(panel.first_month + o - 1 - lag - 1)]
    first = tiers_known_at(panel, as_of[:1], month_label(panel.first_month + o), 1, CFG.tiers)
    second = tiers_known_at(panel, as_of[1:], month_label(panel.first_month + o - 1), 1, CFG.tiers)
    final = tiers_from_outcomes(window_outcomes(panel, as_of, 1), CFG.tiers)
    expected = ((first[0] != final[0]).mean() + (second[0] != final[1]).mean()) / 2
    assert shares[lag] == pytest.approx(expected)
    assert shares[0] > 0  # the month just ended still misses late reports and escalations
    assert shares[0] > shares[-1]
    assert settled_lag(shares, tolerance=shares[0]) == 0
    assert settled_lag(shares, tolerance=-1.0) == len(shares) - 1

    rng = np.random.default_rng(5)
    units = random_units(rng)
    on_time = build_panel(units, random_events(rng, units), CFG.categories, first_month=FIRST)
    assert unsettled_shares(on_time, 1, CFG.tiers) is None and settled_lag(None) == 0
