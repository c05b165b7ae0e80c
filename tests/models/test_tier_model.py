import numpy as np
import pytest
from tiny_frames import FEATURES, make_frame

from sanling.core.config import ModelParams
from sanling.models.policy import cumulative
from sanling.models.tier_model import TierModel

FAST = ModelParams(
    n_estimators=120, learning_rate=0.1, num_leaves=7, min_child_samples=20, validation_periods=3
)


def _split(frame):
    test = frame["as_of"] >= "2021-04"
    return frame[~test], frame[test]


def _rps(y, p):
    f = np.cumsum(p, axis=1)[:, :3]
    o = np.cumsum(np.eye(4)[y], axis=1)[:, :3]
    return float(np.mean(np.sum((f - o) ** 2, axis=1) / 3))


@pytest.mark.parametrize("formulation", ["cumulative", "multiclass"])
def test_fits_signal_and_probabilities_are_valid(frame, formulation):
    train, test = _split(frame)
    params = FAST.model_copy(update={"formulation": formulation})
    m = TierModel(FEATURES, params).fit(train, train["tier"].to_numpy(int), train["as_of"].to_numpy())
    p = m.predict_proba(test)
    assert p.shape == (len(test), 4)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    assert (p >= 0).all()
    y = test["tier"].to_numpy(int)
    prior = np.bincount(train["tier"].to_numpy(int), minlength=4) / len(train)
    assert _rps(y, p) < 0.85 * _rps(y, np.tile(prior, (len(y), 1)))
    # calibrated on held-out time: mean P(≥orange) close to the observed rate
    assert abs(cumulative(p)[:, 1].mean() - (y >= 2).mean()) < 0.03
    assert m.train_window_ == ("2020-01", "2021-03")


def test_cumulative_order_and_exact_contributions(frame):
    train, test = _split(frame)
    m = TierModel(FEATURES, FAST).fit(train, train["tier"].to_numpy(int), train["as_of"].to_numpy())
    logits = m.calibrated_logits(test)
    contrib, base = m.contributions(test)
    np.testing.assert_allclose(contrib.sum(1) + base, logits[:, 1], atol=1e-6)
    ge = cumulative(m.predict_proba(test))
    assert (np.diff(ge, axis=1) <= 1e-12).all()
    # the strongest driver of the synthetic risk is x1, the weakest the pure noise column
    imp = np.abs(contrib).mean(0)
    assert imp[FEATURES.index("x1")] > 3 * imp[FEATURES.index("noise")]


def test_deterministic_under_seed(frame):
    train, test = _split(frame)
    y, t = train["tier"].to_numpy(int), train["as_of"].to_numpy()
    a = TierModel(FEATURES, FAST).fit(train, y, t).predict_proba(test)
    b = TierModel(FEATURES, FAST).fit(train, y, t).predict_proba(test)
    np.testing.assert_array_equal(a, b)
    c = TierModel(FEATURES, FAST.model_copy(update={"seed": 7})).fit(train, y, t).predict_proba(test)
    assert not np.array_equal(a, c)


def test_unseen_category_and_missing_column():
    f = make_frame(n_units=60, n_months=8)
    m = TierModel(FEATURES, FAST).fit(f, f["tier"].to_numpy(int), f["as_of"].to_numpy())
    g = f.head(3).copy()
    g["kind"] = g["kind"].cat.add_categories(["新类型"])
    g.loc[g.index[0], "kind"] = "新类型"
    assert np.isfinite(m.predict_proba(g)).all()
    with pytest.raises(ValueError, match="lacks columns"):
        TierModel([*FEATURES, "absent"], FAST).fit(f, f["tier"].to_numpy(int), f["as_of"].to_numpy())


def test_needs_two_dates_for_held_out_time():
    f = make_frame(n_units=50, n_months=1)
    with pytest.raises(ValueError, match="two as-of dates"):
        TierModel(FEATURES, FAST).fit(f, f["tier"].to_numpy(int), f["as_of"].to_numpy())
