"""Run order for ``make test`` (two xdist workers, ``--dist loadfile``): the longest units of work go
first, so that no long one starts last and leaves the other worker idle at the end.

A unit of work is a file (its module fixtures are built once), except the tests in ``ALONE``: each
of those is a unit of its own, so that the three notebooks, or the crash test's two stores, can run
on both workers at once. Units are sent longest first by ``SECONDS`` (measured with
``--durations``; a stale figure only costs balance, never a result), then in collection order.
Without xdist nothing changes.
"""

from __future__ import annotations

import pytest

# Seconds of one unit of work, read off `pytest -n 2 --dist loadfile --durations=80` at load ≈ 8
# (2026-12-01); only the order matters.
SECONDS = {
    "tests/test_notebooks.py::test_notebook_runs[03_compare_models]": 412,
    "tests/pipeline/test_dask.py": 278,
    "tests/test_small_panel.py": 252,
    "tests/test_end_to_end.py": 237,
    "tests/serving/test_crash.py::test_the_score_command_killed_leaves_the_old_or_the_new_complete_set[sqlite]": 228,
    "tests/test_notebooks.py::test_notebook_runs[02_backtest_and_explain]": 200,
    "tests/serving/test_crash.py::test_the_score_command_killed_leaves_the_old_or_the_new_complete_set[postgresql]": 175,
    "tests/pipeline/test_dask_ingest.py": 100,  # measured alone at one thread: 35 s (test_dask: 57 s)
    "tests/test_yearly_export.py": 82,
    "tests/features/test_build.py": 70,
    "tests/pipeline/test_known_scores.py": 62,
    "tests/models/test_count_levels.py": 48,
    "tests/pipeline/test_scoring_explained.py": 48,
}
ALONE = (
    "tests/test_notebooks.py::test_notebook_runs[",
    "tests/serving/test_crash.py::test_the_score_command",
)


def unit_of_work(nodeid: str) -> str:
    return nodeid if nodeid.startswith(ALONE) else nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # stable: a file's tests stay together and in their order
    items.sort(key=lambda item: -SECONDS.get(unit_of_work(item.nodeid), 0))


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongestFirst(LoadFileScheduling):
        """``loadfile`` with ``ALONE``'s tests as units of their own, sent in collection order (the
        order above) rather than xdist's default, most tests first."""

        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    config.option.loadscopereorder = False
    return LongestFirst(config, log)
