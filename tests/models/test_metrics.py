"""Metric implementations against hand-computed values, sklearn cross-checks and shape validation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from sanling.models import metrics as m
from sanling.models.capacity import capacity_by_township, capacity_table


def _onehot(y: np.ndarray) -> np.ndarray:
    return np.eye(4)[y]


def _random_case(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([3, 2, 1, 0.5], n)
    y = (proba.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    return y, proba, proba.argmax(axis=1)


# ------------------------------------------------------------------ RPS


def test_perfect_forecast_scores_perfectly():
    y = np.array([0, 1, 2, 3, 3, 0])
    out = m.tier_metrics(y, _onehot(y), y)
    assert out == {
        "rps": 0.0,
        "log_loss": pytest.approx(0.0, abs=1e-12),
        "qwk": 1.0,
        "macro_f1": 1.0,
        "red_recall": 1.0,
        "red_precision": 1.0,
        "red_pr_auc": 1.0,
        "ece": 0.0,
        "ece_yellow": 0.0,
        "ece_red": 0.0,
        "decided_share": {"blue": 2 / 6, "yellow": 1 / 6, "orange": 1 / 6, "red": 2 / 6},
    }


def test_tier_metrics_returns_exactly_the_contract_keys_as_floats():
    y, proba, decided = _random_case(200)
    out = m.tier_metrics(y, proba, decided)
    assert tuple(out) == (*m.TIER_METRIC_KEYS, "decided_share")
    assert all(type(out[k]) is float for k in m.TIER_METRIC_KEYS)
    assert out["decided_share"] == {t: float(np.mean(decided == i)) for i, t in enumerate(m.TIERS)}


def test_ece_yellow_and_red_are_of_their_own_quantities():
    y = np.array([0] * 50 + [1] * 30 + [3] * 20)
    # P(≥yellow) = 0.5 everywhere (observed 0.5: calibrated); P(red) = 0.4 everywhere (observed 0.2)
    proba = np.tile([0.5, 0.1, 0.0, 0.4], (100, 1))
    out = m.tier_metrics(y, proba, np.zeros(100, dtype=int))
    assert out["ece_yellow"] == pytest.approx(0.0)
    assert out["ece_red"] == pytest.approx(0.2)
    assert out["ece"] == pytest.approx(0.2)  # P(≥orange) = 0.4 vs observed 0.2


def test_calibration_by_group_pools_small_groups_as_other():
    rng = np.random.default_rng(3)
    n = 700
    meta = pd.DataFrame(
        {"unit_type": ["village"] * 400 + ["community"] * 250 + ["enterprise"] * 50, "county": "洪洞县"}
    )
    p_or = np.r_[np.full(400, 0.2), np.full(250, 0.6), np.full(50, 0.3)]
    y = np.where(rng.random(n) < np.r_[np.full(400, 0.2), np.full(250, 0.2), np.full(50, 0.3)], 2, 0)
    proba = np.column_stack([1 - p_or, np.zeros(n), p_or, np.zeros(n)])
    out = m.calibration_by_group(meta, y, proba)
    assert set(out) == {"unit_type", "county"}
    assert set(out["unit_type"]) == {"village", "community", "other"}  # 50 enterprises < 200 rows
    assert out["unit_type"]["village"] < 0.05 and out["unit_type"]["community"] > 0.3
    assert list(out["county"]) == ["洪洞县"]


def test_rps_of_uniform_forecast_by_hand():
    # F = (.25, .5, .75). y=0 or 3: (.75² + .5² + .25²)/3 = .875/3; y=1 or 2: (.25² + .5² + .25²)/3 = .375/3
    y = np.array([0, 1, 2, 3])
    per_row = m.rps_per_row(y, np.full((4, 4), 0.25))
    np.testing.assert_allclose(per_row, [0.875 / 3, 0.125, 0.125, 0.875 / 3])
    assert m.rps(y, np.full((4, 4), 0.25)) == pytest.approx((0.875 / 3 * 2 + 0.125 * 2) / 4)


def test_rps_worst_case_is_one_and_distance_matters():
    proba = _onehot(np.array([0, 0]))
    # all mass on blue: red observed costs 1, yellow observed costs 1/3 — ranked, not just right/wrong
    np.testing.assert_allclose(m.rps_per_row(np.array([3, 1]), proba), [1.0, 1 / 3])


# ------------------------------------------------------------------ decided-tier metrics


def test_qwk_known_value():
    # observed 0,1,2,3, decided 0,1,2,2: Σw·O = 1/9, Σw·E = 8/9 → κ = 1 − 1/8
    assert m.quadratic_weighted_kappa(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 2])) == pytest.approx(0.875)


def test_qwk_undefined_is_zero():
    assert m.quadratic_weighted_kappa(np.array([1, 1, 1]), np.array([1, 1, 1])) == 0.0


def test_macro_f1_ignores_tiers_absent_from_both():
    # tier 0: tp 1 of (2 true + 1 decided) → 2/3; tier 1: tp 2 of (2 + 3) → 4/5; tiers 2, 3 absent
    f1 = m.macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert f1 == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_red_recall_precision_by_hand_and_undefined_is_zero():
    y = np.array([3, 3, 3, 0, 1])
    decided = np.array([3, 0, 0, 3, 1])
    assert m.red_recall_precision(y, decided) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert m.red_recall_precision(np.array([0, 1]), np.array([0, 1])) == (0.0, 0.0)


def test_decided_metrics_match_sklearn():
    y, proba, decided = _random_case()
    out = m.tier_metrics(y, proba, decided)
    assert out["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1, 2, 3]))
    assert out["qwk"] == pytest.approx(skm.cohen_kappa_score(y, decided, weights="quadratic"))
    assert out["macro_f1"] == pytest.approx(skm.f1_score(y, decided, average="macro", zero_division=0))
    assert out["red_recall"] == pytest.approx(skm.recall_score(y == 3, decided == 3))
    assert out["red_pr_auc"] == pytest.approx(skm.average_precision_score(y == 3, proba[:, 3]))


# ------------------------------------------------------------------ average precision


def test_average_precision_by_hand():
    # ranks 1 (hit: P=1, R=.5) and 3 (hit: P=2/3, R=1) → AP = .5·1 + .5·2/3
    ap = m.average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6]))
    assert ap == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_average_precision_tied_scores_enter_together_and_no_positive_is_zero():
    assert m.average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert m.average_precision(np.array([0, 0]), np.array([0.5, 0.1])) == 0.0
    rng = np.random.default_rng(3)
    y_b, score = rng.integers(0, 2, 500), np.round(rng.uniform(size=500), 1)  # many ties
    assert m.average_precision(y_b, score) == pytest.approx(skm.average_precision_score(y_b, score))


# ------------------------------------------------------------------ calibration


def test_ece_by_hand():
    # bin 0: mean p .05, rate 0 → gap .05; bin 9: mean p .95, rate .5 → gap .45; equal weights
    ece = m.expected_calibration_error(np.array([0, 0, 1, 0]), np.array([0.05, 0.05, 0.95, 0.95]))
    assert ece == pytest.approx(0.25)


def test_ece_of_calibrated_sample_is_near_zero_and_of_shifted_sample_near_the_shift():
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 0.9, 200_000)
    outcome = (rng.uniform(size=p.size) < p).astype(int)
    assert m.expected_calibration_error(outcome, p) < 0.01
    assert m.expected_calibration_error(outcome, p + 0.1) == pytest.approx(0.1, abs=0.01)


def test_tier_metrics_ece_is_of_p_at_least_orange():
    rng = np.random.default_rng(11)
    n = 100_000
    p_high = rng.uniform(0, 0.8, n)
    y = np.where(rng.uniform(size=n) < p_high, 3, 0)
    # forecast P(≥ orange) = p_high + .2, split over orange and red; blue takes the rest
    proba = np.column_stack([0.8 - p_high, np.zeros(n), (p_high + 0.2) / 2, (p_high + 0.2) / 2])
    assert m.tier_metrics(y, proba, np.zeros(n, dtype=int))["ece"] == pytest.approx(0.2, abs=0.01)


def test_reliability_table_bins_edges_and_empty_bins():
    table = m.reliability_table(np.array([1, 0, 1]), np.array([1.0, 0.0, 0.55]), bins=10)
    assert list(table["n"]) == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]  # p = 1 lands in the last bin
    assert table.loc[9, "observed_rate"] == 1.0
    assert math.isnan(table.loc[3, "mean_predicted"])
    assert table.loc[5, "gap"] == pytest.approx(0.45)


# ------------------------------------------------------------------ capacity


def _township_frame() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    # A: 10 units, risk 10..1, reds at risk ranks 1 and 4. B: 30 units, reds at ranks 2, 3 and 30.
    ids_a = [f"A{i:02d}" for i in range(10)]
    ids_b = [f"B{i:02d}" for i in range(30)]
    meta = pd.DataFrame(
        {"unit_id": ids_a + ids_b, "as_of": "2022-06", "township": ["甲镇"] * 10 + ["乙镇"] * 30}
    )
    risk = np.r_[np.arange(10, 0, -1), np.arange(30, 0, -1)].astype(float)
    y = np.zeros(40, dtype=int)
    y[[0, 3]] = 3
    y[[10 + 1, 10 + 2, 10 + 29]] = 3
    return meta, y, risk


def test_capacity_table_hand_made_townships():
    meta, y, risk = _township_frame()
    table = capacity_table(meta, y, risk, capacities=(0.05, 0.10, 0.20)).set_index("capacity")
    # 5 %: ⌈.5⌉ = 1 in A (rank 1, red), ⌈1.5⌉ = 2 in B (ranks 1–2, one red) → 2 of 5 reds in 3 flagged
    # 10 %: 1 in A, 3 in B (0.1·30 must stay 3) → A 1 red, B 2 reds → 3 of 5 in 4 flagged
    # 20 %: 2 in A (1 red), 6 in B (2 reds) → 3 of 5 in 8 flagged
    assert list(table["n_flagged"]) == [3, 4, 8]
    assert list(table["red_caught"]) == [2, 3, 3]
    np.testing.assert_allclose(table["hit_rate"], [2 / 5, 3 / 5, 3 / 5])
    np.testing.assert_allclose(table["precision"], [2 / 3, 3 / 4, 3 / 8])
    np.testing.assert_allclose(table["pai"], [(2 / 5) / (3 / 40), (3 / 5) / (4 / 40), (3 / 5) / (8 / 40)])


def test_capacity_ties_broken_by_unit_id_whatever_the_row_order():
    meta = pd.DataFrame({"unit_id": ["u3", "u1", "u2", "u4"], "as_of": "2022-01", "township": "t"})
    y = np.array([0, 3, 0, 0])  # u1 is the red one; all risks tie → u1 flagged first
    table = capacity_table(meta, y, np.ones(4), capacities=(0.25,))
    assert table.loc[0, "red_caught"] == 1
    shuffled = meta.iloc[[2, 0, 3, 1]].reset_index(drop=True)
    again = capacity_table(shuffled, y[[2, 0, 3, 1]], np.ones(4), capacities=(0.25,))
    assert again.loc[0, "red_caught"] == 1


def test_capacity_groups_by_as_of_as_well():
    meta = pd.DataFrame(
        {"unit_id": ["a", "b"] * 2, "as_of": ["2022-01"] * 2 + ["2022-02"] * 2, "township": "t"}
    )
    table = capacity_table(meta, np.array([3, 0, 0, 3]), np.array([0.9, 0.1, 0.2, 0.8]), capacities=(0.5,))
    assert table.loc[0, "n_flagged"] == 2 and table.loc[0, "red_caught"] == 2


def test_capacity_by_township():
    meta, y, risk = _township_frame()
    towns = capacity_by_township(meta, y, risk, 0.10).set_index("township")
    assert towns.loc["甲镇", "red_caught"] == 1 and towns.loc["乙镇", "red_caught"] == 2
    assert towns.loc["乙镇", "hit_rate"] == pytest.approx(2 / 3)
    assert towns.loc["乙镇", "pai"] == pytest.approx((2 / 3) / (3 / 30))


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: m.rps_per_row(np.array([0, 1]), np.full((2, 3), 1 / 3)), r"shape \(n, 4\)"),
        (lambda: m.rps_per_row(np.array([0, 1]), np.full((3, 4), 0.25)), "3 rows, expected 2"),
        (lambda: m.rps_per_row(np.array([0, 1]), np.full((2, 4), 0.3)), "sum to 1"),
        (lambda: m.rps_per_row(np.array([0, 4]), np.full((2, 4), 0.25)), "tiers 0–3"),
        (lambda: m.rps_per_row(np.array([0.5, 1]), np.full((2, 4), 0.25)), "integer tiers"),
        (lambda: m.rps_per_row(np.array([[0, 1]]), np.full((2, 4), 0.25)), "1-D"),
        (
            lambda: m.tier_metrics(np.array([0, 1]), np.full((2, 4), 0.25), np.array([0])),
            "decided has 1 rows",
        ),
        (
            lambda: m.tier_metrics(np.array([], dtype=int), np.empty((0, 4)), np.array([], dtype=int)),
            "no rows",
        ),
        (lambda: m.log_loss(np.array([0]), np.array([[np.nan, 0.5, 0.25, 0.25]])), "NaN"),
        (lambda: m.reliability_table(np.array([0, 2]), np.array([0.1, 0.2])), "only 0 and 1"),
        (lambda: m.reliability_table(np.array([0, 1]), np.array([0.1, 1.2])), r"\[0, 1\]"),
    ],
)
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_capacity_validation():
    meta, y, risk = _township_frame()
    with pytest.raises(ValueError, match="township"):
        capacity_table(meta.drop(columns="township"), y, risk)
    with pytest.raises(ValueError, match="capacities"):
        capacity_table(meta, y, risk, capacities=(0.0,))
    with pytest.raises(ValueError, match="risk"):
        capacity_table(meta, y, risk[:-1])
