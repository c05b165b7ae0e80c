"""The fast array path against the plain reference, the frame's shape and types, and leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from reference import reference_features, reference_outcomes, reference_tiers
from worlds import random_events, random_units, yearly_events

from sanling.core.config import Config, FeatureParams
from sanling.core.errors import DataError
from sanling.features.build import build_frame, feature_names, registry_for
from sanling.features.grid import labelled_as_of
from sanling.features.labels import OUTCOME_PREFIX, rule_outcomes
from sanling.features.panel import build_panel

CFG = Config()
# Decays and trigonometry go through different float operations in the two paths.
APPROX_KINDS = {"decay", "recency_decay", "season_sin", "season_cos", "spring_festival_months"}


def _world(seed: int):
    rng = np.random.default_rng(seed)
    units = random_units(rng)
    events = random_events(rng, units)
    return units, events, build_panel(units, events, CFG.categories)


def _assert_matches_reference(frame: pd.DataFrame, ref: pd.DataFrame, registry) -> None:
    checked = 0
    for f in registry:
        if f.dtype == "category":
            continue
        fast, slow = frame[f.name].to_numpy(), ref[f.name].to_numpy()
        if f.kind in APPROX_KINDS:
            np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-7, err_msg=f.name)
        else:
            np.testing.assert_array_equal(fast, slow, err_msg=f.name)
        checked += 1
    assert checked > 150


@pytest.mark.parametrize(("seed", "horizon"), [(0, 1), (1, 3), (2, 12)])
def test_fast_path_equals_reference(seed: int, horizon: int) -> None:
    units, events, panel = _world(seed)
    as_of = ["2019-01", "2020-02", panel.last_month]
    frame = build_frame(panel, as_of, tier_rules=CFG.tiers, horizon_months=horizon, params=CFG.features)
    registry = registry_for(panel, CFG.features)
    ref = reference_features(units, events, registry, as_of, horizon_months=horizon, knn_k=CFG.features.knn_k)
    assert frame["unit_id"].tolist() == ref["unit_id"].tolist()
    assert frame["as_of"].tolist() == ref["as_of"].tolist()
    _assert_matches_reference(frame, ref, registry)
    # The world really exercises the features (a comparison of zeros would prove nothing).
    for name in (
        "dispute_unresolved_backlog",
        "dispute_backlog_age_months",
        "petition_escalated_count_12m",
        "peer_knn_dispute_count_12m",
        "criminal_max_severity_12m",
        "dispute_per_1k_12m",
        "dispute_rate_all",
        "tier_share_yellow_all",
        "tier_months_orange_12m",
    ):
        assert (frame[name].fillna(0) > 0).any(), name


@pytest.mark.parametrize("horizon", [1, 3])
def test_labels_equal_reference(horizon: int) -> None:
    units, events, panel = _world(3)
    as_of = labelled_as_of(panel, horizon, 4)
    frame = build_frame(
        panel, [*as_of, panel.last_month], tier_rules=CFG.tiers, horizon_months=horizon, params=CFG.features
    )
    seen = set()
    for label in as_of:
        want = reference_tiers(
            reference_outcomes(units, events, list(CFG.categories), label, horizon), CFG.tiers
        )
        got = frame.loc[frame["as_of"] == label, "tier"].to_numpy(dtype=np.int8)
        np.testing.assert_array_equal(got, want, err_msg=label)
        seen |= set(got.tolist())
    assert seen == {0, 1, 2, 3}
    assert frame.loc[frame["as_of"] == panel.last_month, "tier"].isna().all()
    assert frame["tier"].dtype == "Int8"


def test_yearly_data_on_december_31st() -> None:
    rng = np.random.default_rng(7)
    units = random_units(rng, 30)
    events = yearly_events(rng, units)
    panel = build_panel(units, events, CFG.categories)
    as_of = labelled_as_of(panel, 12, 12)
    assert as_of == ["2016-12", "2017-12", "2018-12", "2019-12", "2020-12"]
    frame = build_frame(panel, as_of, tier_rules=CFG.tiers, horizon_months=12, params=CFG.features)
    registry = registry_for(panel, CFG.features)
    ref = reference_features(units, events, registry, as_of[-3:], horizon_months=12, knn_k=CFG.features.knn_k)
    _assert_matches_reference(frame[frame["as_of"].isin(as_of[-3:])].reset_index(drop=True), ref, registry)
    for label in as_of:
        want = reference_tiers(reference_outcomes(units, events, list(CFG.categories), label, 12), CFG.tiers)
        np.testing.assert_array_equal(
            frame.loc[frame["as_of"] == label, "tier"].to_numpy(dtype=np.int8), want
        )
    assert (
        frame.loc[frame["as_of"] == "2019-12", "dispute_count_12m"].sum()
        == events.loc[
            (events["category"] == "dispute") & (events["occurred_at"].dt.year == 2019), "count"
        ].sum()
    )


def test_frame_layout_and_types() -> None:
    units, _events, panel = _world(4)
    frame = build_frame(
        panel, [panel.last_month], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features
    )
    names = feature_names(frame)
    assert names == feature_names(registry_for(panel, CFG.features))
    assert list(frame.columns[:5]) == ["unit_id", "as_of", "unit_type", "township", "county"]
    # the labels last: the tier, then the window totals the rules name (the count model's targets)
    outcomes = [OUTCOME_PREFIX + n for n in rule_outcomes(CFG.tiers, list(panel.categories))]
    assert list(frame.columns[-len(outcomes) - 1 :]) == ["tier", *outcomes]
    assert 120 <= len(names) <= 220
    assert isinstance(frame["unit_type"].dtype, pd.CategoricalDtype)
    assert list(frame["unit_type"].cat.categories) == ["community", "enterprise", "village"]
    assert isinstance(frame["industry"].dtype, pd.CategoricalDtype)
    numeric = [n for n in names if n not in ("unit_type", "industry")]
    declared = {f.name: f.dtype for f in registry_for(panel, CFG.features)}
    assert all(frame[n].dtype == declared[n] for n in numeric)
    # the whole-number features (counts, months, severities, flags) are int16: half a float32
    assert sum(frame[n].dtype == np.int16 for n in numeric) > 100
    for forbidden in ("unit_id", "unit_name", "lat", "lon", "township", "county", "city"):
        assert forbidden not in names
    assert len(frame) == len(units)


def test_single_unit_rows_equal_full_frame() -> None:
    units, _events, panel = _world(5)
    full = build_frame(
        panel, ["2020-06", panel.last_month], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features
    )
    pick = [units["unit_id"].iloc[7], units["unit_id"].iloc[2]]
    part = build_frame(
        panel,
        ["2020-06", panel.last_month],
        tier_rules=CFG.tiers,
        horizon_months=1,
        params=CFG.features,
        unit_ids=pick,
    )
    want = full.set_index(["as_of", "unit_id"]).loc[
        [(a, u) for a in ("2020-06", panel.last_month) for u in pick]
    ]
    pd.testing.assert_frame_equal(part.set_index(["as_of", "unit_id"]), want)


def test_counts_beyond_int16_come_as_exact_float32() -> None:
    """A monthly statistical report can stand for more events than int16 holds: those features (and
    only those) are float32, with the same values as the reference, in the full and the unit frames."""
    rng = np.random.default_rng(6)
    units = random_units(rng)
    events = random_events(rng, units)
    big = events[events["category"] == "dispute"].index[0]
    events.loc[big, "count"] = 40_000
    panel = build_panel(units, events, CFG.categories)
    registry = registry_for(panel, CFG.features)
    as_of = [panel.last_month, "2020-06"]
    frame = build_frame(panel, as_of, tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)
    ref = reference_features(units, events, registry, as_of, horizon_months=1, knn_k=CFG.features.knn_k)
    _assert_matches_reference(frame, ref, registry)
    wide = {
        f.name
        for f in registry
        if f.dtype == "int16" and np.abs(ref[f.name].to_numpy()).max() > np.iinfo(np.int16).max
    }
    assert "dispute_count_24m" in wide and "events_count_24m" in wide
    for f in registry:
        if f.dtype != "category":
            assert frame[f.name].dtype == (np.float32 if f.name in wide else np.dtype(f.dtype)), f.name
    pick = [events.loc[big, "unit_id"], units["unit_id"].iloc[3]]
    part = build_frame(
        panel, as_of, tier_rules=CFG.tiers, horizon_months=1, params=CFG.features, unit_ids=pick
    )
    want = frame.set_index(["as_of", "unit_id"]).loc[[(a, u) for a in as_of for u in pick]]
    pd.testing.assert_frame_equal(part.set_index(["as_of", "unit_id"]), want, check_dtype=False)


def test_bad_requests_name_the_problem() -> None:
    _, _, panel = _world(6)
    with pytest.raises(DataError, match="nope"):
        build_frame(
            panel,
            [panel.last_month],
            tier_rules=CFG.tiers,
            horizon_months=1,
            params=CFG.features,
            unit_ids=["nope"],
        )
    with pytest.raises(DataError, match="2030-01"):
        build_frame(panel, ["2030-01"], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)
    with pytest.raises(DataError, match="YYYY-MM"):
        build_frame(panel, ["2020/01"], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)


def test_added_category_flows_through() -> None:
    rng = np.random.default_rng(8)
    cats = {**CFG.categories, "traffic": "交通事故"}
    units = random_units(rng)
    events = random_events(rng, units, categories=cats)
    panel = build_panel(units, events, cats)
    frame = build_frame(panel, ["2020-06"], tier_rules=CFG.tiers, horizon_months=1, params=FeatureParams())
    assert "traffic_count_12m" in frame and "peer_county_traffic_count_12m" in frame
    want = events.loc[
        (events["category"] == "traffic")
        & (events["occurred_at"] >= "2019-07-01")
        & (events["occurred_at"] < "2020-07-01"),
        "count",
    ].sum()
    assert frame["traffic_count_12m"].sum() == want > 0
    with pytest.raises(DataError, match="traffic"):
        build_panel(units, events, CFG.categories)


# --- leakage ----------------------------------------------------------------------------------------


def _features_at(units, events, as_of: str) -> pd.DataFrame:
    panel = build_panel(units, events, CFG.categories)
    frame = build_frame(
        panel, [as_of], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features, with_labels=False
    )
    return frame.drop(columns=["tier"], errors="ignore")


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_events_after_as_of_move_no_feature(seed: int) -> None:
    rng = np.random.default_rng(seed)
    units = random_units(rng)
    events = random_events(rng, units)
    as_of = "2020-03"
    cut = pd.Timestamp("2020-04-01")
    base = _features_at(units, events, as_of)
    later = events["occurred_at"] >= cut

    removed = events[~later | (rng.random(len(events)) < 0.5)]
    changed = events.copy()
    idx = changed.index[later]
    changed.loc[idx, "count"] = changed.loc[idx, "count"] + 3
    changed.loc[idx, "category"] = "criminal"
    changed.loc[idx, "escalated"] = ~changed.loc[idx, "escalated"]
    added = pd.concat(
        [
            events,
            random_events(rng, units, n=200, start="2020-04", months=6).assign(
                event_id=lambda d: "N" + d["event_id"]
            ),
        ],
        ignore_index=True,
    )
    # Open at the as-of date, resolved later: moving the resolution to another later date changes nothing.
    moved = events.copy()
    open_then = (moved["occurred_at"] < cut) & ~(moved["resolved_at"] < cut)
    moved.loc[open_then, "resolved_at"] = cut + pd.to_timedelta(
        rng.integers(0, 400, open_then.sum()), unit="D"
    )

    assert open_then.sum() > 10 and later.sum() > 10
    for variant in (removed, changed, added, moved):
        pd.testing.assert_frame_equal(_features_at(units, variant, as_of), base)


def test_label_does_change_with_the_next_month() -> None:
    units, events, _ = _world(13)
    as_of = "2020-03"
    panel = build_panel(units, events, CFG.categories)
    before = build_frame(panel, [as_of], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)
    target = before.loc[before["tier"] < 3, "unit_id"].iloc[0]
    extra = pd.DataFrame(
        {
            "event_id": ["X1"],
            "unit_id": [target],
            "occurred_at": [pd.Timestamp("2020-04-30 23:00")],
            "category": ["criminal"],
            "count": [1],
            "escalated": [False],
            "casualties": [0],
            "resolved_at": [pd.NaT],
            "severity": pd.array([pd.NA], dtype="Int8"),
        }
    )
    panel2 = build_panel(units, pd.concat([events, extra], ignore_index=True), CFG.categories)
    after = build_frame(panel2, [as_of], tier_rules=CFG.tiers, horizon_months=1, params=CFG.features)
    row = after["unit_id"] == target
    assert after.loc[row, "tier"].item() == 3
    assert after.loc[row, "next:criminal"].item() == before.loc[row, "next:criminal"].item() + 1
    labels = ["tier", *(c for c in before.columns if c.startswith(OUTCOME_PREFIX))]
    pd.testing.assert_frame_equal(after.drop(columns=labels), before.drop(columns=labels))
