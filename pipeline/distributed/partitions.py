"""Partitions of the unit registry, each with its halo.

A partition's *core* is a set of whole counties (all units sharing a county name: the peer groups
of features and explanations are keyed by name). Its *halo* is every other unit a core unit's
features read: the members of its township and county × unit-type peer groups (empty for whole
counties, kept in case a grouping ever reaches across them) and its k nearest neighbours, which
often lie across a county border. The
neighbours are found once over the whole registry (:func:`~sanling.features.peers.knn_neighbours`),
so a partition never re-derives them from its own, smaller set of coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sanling.features.peers import knn_neighbours

UNITS_PER_PARTITION = 20_000


@dataclass(frozen=True)
class Partition:
    """``core``: ascending registry positions of the units the partition computes; ``members``:
    ascending positions of core + halo (the units whose events the partition needs);
    ``neighbours``: (len(members), k) positions *within members* of each core unit's nearest
    neighbours (-1 for halo rows and for units without coordinates); ``counties``: its counties."""

    number: int
    core: np.ndarray
    members: np.ndarray
    neighbours: np.ndarray
    counties: tuple[str, ...]

    @property
    def core_in_members(self) -> np.ndarray:
        return np.searchsorted(self.members, self.core)


def n_partitions(n_units: int, n_workers: int, units_per_partition: int = UNITS_PER_PARTITION) -> int:
    """At least two partitions per worker (so a slow one does not idle the rest), and none larger
    than ``units_per_partition`` units."""
    return max(2 * max(n_workers, 1), math.ceil(n_units / max(units_per_partition, 1)))


def plan_partitions(units: pd.DataFrame, n_parts: int, knn_k: int) -> list[Partition]:
    """Cut ``units`` (the registry in panel order) into at most ``n_parts`` partitions of whole
    counties, balanced by unit count (counties ordered by city, so a partition holds neighbouring
    counties and a small halo), each with its halo. Returns them largest first."""
    n = len(units)
    county = units["county"].astype("str").to_numpy()
    city = units["city"].astype("str").to_numpy() if "city" in units else np.full(n, "")
    sizes = (
        pd.DataFrame({"city": city, "county": county})
        .groupby("county", sort=False)
        .agg(city=("city", "first"), n=("city", "size"))
    )
    sizes = sizes.sort_values(["city"], kind="stable")
    n_parts = max(1, min(n_parts, len(sizes)))
    # In city order, a county goes to the partition its middle unit falls into when the units are
    # dealt out in ``n_parts`` equal shares: contiguous, balanced to within a county.
    middle = sizes["n"].cumsum().to_numpy() - sizes["n"].to_numpy() / 2
    share = np.minimum((middle * n_parts / max(n, 1)).astype(np.int64), n_parts - 1)
    _, share = np.unique(share, return_inverse=True)  # no empty partition numbers
    part_of = pd.Series(share, index=sizes.index).reindex(county).to_numpy(dtype=np.int64)

    lat = _coordinate(units, "lat")
    lon = _coordinate(units, "lon")
    neighbours = knn_neighbours(lat, lon, knn_k)
    township = pd.factorize(pd.Series(county) + "\x00" + units["township"].astype("str").to_numpy())[0]
    county_type = pd.factorize(pd.Series(county) + "\x00" + units["unit_type"].astype("str").to_numpy())[0]

    plans = []
    for p in range(int(part_of.max()) + 1 if n else 0):
        core = np.flatnonzero(part_of == p)
        if len(core) == 0:
            continue
        halo = np.isin(township, np.unique(township[core])) | np.isin(
            county_type, np.unique(county_type[core])
        )
        nbr = neighbours[core]
        halo[nbr[nbr >= 0]] = True
        halo[core] = True
        members = np.flatnonzero(halo)
        local = np.full(n, -1, dtype=np.int64)
        local[members] = np.arange(len(members))
        nb_local = np.full((len(members), neighbours.shape[1]), -1, dtype=np.int64)
        nb_local[np.searchsorted(members, core)] = np.where(nbr >= 0, local[np.maximum(nbr, 0)], -1)
        plans.append(Partition(p, core, members, nb_local, tuple(sorted(set(county[core].tolist())))))
    return sorted(plans, key=lambda q: -len(q.members))


def _coordinate(units: pd.DataFrame, column: str) -> np.ndarray:
    if column not in units:
        return np.full(len(units), np.nan)
    return units[column].to_numpy(np.float64, na_value=np.nan)  # as features/build.py reads them
