"""The analysts' notebooks run top to bottom on a small county (300 units, 48 months; CI: marked slow).

Each runs in a fresh kernel of this venv (``python3``), writing only into a temporary directory
given through ``SANLING_NB_WORKDIR``; the three share one simulated world (``SANLING_NB_DATA``).
The notebooks are stored without outputs, and this test checks that too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# name → the figures it must render (a figure that silently fails to draw is a broken notebook)
FIGURES = {"01_explore_data": 5, "02_backtest_and_explain": 8, "03_compare_models": 2}
NAMES = tuple(FIGURES)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from sanling.pipeline.simulate import simulate_world

    out = tmp_path_factory.mktemp("nb_world")
    simulate_world(out, preset="county", n_units=300, months=48, seed=0, progress=False)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
    book = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    code = [c for c in book["cells"] if c["cell_type"] == "code"]
    assert code, name
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), name


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, world, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("SANLING_NB_WORKDIR", str(tmp_path))
    monkeypatch.setenv("SANLING_NB_DATA", str(world))
    monkeypatch.setenv("SANLING_NB_QUICK", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    images = sum(
        1
        for c in book.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    )
    assert images >= FIGURES[name], f"{name}: only {images} figure(s) rendered"
    # nothing written into the repository
    assert not any(p.suffix in {".png", ".db", ".parquet"} for p in NOTEBOOKS.iterdir())
    assert any(tmp_path.iterdir())  # …but into its working directory
