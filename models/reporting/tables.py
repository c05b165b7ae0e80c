"""The numbers of the backtest report as tables (pure: arrays in, DataFrames out); the metrics
themselves come from :mod:`sanling.models.metrics`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models import metrics as m
from sanling.models import skill as sk_
from sanling.models.capacity import capacity_table

MAIN_MODEL = "lightgbm"
ORACLE = "oracle"
CAPACITIES: tuple[float, ...] = (0.05, 0.10, 0.20)


def rps_by_month(y: np.ndarray, as_of: np.ndarray, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean RPS per as-of month (rows, sorted) and model (columns)."""
    months, idx = np.unique(as_of, return_inverse=True)
    n = np.bincount(idx, minlength=len(months))
    data = {
        model: np.bincount(idx, weights=m.rps_per_row(y, proba), minlength=len(months)) / n
        for model, proba in preds.items()
    }
    return pd.DataFrame(data, index=pd.Index(months, name="as_of"))


def skill_table(
    y: np.ndarray, as_of: np.ndarray, units: np.ndarray, preds: dict[str, np.ndarray], main: str
) -> pd.DataFrame:
    """The main model's RPS skill against each other non-oracle model and its share of the oracle's
    improvement over that reference, each with a standard error clustered by unit and by month.

    Columns: ``reference, rps_reference, rps_diff, rps_diff_se, skill, skill_se, oracle_share,
    oracle_share_se`` (the oracle columns NaN without an oracle).
    """
    rows = []
    oracle = preds.get(ORACLE)
    for ref, proba_ref in preds.items():
        if ref in (main, ORACLE):
            continue
        diff, diff_se = sk_.paired_rps_difference(y, preds[main], proba_ref, units, as_of)
        sk, sk_se = sk_.skill_with_se(y, preds[main], proba_ref, units, as_of)
        share, share_se = (
            sk_.oracle_share_with_se(y, proba_ref, preds[main], oracle, units, as_of)
            if oracle is not None
            else (float("nan"), float("nan"))
        )
        rows.append(
            {
                "reference": ref,
                "rps_reference": m.rps(y, proba_ref),
                "rps_diff": diff,
                "rps_diff_se": diff_se,
                "skill": sk,
                "skill_se": sk_se,
                "oracle_share": share,
                "oracle_share_se": share_se,
            }
        )
    if oracle is not None and main != ORACLE:
        # the ceiling: how much skill the true probabilities have over the same references
        for row in rows:
            row["oracle_skill"] = sk_.skill_with_se(y, oracle, preds[row["reference"]], units, as_of)[0]
    return pd.DataFrame(rows)


def capacity_tables(meta: pd.DataFrame, y: np.ndarray, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """:func:`sanling.models.capacity.capacity_table` for every model, ranking units by P(red)."""
    frames = [
        capacity_table(meta, y, proba[:, m.RED], CAPACITIES).assign(model=model)
        for model, proba in preds.items()
    ]
    return pd.concat(frames, ignore_index=True)


def shap_importance(contrib: np.ndarray, values: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Mean |SHAP contribution| per feature, strongest first, with the feature name and label.

    Takes the contribution matrix (m, F), the feature values (m, F) and F display labels.
    """
    contrib = np.asarray(contrib, dtype=np.float64)
    if contrib.ndim != 2:
        raise ValueError(f"shap contributions must be a 2-D (m, F) matrix, got shape {contrib.shape}")
    if not isinstance(values, pd.DataFrame) or values.shape != contrib.shape:
        raise ValueError(
            f"shap feature values must be a DataFrame of shape {contrib.shape}, "
            f"got {getattr(values, 'shape', type(values).__name__)}"
        )
    if len(names) != contrib.shape[1]:
        raise ValueError(f"shap labels: {len(names)} given for {contrib.shape[1]} features")
    return (
        pd.DataFrame(
            {
                "feature": [str(c) for c in values.columns],
                "label": [str(n) for n in names],
                "mean_abs": np.nanmean(np.abs(contrib), axis=0),
                "column": np.arange(contrib.shape[1]),
            }
        )
        .sort_values("mean_abs", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def metrics_frame(metrics: dict) -> tuple[pd.DataFrame, dict[str, set[int]], dict[int, str]]:
    """The models × metrics table of ``metrics.json`` with the best non-oracle value per column."""
    models = metrics.get("models") if isinstance(metrics, dict) else None
    if not isinstance(models, dict) or not models:
        raise ValueError("metrics must be the metrics.json dict with a non-empty 'models' mapping")
    rows = []
    for name, values in models.items():
        missing = [k for k in m.TIER_METRIC_KEYS if k not in values]
        if missing:
            raise ValueError(f"metrics['models']['{name}'] lacks {', '.join(missing)}")
        # the share of rows decided red: precision and workload read together
        red_share = float((values.get("decided_share") or {}).get("red", float("nan")))
        rows.append(
            {"model": name, **{k: float(values[k]) for k in m.TIER_METRIC_KEYS}, "red_decided": red_share}
        )
    # main model first, the oracle last, the baselines in between in their given order
    rows.sort(key=lambda r: (r["model"] == ORACLE, r["model"] != MAIN_MODEL))
    frame = pd.DataFrame(rows)
    # the oracle is the ceiling, not a competitor: the best mark goes to the best real model
    contenders = frame.index[frame["model"] != ORACLE]
    best: dict[str, set[int]] = {}
    for k in m.TIER_METRIC_KEYS:
        vals = frame.loc[contenders, k]
        if vals.notna().any():
            target = vals.max() if m.HIGHER_IS_BETTER[k] else vals.min()
            best[k] = set(vals.index[np.isclose(vals, target, rtol=0, atol=1e-12)])
    row_class = {int(i): "oracle" for i in frame.index[frame["model"] == ORACLE]}
    return frame, best, row_class
