import numpy as np
import pandas as pd
import pytest

from sanling.core.config import PolicyParams
from sanling.models.baselines import HistoricalRate, LogisticBaseline, Persistence
from sanling.models.evaluate import TierHistory
from sanling.models.policy import decide, risk_score, tune_thresholds

P = np.array(
    [
        [0.70, 0.20, 0.05, 0.05],  # P(red)=.05 P(≥orange)=.10 P(≥yellow)=.30 → blue
        [0.30, 0.40, 0.20, 0.10],  # ≥yellow .70 → yellow
        [0.20, 0.30, 0.30, 0.20],  # ≥orange .50 → orange
        [0.10, 0.20, 0.30, 0.40],  # red .40 → red
    ]
)


def test_threshold_policy_by_hand():
    pol = PolicyParams(kind="thresholds", thresholds={"red": 0.3, "orange": 0.45, "yellow": 0.5})
    assert decide(P, pol).tolist() == [0, 1, 2, 3]
    assert decide(P, PolicyParams(kind="argmax")).tolist() == [0, 1, 1, 3]


def test_expected_cost_policy_prefers_red_when_missing_red_is_dear():
    cheap = PolicyParams(
        kind="expected_cost", cost_matrix=[[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]]
    )
    dear = PolicyParams(
        kind="expected_cost", cost_matrix=[[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [30, 20, 10, 0]]
    )
    assert decide(P, cheap).tolist() == P.argmax(1).tolist()
    assert (decide(P, dear) == 3).sum() > (decide(P, cheap) == 3).sum()


def test_risk_score_is_p_orange_or_above():
    assert risk_score(P).tolist() == [10.0, 30.0, 50.0, 70.0]
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        decide(P[:, :3], PolicyParams())


def test_tuned_red_threshold_reaches_recall():
    rng = np.random.default_rng(1)
    p_red = rng.uniform(0, 0.5, 5000)
    y = np.where(rng.random(5000) < p_red, 3, 0)
    proba = np.column_stack([1 - p_red, np.zeros(5000), np.zeros(5000), p_red])
    t = tune_thresholds(y, proba, red_recall=0.6)
    assert ((proba[y == 3, 3] >= t["red"]).mean()) >= 0.6


def test_persistence_transition_matrix():
    m = Persistence(alpha=0).fit([0, 0, 0, 3, 3], [0, 0, 1, 3, 2])
    np.testing.assert_allclose(m.predict_proba([0, 3]), [[2 / 3, 1 / 3, 0, 0], [0, 0, 0.5, 0.5]])


def test_historical_rate_shrinks_to_unit_type():
    h = HistoricalRate(prior_weight=4).fit(["village"] * 4 + ["enterprise"] * 4, [3, 3, 0, 0, 0, 0, 0, 0])
    p = h.predict_proba(np.array([[0, 0, 0, 0], [0, 0, 0, 8]]), ["village", "enterprise"])
    np.testing.assert_allclose(p.sum(1), 1)
    assert p[0, 3] > 0.3  # no history: the village type's red rate (half)
    assert 0.5 < p[1, 3] < 1.0  # 8 reds of its own outweigh the enterprise prior of ~0


def test_logistic_handles_categories_and_missing(frame=None):
    from tiny_frames import FEATURES, make_frame

    f = make_frame(n_units=90, n_months=6)
    m = LogisticBaseline(FEATURES).fit(f, f["tier"].to_numpy(int))
    p = m.predict_proba(f)
    assert p.shape == (len(f), 4) and np.allclose(p.sum(1), 1)
    assert p[f["x1"].to_numpy() > 1.5, 3].mean() > p[f["x1"].to_numpy() < -1.5, 3].mean()


def test_tier_history_counts_non_overlapping_windows():
    tiers = np.array([[-1, 0, 3, 3, 1, 0]])
    h1 = TierHistory(np.array(["a"]), [f"2020-{m:02d}" for m in range(1, 7)], tiers, horizon=1)
    assert h1.last_tier(["a"], ["2020-04"]).tolist() == [3]
    assert h1.past_counts(["a"], ["2020-06"]).tolist() == [[2, 1, 0, 2]]
    h2 = TierHistory(np.array(["a"]), [f"2020-{m:02d}" for m in range(1, 7)], tiers, horizon=2)
    assert h2.past_counts(["a"], ["2020-06"]).tolist() == [[2, 0, 0, 1]]  # windows ending 02, 04, 06
    with pytest.raises(ValueError, match="outside"):
        h1.last_tier(["zz"], ["2020-01"])
    assert isinstance(pd.Index(["a"]), pd.Index)
