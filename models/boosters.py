"""The LightGBM boosters of :class:`~sanling.models.tier_model.TierModel`: their parameters, and the
fit and early-stopping rows binned once for all of them.

Binning (finding each feature's bin bounds and coding every row) does not depend on the target or
on the boosters' random seed beyond the rows it samples to find the bounds (``bin_construct_sample_cnt``,
200,000 rows: all of a county's rows, so there the bins are the same whatever the seed). The bag of
a level differs only in its seed and the levels only in their target, so one binned Dataset serves
every booster: its label is set per level, and each booster trains with its own seed (bagging and
feature-fraction seeds are training parameters). At province size this bins 1.5 M rows × 231
columns once instead of once per booster, and the float32 matrix can be released as soon as it is
binned (the binned rows take a quarter of its memory)."""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np

from sanling.core.config import ModelParams

log = logging.getLogger(__name__)


def lgb_params(p: ModelParams, objective: str, seed: int, **extra) -> dict:
    """LightGBM parameters of one booster."""
    return {
        "objective": objective,
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "max_depth": p.max_depth,
        "min_child_samples": p.min_child_samples,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": 1 if p.bagging_fraction < 1 else 0,
        "lambda_l2": p.lambda_l2,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": p.num_threads,
        "verbosity": -1,
        **extra,
    }


class BinnedRows:
    """The boosters' fit rows and early-stopping rows, binned once (module docstring).

    Parameters
    ----------
    X_fit, X_es : encoded float32 matrices of the fit and early-stopping rows; not kept (the caller
        may release them once this is built).
    categorical : indices of the categorical columns.
    params : the first booster's parameters: the bins are found with its settings and seed.
    """

    def __init__(self, X_fit: np.ndarray, X_es: np.ndarray, categorical: list[int], params: dict):
        self.params = dict(params)
        self.train_set = lgb.Dataset(
            X_fit, categorical_feature=categorical, params=self.params, free_raw_data=True
        ).construct()
        self.valid_set = lgb.Dataset(
            X_es, reference=self.train_set, categorical_feature=categorical, free_raw_data=True
        ).construct()

    def fit(
        self, params: dict, y_fit: np.ndarray, y_es: np.ndarray, rounds: int, patience: int
    ) -> lgb.Booster:
        """One booster on the binned rows with targets ``y_fit`` / ``y_es``, early-stopped on the
        latter after ``patience`` rounds without improvement."""
        log.info("fit: booster %s seed %d", params["objective"], params["seed"])
        self.train_set.set_label(y_fit)
        self.valid_set.set_label(y_es)
        return lgb.train(
            params,
            self.train_set,
            num_boost_round=rounds,
            valid_sets=[self.valid_set],
            callbacks=[lgb.early_stopping(patience, verbose=False)],
        )
