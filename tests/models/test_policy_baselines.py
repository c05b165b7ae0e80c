import numpy as np
import pytest

from sanling.core.config import PolicyParams
from sanling.models.baselines import HistoricalRate, LogisticBaseline, Persistence
from sanling.models.evaluate import TierHistory
from sanling.models.policy import cumulative, decide, fit_thresholds, risk_score

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


def _validation_proba(n: int = 5000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet([6, 3, 1.5, 0.4], n)


def test_capacity_policy_flags_the_configured_shares_from_the_top():
    proba = _validation_proba()
    pol = PolicyParams(kind="capacity", capacity={"red": 0.05, "orange": 0.10, "yellow": 0.25})
    t = fit_thresholds(proba, pol)
    d = decide(proba, pol, t)
    shares = np.bincount(d, minlength=4) / len(d)
    assert shares[3] == pytest.approx(0.05, abs=0.002)
    assert shares[2] + shares[3] == pytest.approx(0.15, abs=0.01)  # orange is the next 10 %
    assert shares[1:].sum() == pytest.approx(0.40, abs=0.01)
    # red goes to the highest P(red): every red unit's P(red) is above every non-red one's
    assert cumulative(proba)[d == 3, 2].min() >= cumulative(proba)[d != 3, 2].max()
    # thresholds fitted once score new rows one by one the same way as in a batch
    new = _validation_proba(50, seed=2)
    assert [int(decide(new[i : i + 1], pol, t)[0]) for i in range(50)] == decide(new, pol, t).tolist()


def test_peer_multiple_policy_is_a_multiple_of_the_mean():
    proba = _validation_proba()
    pol = PolicyParams(kind="peer_multiple", multiples={"red": 3.0, "orange": 2.0, "yellow": 1.0})
    t = fit_thresholds(proba, pol)
    assert t["red"] == pytest.approx(3 * proba[:, 3].mean())
    assert t["orange"] == pytest.approx(2 * proba[:, 2:].sum(1).mean())
    d = decide(proba, pol, t)
    assert ((proba[:, 3] >= t["red"]) == (d == 3)).all()


def test_fixed_thresholds_ignore_fitted_ones_and_capacity_without_fit_falls_back():
    fixed = PolicyParams(kind="thresholds", thresholds={"red": 0.3, "orange": 0.45, "yellow": 0.5})
    assert decide(P, fixed, {"red": 0.0, "orange": 0.0, "yellow": 0.0}).tolist() == [0, 1, 2, 3]
    cap = PolicyParams(kind="capacity", thresholds={"red": 0.3, "orange": 0.45, "yellow": 0.5})
    assert decide(P, cap).tolist() == [0, 1, 2, 3]


def test_capacity_shares_are_validated():
    with pytest.raises(ValueError, match="capacity"):
        PolicyParams(capacity={"red": 0.6, "orange": 0.5})


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
    with pytest.raises(ValueError, match="outside"):
        h1.last_tier(["a"], ["2020-07"])  # a month past the history is an error, not a silent -1
