"""Peer context: averages over a unit's township, its county's units of the same type, and its
nearest neighbours — always excluding the unit itself, so a unit's own events never leak into its
peer features twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree


def group_codes(*columns: pd.Series) -> np.ndarray:
    """Integer codes (0 … G-1) of the combinations of the given unit columns."""
    frame = pd.concat([c.reset_index(drop=True).astype("str") for c in columns], axis=1)
    return frame.groupby(list(frame.columns), sort=True, dropna=False).ngroup().to_numpy(np.int64)


def mean_excluding_self(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(n_as_of, U) values → the mean over the other units of each unit's group; NaN for a unit
    alone in its group. Sums via one ``bincount`` over (as-of, group)."""
    n_t, n_u = values.shape
    n_g = int(groups.max()) + 1 if n_u else 0
    flat = (np.arange(n_t)[:, None] * n_g + groups[None, :]).ravel()
    sums = np.bincount(flat, weights=values.ravel().astype(np.float64), minlength=n_t * n_g).reshape(n_t, n_g)
    sizes = np.bincount(groups, minlength=n_g)
    others = sizes[groups] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sums[:, groups] - values) / others
    out[:, others == 0] = np.nan
    return out


def knn_neighbours(lat: np.ndarray, lon: np.ndarray, k: int) -> np.ndarray:
    """(U, k') int64 indices of each unit's nearest other units (k' = min(k, located units - 1)),
    -1 rows for units without coordinates.

    Distances on an equirectangular projection (longitude scaled by cos of the mean latitude) —
    exact enough within a province, and the same in the reference implementation.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    located = np.flatnonzero(~(np.isnan(lat) | np.isnan(lon)))
    k_eff = min(k, len(located) - 1)
    out = np.full((len(lat), max(k_eff, 0)), -1, dtype=np.int64)
    if k_eff < 1:
        return out
    xy = projected(lat[located], lon[located])
    # Ask the tree for a few spare candidates, then order them by the exact squared distance and,
    # among equal distances, by position — so ties (common on a grid of rounded coordinates) are
    # broken the same way every time and the same way as in the plain reference.
    n_cand = min(k_eff + 1 + 8, len(located))
    _, cand = cKDTree(xy).query(xy, k=n_cand)
    cand = cand.reshape(len(located), n_cand)
    la, lo = lat[located], lon[located]
    scale = np.cos(np.radians(np.nanmean(lat)))
    d2 = ((lo[cand] - lo[:, None]) * scale) ** 2 + (la[cand] - la[:, None]) ** 2
    d2[cand == np.arange(len(located))[:, None]] = np.inf  # never the unit itself
    order = np.lexsort((cand, d2), axis=-1)
    nbr = np.take_along_axis(cand, order, axis=1)[:, :k_eff]
    out[located] = located[nbr]
    return out


def projected(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(n, 2) planar coordinates in degrees of latitude."""
    scale = np.cos(np.radians(np.nanmean(lat))) if len(lat) else 1.0
    return np.column_stack([lon * scale, lat])


def knn_mean(values: np.ndarray, neighbours: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """(n_as_of, U) values → (n_as_of, rows) mean over each row's neighbours; NaN without neighbours."""
    nbr = neighbours[rows]
    if nbr.shape[1] == 0:
        return np.full((values.shape[0], nbr.shape[0]), np.nan)
    acc = np.zeros((values.shape[0], nbr.shape[0]), dtype=np.float64)
    for j in range(nbr.shape[1]):
        acc += values[:, nbr[:, j]]
    acc /= nbr.shape[1]
    acc[:, nbr[:, 0] < 0] = np.nan
    return acc
