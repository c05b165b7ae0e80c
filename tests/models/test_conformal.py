"""Conformal tier sets: coverage near the nominal level overall and per unit type, never empty,
thresholds per unit type with a pooled fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sanling.models.conformal import (
    MIN_GROUP_ROWS,
    POOLED,
    ConformalTiers,
    calibrate_on_validation,
    coverage_by_group,
    set_labels,
    validation_mask,
)


def _world(
    n: int, rng: np.random.Generator, village_blur: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two types with very different risk: sharp enterprises, diffuse villages. Tiers are drawn from
    the forecast probabilities (calibrated), or for villages from a blend with the uniform
    distribution when ``village_blur`` > 0 (a model over-confident on villages)."""
    groups = np.where(rng.random(n) < 0.5, "village", "enterprise")
    alpha = np.where(groups[:, None] == "village", [2.0, 2.0, 1.5, 1.0], [20.0, 2.0, 0.5, 0.2])
    g = rng.gamma(alpha)
    proba = g / g.sum(axis=1, keepdims=True)
    truth = np.where(groups[:, None] == "village", (1 - village_blur) * proba + village_blur / 4, proba)
    y = (np.cumsum(truth, axis=1) > rng.random((n, 1))).argmax(axis=1)
    return proba, y, groups


def test_sets_reach_the_nominal_coverage_overall_and_per_group():
    rng = np.random.default_rng(7)
    p_cal, y_cal, g_cal = _world(4000, rng)
    p_te, y_te, g_te = _world(8000, rng)
    ct = ConformalTiers(0.9).fit(p_cal, y_cal, g_cal)
    cov = coverage_by_group(ct.sets(p_te, g_te), y_te, g_te)
    assert abs(cov["overall"]["coverage"] - 0.9) < 0.02
    for g in ("village", "enterprise"):
        assert abs(cov["by_unit_type"][g]["coverage"] - 0.9) < 0.03, (g, cov)
    # the diffuse group needs bigger sets than the sharp one
    assert cov["by_unit_type"]["village"]["mean_size"] > cov["by_unit_type"]["enterprise"]["mean_size"]


def test_one_pooled_threshold_misses_the_per_group_coverage_the_mondrian_one_keeps():
    rng = np.random.default_rng(3)
    p_cal, y_cal, g_cal = _world(4000, rng, village_blur=0.5)
    p_te, y_te, g_te = _world(8000, rng, village_blur=0.5)
    per_type = ConformalTiers(0.9).fit(p_cal, y_cal, g_cal)
    kept = coverage_by_group(per_type.sets(p_te, g_te), y_te, g_te)
    assert all(abs(v["coverage"] - 0.9) < 0.03 for v in kept["by_unit_type"].values()), kept
    pooled = ConformalTiers(0.9).fit(p_cal, y_cal, np.full(len(y_cal), "all"))
    cov = coverage_by_group(pooled.sets(p_te, np.full(len(y_te), "all")), y_te, g_te)
    gaps = [abs(v["coverage"] - 0.9) for v in cov["by_unit_type"].values()]
    assert max(gaps) > 0.03  # what the per-type thresholds are for


def test_sets_are_never_empty_and_hold_the_most_probable_tier():
    ct = ConformalTiers(0.5)
    ct.thresholds_ = {POOLED: 0.1}
    proba = np.array([[0.3, 0.3, 0.2, 0.2], [0.05, 0.05, 0.1, 0.8]])
    sets = ct.sets(proba, ["village", "village"])
    assert sets.sum(axis=1).min() >= 1
    assert sets[0, 0] and sets[1, 3]
    assert set_labels(sets)[1] == ["red"]


def test_small_groups_borrow_the_pooled_threshold_and_the_state_round_trips():
    rng = np.random.default_rng(1)
    p, y, g = _world(600, rng)
    g = g.astype(object)
    g[: MIN_GROUP_ROWS - 1] = "community"
    g[MIN_GROUP_ROWS - 1 :][g[MIN_GROUP_ROWS - 1 :] == "community"] = "village"
    ct = ConformalTiers(0.9).fit(p, y, g)
    assert "community" not in ct.thresholds_ and ct.threshold("community") == ct.thresholds_[POOLED]
    again = ConformalTiers.from_dict(ct.to_dict())
    assert np.array_equal(again.sets(p, g), ct.sets(p, g))
    with pytest.raises(ValueError, match="level"):
        ConformalTiers(1.5).fit(p, y, g)


def test_validation_months_are_the_latest_and_calibration_uses_only_them():
    as_of = np.array(["2022-01", "2022-02", "2022-03", "2022-04"] * 2)
    assert validation_mask(as_of, 2).tolist() == [False, False, True, True] * 2
    assert not validation_mask(np.array(["2022-01"]), 3).any()  # one month: nothing held out
    frame = pd.DataFrame({"as_of": as_of, "unit_type": "village"})
    seen = []

    def predict(rows: pd.DataFrame) -> np.ndarray:
        seen.extend(rows["as_of"])
        return np.tile([0.7, 0.1, 0.1, 0.1], (len(rows), 1))

    ct = calibrate_on_validation(predict, frame, np.zeros(8, dtype=int), 1, level=0.5)
    assert set(seen) == {"2022-04"} and ct.n_calibration_[POOLED] == 2
