"""Fixtures shared by the pipeline tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker Dask ``LocalCluster`` in this process (one per test module), for the parity tests."""
    from distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    yield c
    c.close()
