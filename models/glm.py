"""Generalised-linear building blocks of the count-structured forecast (models/count_levels.py):
a standardised design, Poisson rates, the non-negative hazard fit, and the row bookkeeping (a
row's township, the same unit's row some months later)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betainc, gammaincc
from sklearn.exceptions import ConvergenceWarning

from sanling.core.months import add_months

CLIP = 5.0


def numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame.columns:
        return np.zeros(len(frame))
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


class Standardised:
    """A standardised dense design: centred and scaled on the fit rows, clipped to ±``CLIP`` SD;
    a missing value (an attribute a unit does not have) sits at the mean."""

    def fit(self, M: np.ndarray) -> Standardised:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns
            mean, sd = np.nanmean(M, axis=0), np.nanstd(M, axis=0)
        self.mean_ = np.nan_to_num(mean)
        self.sd_ = np.where(np.isfinite(sd) & (sd > 1e-9), sd, 1.0)
        return self

    def transform(self, M: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.clip((M - self.mean_) / self.sd_, -CLIP, CLIP))


class ConstantRate:
    """A rate that does not depend on the design (the same interface as a fitted regression)."""

    def __init__(self, rate: float, n_columns: int):
        self.rate = rate
        self.coef_ = np.zeros(n_columns)
        self.intercept_ = np.log(rate) if rate > 0 else -np.inf

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.rate)


def township_keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(county, township) of each row: the township's identity (CONTRACT §1)."""
    county = frame["county"].astype(str) if "county" in frame.columns else pd.Series("", index=frame.index)
    town = frame["township"].astype(str) if "township" in frame.columns else pd.Series("", index=frame.index)
    return list(zip(county.to_numpy(), town.to_numpy(), strict=True))


def later_rows(frame: pd.DataFrame, months: int) -> np.ndarray:
    """For each row, the position of the same unit's row ``months`` later in ``frame``, or −1."""
    key = frame["unit_id"].astype(str).to_numpy() + "|" + frame["as_of"].astype(str).to_numpy()
    shift = {a: add_months(a, months) for a in frame["as_of"].astype(str).unique()}
    later = frame["unit_id"].astype(str).to_numpy() + "|" + frame["as_of"].astype(str).map(shift).to_numpy()
    hit = pd.Series(later).map(pd.Series(np.arange(len(frame)), index=key))
    return hit.fillna(-1).to_numpy(dtype=np.int64)


def fit_hazard(lam: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative (w_1 … w_C, w_0) maximising the likelihood of y ~ Bernoulli(1 − exp(−λ·w − w_0))."""
    n, p = lam.shape
    if n == 0:
        return np.zeros(p + 1)
    X = np.column_stack([lam, np.ones(n)])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        eta = np.maximum(X @ w, 1e-9)
        log_p1 = np.log(-np.expm1(-eta))
        value = -np.mean(y * log_p1 - (1 - y) * eta)
        d = y * np.exp(-eta) / (-np.expm1(-eta)) - (1 - y)
        return value, -(X.T @ d) / n

    w0 = np.full(p + 1, 0.1 * max(y.mean(), 1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = minimize(loss, w0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * (p + 1))
    return res.x


def tail_hazard(lam: np.ndarray, k: int, inv_r: float) -> np.ndarray:
    """−log P(N < k) for N ~ Poisson(λ) (``inv_r`` = 0) or negative binomial with mean λ and
    Var λ + inv_r·λ²."""
    lam = np.maximum(lam, 1e-12)
    if inv_r <= 1e-6:
        p = gammaincc(k, lam)
    else:
        r = 1.0 / inv_r
        p = betainc(r, k, r / (r + lam))
    return -np.log(np.clip(p, 1e-300, 1.0))
