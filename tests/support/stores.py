"""Two SQLite stores compared row by row: the Dask parity tests' single-process run (``one.db``)
against the cluster's (``dask.db``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd


def assert_same_rows(work: Path, queries: dict[str, str], drop: tuple[str, ...] = ("id",)) -> None:
    """Every query returns rows from ``work/one.db``, and exactly the same rows from ``work/dask.db``
    once the columns ``drop`` (surrogate keys, paths that differ by construction) are left out."""
    for what, q in queries.items():
        got = [pd.read_sql(q, sqlite3.connect(work / db)) for db in ("one.db", "dask.db")]
        assert len(got[0]) > 0, what
        pd.testing.assert_frame_equal(
            got[0].drop(columns=list(drop), errors="ignore"),
            got[1].drop(columns=list(drop), errors="ignore"),
            check_exact=True,
        )
