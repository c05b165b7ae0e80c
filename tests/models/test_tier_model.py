import numpy as np
import pandas as pd
import pytest
from tiny_frames import FEATURES, make_frame

from sanling.core.config import ModelParams
from sanling.models.policy import cumulative
from sanling.models.tier_model import TierModel

FAST = ModelParams(
    n_estimators=120, learning_rate=0.1, num_leaves=7, min_child_samples=20, validation_periods=3, n_seeds=2
)
SHARES = ["tier_share_yellow_all", "tier_share_orange_all", "tier_share_red_all"]


def with_record(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the history features the stack reads: the share of a unit's earlier as-of months whose
    outcome met each level (known at the as-of month: the outcome of month t − 1 ends at t)."""
    f = frame.sort_values(["unit_id", "as_of"]).copy()
    y = f["tier"].astype(int)
    g = f.groupby("unit_id", sort=False)
    n_before = g.cumcount()
    for k, col in enumerate(SHARES, start=1):
        hits = (y >= k).astype(float).groupby(f["unit_id"], sort=False).cumsum() - (y >= k)
        f[col] = np.where(n_before > 0, hits / np.maximum(n_before, 1), 0.0).astype(np.float32)
    return f.sort_index()


def _split(frame, first_test: str = "2021-04"):
    test = frame["as_of"] >= first_test
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


def persistent_frame(n_units: int = 300, n_months: int = 24, seed: int = 4) -> pd.DataFrame:
    """Tiers driven by x1 and by a unit level no feature shows: only the unit's record reveals it."""
    f = make_frame(n_units=n_units, n_months=n_months, seed=seed)
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 1.2, n_units)[f["unit_id"].str[1:].astype(int).to_numpy()]
    latent = 0.9 * f["x1"].to_numpy() + level + rng.logistic(0, 1, len(f))
    f["tier"] = pd.array(np.digitize(latent, [0.5, 2.0, 3.2]), dtype="Int8")
    return with_record(f)


def test_stacked_contributions_are_exact_and_the_record_term_sits_in_its_feature():
    frame = persistent_frame()
    names = [*FEATURES, *SHARES]
    train, test = _split(frame)
    m = TierModel(names, FAST).fit(train, train["tier"].to_numpy(int), train["as_of"].to_numpy())
    assert m.history_ is not None
    _, c, d, _, _ = m.stack_[1]
    assert c != 0.0 and d != 0.0 and m.linear_ is not None
    contrib, base = m.contributions(test)
    np.testing.assert_allclose(contrib.sum(1) + base, m.calibrated_logits(test)[:, 1], atol=1e-6)
    # the record term is attributed to tier_share_orange_all: it moves with the unit's own share
    col = contrib[:, names.index("tier_share_orange_all")]
    share = test["tier_share_orange_all"].to_numpy()
    assert np.corrcoef(col, share)[0, 1] * np.sign(c) > 0.5
    with pytest.raises(ValueError, match="feature frame"):
        m.predict_proba(m.encoder_.transform(test))


def test_held_out_slices_are_disjoint_with_a_horizon_gap():
    frame = make_frame(n_units=120, n_months=18)
    params = FAST.model_copy(update={"validation_periods": 4, "calibration_periods": 2})
    m = TierModel(FEATURES, params).fit(
        frame, frame["tier"].to_numpy(int), frame["as_of"].to_numpy(), horizon_months=2
    )
    assert m.calibration_months_ == ["2021-05", "2021-06"]
    assert m.early_stopping_months_ == ["2021-03", "2021-04"]
    # a boosters' row's two-month outcome window ends before early stopping begins
    assert m.fit_until_ == "2021-01"


def test_label_lag_leaves_the_latest_months_out_of_every_slice():
    frame = make_frame(n_units=120, n_months=18)
    params = FAST.model_copy(update={"validation_periods": 4, "calibration_periods": 2})
    y, t = frame["tier"].to_numpy(int), frame["as_of"].to_numpy()
    lagged = TierModel(FEATURES, params).fit(frame, y, t, label_lag=2)
    assert lagged.calibration_months_ == ["2021-03", "2021-04"] and lagged.train_window_[1] == "2021-04"
    # the same model as one fitted without those months: their labels never reached it
    early = frame["as_of"] <= "2021-04"
    cut = TierModel(FEATURES, params).fit(frame[early], y[early], t[early])
    np.testing.assert_allclose(lagged.predict_proba(frame), cut.predict_proba(frame))
    # and a model that saw them differs: changing the left-out months' labels changes nothing only when lagged
    flipped = np.where(early, y, 3 - y)
    again = TierModel(FEATURES, params).fit(frame, flipped, t, label_lag=2)
    np.testing.assert_allclose(again.predict_proba(frame), lagged.predict_proba(frame))
    unlagged = TierModel(FEATURES, params).fit(frame, flipped, t)
    assert not np.allclose(unlagged.predict_proba(frame), lagged.predict_proba(frame))
    with pytest.raises(ValueError, match="label_lag"):
        TierModel(FEATURES, params).fit(frame, y, t, label_lag=16)


def test_seed_bag_and_a_bag_of_one_differ_and_average_members():
    train, test = _split(make_frame())
    y, t = train["tier"].to_numpy(int), train["as_of"].to_numpy()
    one = TierModel(FEATURES, FAST.model_copy(update={"n_seeds": 1})).fit(train, y, t)
    bag = TierModel(FEATURES, FAST.model_copy(update={"n_seeds": 3})).fit(train, y, t)
    assert [len(b) for b in bag.members_] == [3, 3, 3] and len(bag.best_iterations_) == 9
    assert not np.allclose(one.predict_proba(test), bag.predict_proba(test))
    # the first member of the bag is the single model (same seed)
    X = bag.encoder_.transform(test)
    first = bag.members_[1][0].predict(X, raw_score=True, num_iteration=bag.members_[1][0].best_iteration)
    solo = one.members_[1][0].predict(X, raw_score=True, num_iteration=one.members_[1][0].best_iteration)
    np.testing.assert_allclose(first, solo)


def test_a_bundle_of_the_single_booster_layout_still_predicts():
    train, test = _split(make_frame(n_units=120))
    params = FAST.model_copy(update={"n_seeds": 1, "calibration": "platt"})
    new = TierModel(FEATURES, params).fit(train, train["tier"].to_numpy(int), train["as_of"].to_numpy())
    # the attributes a model pickled before seed bagging carried
    old_state = {
        "feature_names": new.feature_names,
        "params": params,
        "encoder_": new.encoder_,
        "boosters_": [bag[0] for bag in new.members_],
        "calibration_": [(a, b) for a, *_, b in new.stack_],
        "best_iterations_": new.best_iterations_,
        "train_window_": new.train_window_,
    }
    old = TierModel.__new__(TierModel)
    old.__setstate__(old_state)
    np.testing.assert_allclose(old.predict_proba(test), new.predict_proba(test))
    np.testing.assert_allclose(old.contributions(test)[0], new.contributions(test)[0])


def test_policy_thresholds_are_fitted_on_the_calibration_months():
    from sanling.core.config import PolicyParams
    from sanling.models.policy import decide

    train, _ = _split(make_frame())
    pol = PolicyParams(kind="capacity", capacity={"red": 0.08, "orange": 0.12, "yellow": 0.25})
    m = TierModel(FEATURES, FAST, pol).fit(train, train["tier"].to_numpy(int), train["as_of"].to_numpy())
    cal = train[train["as_of"].isin(m.calibration_months_)]
    red = decide(m.predict_proba(cal), pol, m.decision_thresholds_) == 3
    assert red.mean() == pytest.approx(0.08, abs=0.01)
