"""The batch TreeSHAP path against LightGBM's own ``pred_contrib`` and ``pred_leaf``."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from sanling.models import tree_shap


def _data(n: int, rng: np.random.Generator) -> np.ndarray:
    X = rng.normal(size=(n, 7)).astype(np.float32)
    X[:, 4] = rng.integers(-1, 8, n)  # categorical codes, some unseen (≥ 6) or negative
    X[rng.random(n) < 0.1, 0] = np.nan  # NaN seen in training: missing_type NaN
    X[rng.random(n) < 0.05, 4] = np.nan
    X[:, 5] = np.where(rng.random(n) < 0.5, 0.0, X[:, 5])  # many exact zeros
    X[:, 6] = np.round(X[:, 6], 1)  # ties on thresholds
    return X


def _bag(params: dict, seeds=(0, 1, 2), rounds: int = 40) -> tuple[list[lgb.Booster], np.ndarray]:
    rng = np.random.default_rng(7)
    X = _data(3000, rng)
    X[:, 4] = np.clip(X[:, 4], 0, 5)
    y = X[:, 1] + (X[:, 4] == 2) + np.nan_to_num(X[:, 0]) + X[:, 5] * X[:, 2] + rng.normal(size=3000) > 0
    base = {
        "objective": "binary",
        "num_leaves": 15,
        "verbosity": -1,
        "min_data_per_group": 5,
        "cat_smooth": 1,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "num_threads": 1,
    }
    bag = [
        lgb.train(
            {**base, **params, "seed": s}, lgb.Dataset(X, y.astype(float), categorical_feature=[4]), rounds
        )
        for s in seeds
    ]
    return bag, _data(1000, np.random.default_rng(11))


@pytest.mark.parametrize("params", [{}, {"zero_as_missing": True}, {"num_leaves": 7, "max_depth": 3}])
def test_contributions_equal_pred_contrib(params):
    bag, X = _bag(params)
    trees = tree_shap._flatten(bag, [None] * len(bag))
    assert trees.categorical and (len(trees.zero_missing) > 0) == ("zero_as_missing" in params)
    ref = np.mean([b.predict(X, pred_contrib=True, num_threads=1) for b in bag], axis=0)
    contrib, bias = tree_shap.contributions(bag, X, rows_per_chunk=300, pairs_per_chunk=500)
    np.testing.assert_allclose(contrib, ref[:, :-1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(bias, ref[:, -1], rtol=0, atol=1e-10)
    margin = np.mean([b.predict(X, raw_score=True) for b in bag], axis=0)
    np.testing.assert_allclose(contrib.sum(1) + bias, margin, atol=1e-9)


def test_num_iteration_limits_the_trees():
    bag, X = _bag({}, seeds=(3, 4))
    its = [10, 25]
    ref = np.mean(
        [
            b.predict(X, pred_contrib=True, num_iteration=i, num_threads=1)
            for b, i in zip(bag, its, strict=True)
        ],
        axis=0,
    )
    contrib, bias = tree_shap.contributions(bag, X, its)
    np.testing.assert_allclose(contrib, ref[:, :-1], atol=1e-10)
    np.testing.assert_allclose(bias, ref[:, -1], atol=1e-10)


def test_decisions_reach_lightgbms_leaves():
    """Every row's decision pattern leads to the leaf LightGBM's own traversal reaches."""
    (booster,), X = _bag({"zero_as_missing": True}, seeds=(5,))
    trees = tree_shap._flatten([booster], [None])
    codes = tree_shap._codes(trees, X, rows_per_chunk=512)
    leaves = booster.predict(X, pred_leaf=True)  # (n, T) leaf index
    dumps = tree_shap._tree_dumps(booster, None)
    for t, root in enumerate(dumps):
        expect = leaves[:, t]
        got = np.empty(len(X), dtype=np.int64)
        for r in range(len(X)):
            nd = root
            while "split_index" in nd:
                nd = nd["left_child"] if codes[t, r] >> int(nd["split_index"]) & 1 else nd["right_child"]
            got[r] = nd["leaf_index"]
        assert (got == expect).all(), f"tree {t}"


def test_large_trees_are_left_to_lightgbm():
    bag, _ = _bag({"num_leaves": 40, "min_data_in_leaf": 5}, seeds=(0,), rounds=3)
    assert not tree_shap.supports(bag, [None])
    small, _ = _bag({}, seeds=(0,), rounds=3)
    assert tree_shap.supports(small, [None])


def test_each_distinct_leaf_game_once_gives_the_values_of_every_pair():
    """The Shapley values computed once per distinct (tree, leaf, bits) equal, bit for bit, those
    computed for every (tree, pattern) pair and every leaf."""
    bag, X = _bag({})
    trees = tree_shap._flatten(bag, [None] * len(bag))
    codes = tree_shap._codes(trees, X, rows_per_chunk=400)
    tree = np.repeat(np.arange(codes.shape[0]), codes.shape[1])
    code = codes.ravel()
    pairs = np.unique(np.column_stack([tree, code]), axis=0)
    tree, code = pairs[:, 0], pairs[:, 1].astype(np.int32)
    s = ((code[:, None, None] & trees.mask[tree]) == trees.want[tree]).astype(float)
    every = tree_shap._leaf_shapley(s, trees.ratio[tree], trees.value[tree])
    once = tree_shap._shapley(trees, tree, code)
    assert once.shape == every.shape and np.array_equal(once, every)
    assert np.abs(every).sum() > 0
