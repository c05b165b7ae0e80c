import lightgbm as lgb
import numpy as np

from sanling.core.config import ModelParams
from sanling.models.boosters import BinnedRows, lgb_params

P = ModelParams(n_estimators=60, num_leaves=7, min_child_samples=20)


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[:, 5] = rng.integers(0, 4, size=n)  # a categorical column
    X[rng.random(n) < 0.1, 1] = np.nan
    y = (X[:, 0] + 0.5 * (X[:, 5] == 2) + rng.normal(size=n) > 0.5).astype(np.float32)
    return X, y


def _fresh(X, y, Xe, ye, params):
    """One booster on its own Dataset, as TierModel fitted each booster before binning once."""
    dtr = lgb.Dataset(X, y, categorical_feature=[5], free_raw_data=False)
    dva = lgb.Dataset(Xe, ye, reference=dtr, categorical_feature=[5])
    return lgb.train(
        params,
        dtr,
        num_boost_round=P.n_estimators,
        valid_sets=[dva],
        callbacks=[lgb.early_stopping(P.early_stopping_rounds, verbose=False)],
    )


def test_binned_once_gives_the_boosters_of_separate_datasets():
    """Below LightGBM's bin sample (200,000 rows, every county) the bins do not depend on the seed:
    one binned Dataset reused across seeds and targets gives bit-identical boosters."""
    X, y = _data(4000)
    Xe, ye = _data(1000, seed=1)
    rows = BinnedRows(X.copy(), Xe.copy(), [5], lgb_params(P, "binary", 1))
    for seed, target, target_e in ((1, y, ye), (2, y, ye), (3, 1 - y, 1 - ye)):
        params = lgb_params(P, "binary", seed)
        reused = rows.fit(params, target, target_e, P.n_estimators, P.early_stopping_rounds)
        fresh = _fresh(X, target, Xe, target_e, params)
        assert reused.best_iteration == fresh.best_iteration
        np.testing.assert_array_equal(reused.predict(Xe, raw_score=True), fresh.predict(Xe, raw_score=True))
    # and the seeds do differ (the comparison above could not pass by ignoring them)
    a = rows.fit(lgb_params(P, "binary", 1), y, ye, P.n_estimators, P.early_stopping_rounds)
    b = rows.fit(lgb_params(P, "binary", 2), y, ye, P.n_estimators, P.early_stopping_rounds)
    assert not np.array_equal(a.predict(Xe, raw_score=True), b.predict(Xe, raw_score=True))


def test_the_binned_rows_do_not_keep_the_matrix():
    X, _ = _data(2000)
    rows = BinnedRows(X, X[:500], [5], lgb_params(P, "binary", 1))
    assert rows.train_set.data is None and rows.valid_set.data is None
