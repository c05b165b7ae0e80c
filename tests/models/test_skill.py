"""Skill, the oracle shares and their two-way clustered standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sanling.models import skill as sk
from sanling.models.metrics import rps, rps_per_row


def _onehot(y: np.ndarray) -> np.ndarray:
    return np.eye(4)[y]


def _random_case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([3, 2, 1, 0.5], n)
    y = (proba.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    return y, proba


def _rows_with_rps(values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    # y = blue and forecast (1 − a, a, 0, 0) give RPS = a² / 3: pick a for each wanted RPS
    a = np.sqrt(3 * np.asarray(values))
    return np.zeros(len(values), dtype=int), np.column_stack([1 - a, a, np.zeros_like(a), np.zeros_like(a)])


def test_skill_and_oracle_share_scalars():
    assert sk.skill(0.1, 0.2) == pytest.approx(0.5)
    assert sk.oracle_share(0.2, 0.15, 0.1) == pytest.approx(0.5)
    assert math.isnan(sk.skill(0.1, 0.0))
    assert math.isnan(sk.oracle_share(0.2, 0.15, 0.2))
    with pytest.raises(ValueError, match="rps_model"):
        sk.skill(-0.1, 0.2)


def test_best_baseline_is_the_lowest_rps_baseline_never_the_model_or_oracle():
    models = {
        "lightgbm": {"rps": 0.05},
        "persistence": {"rps": 0.12},
        "historical_rate": {"rps": 0.094},
        "logistic": {"rps": 0.095},
        "oracle": {"rps": 0.01},
    }
    assert sk.best_baseline(models) == "historical_rate"
    assert sk.best_baseline({"lightgbm": {"rps": 0.1}}) is None


def test_paired_difference_clusters_by_month_when_units_are_distinct():
    # six units, two per month: with every unit seen once the unit clustering is the row one, so the
    # two-way variance equals the month-clustered one (by hand: block sums −.2, +.2, 0 → 3/2 · .08 / 36)
    y, proba_a = _rows_with_rps([0.1, 0.1, 0.3, 0.3, 0.2, 0.2])
    months = np.array(["2022-01", "2022-01", "2022-02", "2022-02", "2022-03", "2022-03"])
    mean, se = sk.paired_rps_difference(y, proba_a, _onehot(y), np.arange(6), months)
    assert mean == pytest.approx(0.2)
    assert se == pytest.approx(math.sqrt(1.5 * 0.08 / 36))


def test_repeated_units_widen_the_error_bar():
    # a unit's level persists over months: clustering by month alone understates the error
    rng = np.random.default_rng(1)
    n_units, n_months = 200, 12
    level = rng.normal(0, 1, n_units)
    values = np.repeat(level, n_months) + rng.normal(0, 0.1, n_units * n_months)
    units = np.repeat(np.arange(n_units), n_months)
    months = np.tile(np.arange(n_months), n_units)
    two_way = sk.twoway_se(values, units, months)
    months_only = sk.twoway_se(values, np.arange(len(values)), months)
    assert two_way > 3 * months_only
    # the unit-clustered error of a mean of 200 independent levels: about sd / sqrt(200)
    assert two_way == pytest.approx(level.std() / math.sqrt(n_units), rel=0.15)
    assert math.isnan(sk.twoway_se(values, np.zeros(len(values)), months))  # one unit only


def test_oracle_share_with_se_limits_and_agreement_with_scalar():
    y, oracle = _random_case(2000, seed=9)
    units, months = np.tile(np.arange(200), 10), np.repeat(np.arange(10), 200)
    reference = np.full_like(oracle, 0.25)
    model = 0.5 * oracle + 0.5 * reference
    share, se = sk.oracle_share_with_se(y, reference, model, oracle, units, months)
    assert share == pytest.approx(sk.oracle_share(rps(y, reference), rps(y, model), rps(y, oracle)))
    assert 0 < share < 1 and 0 < se < 0.5
    assert sk.oracle_share_with_se(y, reference, oracle, oracle, units, months) == (
        pytest.approx(1.0),
        pytest.approx(0.0),
    )
    assert sk.oracle_share_with_se(y, reference, reference, oracle, units, months)[0] == pytest.approx(0.0)
    s, s_se = sk.skill_with_se(y, model, reference, units, months)
    assert s == pytest.approx(1 - rps_per_row(y, model).mean() / rps_per_row(y, reference).mean())
    assert s_se > 0


def test_bad_groups_raise_a_clear_error():
    with pytest.raises(ValueError, match="months"):
        sk.paired_rps_difference(
            np.array([0]), np.full((1, 4), 0.25), np.full((1, 4), 0.25), ["u"], ["a", "b"]
        )
