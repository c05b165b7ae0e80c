"""The floor plan (docs/architecture.md) as tests: one import name, every package folder installed,
no two modules importing each other, however indirectly — imports inside functions and under
``TYPE_CHECKING`` included. The layer contracts themselves are checked by ``lint-imports``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("sanling.core", "sanling.features", "sanling.models", "sanling.serving", "sanling.pipeline")


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_no_import_circles_between_modules():
    g = grimp.build_graph(*ROOTS, cache_dir=None)
    edges = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    # A package's __init__ re-exporting its children is not a circle of design.
    for m in edges:
        edges[m] = {t for t in edges[m] if not m.startswith(t + ".")}
    assert _strongly_connected(edges) == []


def test_the_circle_finder_finds_a_circle():
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_folder_is_installed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {prefix: ROOT / path for prefix, path in cfg["package-dir"].items()}
    found = set()
    for prefix, base in dirs.items():
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((prefix, *rel)))
    assert found == set(cfg["packages"])


def test_the_bare_folder_names_are_not_importable_outside_the_checkout(tmp_path):
    code = (
        "import importlib.util, sanling.core, sanling.pipeline, sanling.features, sanling.models, sanling.serving\n"
        "print([n for n in ('pipeline', 'features', 'models', 'serving') if importlib.util.find_spec(n)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_no_module_over_500_lines():
    """Small modules with names that say what they hold (migrations aside): a longer one is a
    grab-bag waiting to be split."""
    roots = [ROOT / d for d in ("sanling", "pipeline", "features", "models", "serving")]
    long = {
        str(p.relative_to(ROOT)): n
        for root in roots
        for p in root.rglob("*.py")
        if "migrations" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
