"""Reporting intensity: how hard a unit's events are looked for. A unit with many grid workers
records more small events, so its counts — and a model that reads them — look riskier than a quiet
unit whose events go unrecorded. Shown beside every explained score against the unit's peers, and
measured in the backtest: whether the model's errors follow it (residual by intensity decile).

Pure: frames and arrays in, arrays and records out. See docs/metrics.md, "Reporting intensity".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.core.vocabulary import TIERS

GRID_LABEL_ZH = "网格员每千人"
PEER_KEYS: tuple[str, ...] = ("county", "unit_type")


def reporting_intensity(units: pd.DataFrame, attribute: str | None = None) -> tuple[pd.Series, str] | None:
    """(value per unit_id, Chinese label) of the configured ``attribute`` column, else grid workers per
    1,000 people (``population``, or ``employees`` where population is missing); ``None`` when the
    units carry neither. Values that cannot be computed (no size, no count) are NaN."""
    index = units["unit_id"].astype(str)
    if attribute is not None:
        if attribute not in units.columns:
            return None
        values = pd.to_numeric(units[attribute], errors="coerce").astype(float)
        return pd.Series(values.to_numpy(), index=index, name="intensity"), attribute
    if "grid_workers" not in units.columns:
        return None
    size = pd.Series(np.nan, index=units.index)
    for col in ("employees", "population"):  # population wins where both are given
        if col in units.columns:
            s = pd.to_numeric(units[col], errors="coerce").astype(float)
            size = s.where(s > 0, size)
    if size.isna().all():
        return None
    grid = pd.to_numeric(units["grid_workers"], errors="coerce").astype(float)
    return pd.Series((1000.0 * grid / size).to_numpy(), index=index, name="intensity"), GRID_LABEL_ZH


def intensity_against_peers(units: pd.DataFrame, values: pd.Series, label_zh: str) -> dict[str, dict]:
    """unit_id → ``{"label_zh", "value", "peer_mean", "ratio"}``: the unit's intensity and the mean
    of the same unit type in the same county (``ratio`` None where it cannot be formed)."""
    frame = units[["unit_id", *PEER_KEYS]].astype(str).copy()
    frame["v"] = values.reindex(frame["unit_id"]).to_numpy()
    frame["peer"] = frame.groupby(list(PEER_KEYS))["v"].transform("mean")
    out = {}
    for uid, v, peer in frame[["unit_id", "v", "peer"]].itertuples(index=False):
        ok = np.isfinite(v) and np.isfinite(peer)
        out[uid] = {
            "label_zh": label_zh,
            "value": round(float(v), 2) if np.isfinite(v) else None,
            "peer_mean": round(float(peer), 2) if np.isfinite(peer) else None,
            "ratio": round(float(v / peer), 2) if ok and peer > 0 else None,
        }
    return out


def residual_by_decile(
    y: np.ndarray, predictions: dict[str, np.ndarray], intensity: np.ndarray
) -> list[dict]:
    """Do the errors follow reporting intensity? Rows cut into ten equal-count groups by
    ``intensity`` (rows without one left out); per group its intensity range, ``n``, the observed share
    of tier ≥ yellow and ≥ orange, and per model the mean residual (observed − forecast) of P(≥ yellow)
    and P(≥ orange). A model that reads recorded counts as risk has negative residuals (over-warning)
    in the top deciles where the oracle's stay near 0."""
    y = np.asarray(y)
    x = np.asarray(intensity, dtype=np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 10:
        return []
    ranks = pd.Series(x[ok]).rank(method="first").to_numpy()
    decile = np.full(len(x), -1)
    decile[ok] = np.minimum((10 * (ranks - 1) / ok.sum()).astype(int), 9)
    levels = [(TIERS.index(k), f"ge_{k}") for k in ("yellow", "orange")]
    out = []
    for d in range(10):
        m = decile == d
        row = {
            "decile": d + 1,
            "n": int(m.sum()),
            "intensity_min": float(x[m].min()),
            "intensity_max": float(x[m].max()),
        }
        for k, key in levels:
            observed = float(np.mean(y[m] >= k))
            row[f"observed_{key}"] = observed
            for model, p in predictions.items():
                row[f"residual_{key}.{model}"] = observed - float(np.asarray(p)[m, k:].sum(axis=1).mean())
        out.append(row)
    return out
