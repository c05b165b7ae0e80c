"""Run order for ``make test`` (two xdist workers, one file per worker at a time): the files with
slow tests go first, so that the longest files do not start last and leave one worker idle at the
end. The order inside a file is kept; nothing else changes."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: files stay together, in order
