"""Batch scoring with explanations at province size (issue 14): what each part costs, and the
batch path (one pass for probabilities and contributions, TreeSHAP on two threads, reasons chosen
for all rows at once) against the straightforward path it replaced, on the same model and frame.

    .venv/bin/python benchmarks/batch_explain.py [--work DIR] [--repeat 3]

Simulates the province preset (seed 1) and trains + promotes a champion once in ``DIR`` (reused on
later runs), then times ``pipeline.scoring.explained_scores`` for every unit at the latest month
(``now``) and the same scores computed the way they were before (``before``: the probabilities
predicted twice — for the rows and for the peers' risk —, the count model's rates computed again for
its parts, ``models/tree_shap.py`` on one thread with its Shapley values per (tree, pattern) and
leaf, the reasons chosen row by row), alternating,
``--repeat`` times each, then the parts of one call. Prints wall and CPU (user + system) seconds and
checks that both paths give the same rows: the same probabilities, tiers, risk scores and relative
risks, and the same reasons (every field; contributions within 1e-6). Target: ≤ 15 s.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # benchmarks/features.py shadows
sys.path.append(str(HERE.parent / "tests" / "support"))  # the row-by-row reasons of before

from reference_reasons import explain_rows_row_by_row  # noqa: E402

from sanling.core.config import Config, Settings  # noqa: E402
from sanling.models import bundle as bundle_module  # noqa: E402
from sanling.models import tier_model, tree_shap  # noqa: E402
from sanling.models.explain import explain_rows, peer_means  # noqa: E402
from sanling.pipeline import jobs  # noqa: E402
from sanling.pipeline.scoring import explained_scores, frame_at, peer_risk_from, peer_risk_table  # noqa: E402
from sanling.pipeline.simulate import simulate_world  # noqa: E402

ROOT = HERE.parent


class Clock:
    """Wall and CPU (user + system, all threads) seconds of a block."""

    def __enter__(self) -> Clock:
        self.w, self.c = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, _cpu() - self.c


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def champion(work: Path):
    world, settings = work / "world", Settings(home=work / "home")
    if not (world / "events.parquet").exists():
        print("simulating the province preset …", flush=True)
        simulate_world(world, preset="province", seed=1)
    reg = jobs.registry(settings)
    try:
        version, bundle = reg.load_alias("champion")
    except Exception:  # no champion yet: train one (≈ 4 min, 7 GB on a quiet machine)
        print("training a province champion …", flush=True)
        version = jobs.train(world, Config(), settings)
        jobs.promote(version, force=True, settings=settings)
        version, bundle = reg.load_alias("champion")
    ds, panel = jobs.prepare(world, bundle.config, settings)
    return version, bundle, ds, panel


def _shapley_every_pair(trees, tree, code):
    """tree_shap's Shapley values as first written: for every (tree, pattern) pair and every leaf."""
    s = ((code[:, None, None] & trees.mask[tree]) == trees.want[tree]).astype(float)
    return tree_shap._leaf_shapley(s, trees.ratio[tree], trees.value[tree])


class Before:
    """The computation as it was before this change, for the ``before`` runs: ``bundle.scored``
    predicting the probabilities and computing the contributions separately, ``explained_scores``
    predicting them a second time for the peers' risk, TreeSHAP on one thread computing the Shapley
    values for every (tree, pattern) pair and leaf, the reasons row by row."""

    def __init__(self) -> None:
        self.saved = []

    def __enter__(self) -> Before:
        def scored(bundle, frame, peers, *, top=5):
            m = bundle.model
            proba = m.predict_proba(frame)
            contrib = m.contributions(frame)[0]
            m.proba_and_contributions = lambda _f: (proba, contrib, None)
            try:
                rows, _ = original(bundle, frame, peers, top=top)
            finally:
                del m.proba_and_contributions
            return rows, m.predict_proba(frame)  # the peers' risk predicted again, as before

        original = bundle_module.ModelBundle.scored
        patches = [
            (bundle_module.ModelBundle, "scored", scored),
            (bundle_module, "explain_rows", explain_rows_row_by_row),
            (tree_shap, "contributions", functools.partial(tree_shap.contributions, threads=1)),
            (tree_shap, "_flattened", tree_shap._flatten),  # flattened on every call, as before
            (tree_shap, "_shapley", _shapley_every_pair),
        ]
        for owner, name, new in patches:
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, new)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, old in reversed(self.saved):
            setattr(owner, name, old)
        self.saved.clear()


def parts(bundle, panel) -> dict[str, Clock]:
    """The pieces of one explained_scores call, timed one by one (before → now where they changed)."""
    m, out = bundle.model, {}
    with Clock() as out["features for the month (build_frame)"]:
        frame = frame_at(bundle, panel, panel.last_month)
    with Clock() as out["peers' means"]:
        peers = peer_means(frame, bundle.feature_names)
    with Clock() as out["before: probabilities (predict_proba)"]:
        m.predict_proba(frame)
    with Clock() as out["before: peers' risk (predict_proba again)"]:
        peer_risk_table(bundle, frame)
    with Clock() as out["encode the matrix"]:
        X = m._matrix(frame)
    i = tier_model.CUMULATIVE_LEVELS.index(tier_model.EXPLAINED_LEVEL)
    bag = m.members_[i]
    its = [b.best_iteration for b in bag]
    with Clock() as out["flatten the trees (now kept between calls)"]:
        tree_shap._flatten(bag, [it or None for it in its])
    fast = tree_shap._shapley
    tree_shap._shapley = _shapley_every_pair
    try:
        with Clock() as out["before: tree_shap every pair × leaf, 1 thread"]:
            tree_shap.contributions(bag, X, its, threads=1)
    finally:
        tree_shap._shapley = fast
    with Clock() as out["now: boosters' tree_shap, 1 thread"]:
        tree_shap.contributions(bag, X, its, threads=1)
    with Clock() as out["now: boosters' tree_shap, 2 threads"]:
        tree_shap.contributions(bag, X, its, threads=2)
    if m.linear_ is not None:
        with Clock() as out["linear model's parts"]:
            m.linear_.contributions(X, i)
    if m.count_ is not None:
        with Clock() as out["before: count model's parts (rates again)"]:
            m.count_.contributions(frame, i, float(m.count_centre_[i]))
        with Clock() as out["now: count model's logits and parts"]:
            m.count_.logits_and_contributions(frame, i, float(m.count_centre_[i]))
    if m.history_ is not None:
        with Clock() as out["record term"]:
            m._history_logits(frame)
    with Clock() as out["now: probabilities + contributions (1 pass)"]:
        proba, contrib, _ = m.proba_and_contributions(frame)
    with Clock() as out["now: peers' risk (the same probabilities)"]:
        peer_risk_from(frame, proba)
    names = bundle.feature_names
    values, peer_values = frame[names].reset_index(drop=True), peers[names].reset_index(drop=True)
    with Clock() as out["before: reasons row by row"]:
        explain_rows_row_by_row(contrib, values, peer_values, bundle.specs)
    with Clock() as out["now: reasons (explain_rows)"]:
        explain_rows(contrib, values, peer_values, bundle.specs)
    return out


def same_rows(before: list[dict], now: list[dict]) -> float:
    """Assert that both paths give the same rows; return the largest contribution difference."""
    worst = 0.0
    for a, b in zip(before, now, strict=True):
        strip = {"reasons", "protective"}
        assert {k: v for k, v in a.items() if k not in strip} == {
            k: v for k, v in b.items() if k not in strip
        }
        for x, y in zip(a["reasons"] + a["protective"], b["reasons"] + b["protective"], strict=True):
            assert {**x, "contribution": 0} == {**y, "contribution": 0}, a["unit_id"]
            worst = max(worst, abs(x["contribution"] - y["contribution"]))
        assert len(a["reasons"]) == len(b["reasons"]), a["unit_id"]
    assert worst <= 1e-6, worst
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/sanling-batch-explain"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    version, bundle, ds, panel = champion(args.work)
    bag = bundle.model.members_[tier_model.CUMULATIVE_LEVELS.index(tier_model.EXPLAINED_LEVEL)]
    trees = sum(b.best_iteration or b.current_iteration() for b in bag)
    print(f"champion v{version}: {len(bag)} boosters, {trees} trees, {bundle.model.params.num_leaves} leaves")

    runs: dict[str, list[Clock]] = {"before": [], "now": []}
    rows = {}
    for _ in range(args.repeat):
        for path in ("before", "now"):
            with Before() if path == "before" else contextlib.nullcontext(), Clock() as c:
                rows[path] = explained_scores(bundle, ds, panel, panel.last_month, model_version=version)
            runs[path].append(c)
            print(
                f"  {path:<6} {len(rows[path]):,} units: {c.wall:6.1f} s wall, {c.cpu:6.1f} s CPU", flush=True
            )
    worst = same_rows(rows["before"], rows["now"])
    print(
        f"the same rows on all {len(rows['now']):,} units: probabilities, tiers, risk scores, relative "
        f"risks, reasons (largest contribution difference {worst:.1g})"
    )

    print(f"\n{'part of one call':<46} {'wall s':>8} {'CPU s':>8}")
    table = parts(bundle, panel)
    for name, c in table.items():
        print(f"{name:<46} {c.wall:8.2f} {c.cpu:8.2f}")
    med = {
        p: (statistics.median(c.wall for c in v), statistics.median(c.cpu for c in v))
        for p, v in runs.items()
    }
    print(f"\n{'explained_scores, every unit':<46} {'wall s':>8} {'CPU s':>8}   (median of {args.repeat})")
    for p, (w, c) in med.items():
        print(f"{p:<46} {w:8.1f} {c:8.1f}")
    w0, w1 = med["before"][0], med["now"][0]
    print(
        f"now / before: {w1 / w0:.2f}× the wall time, {med['now'][1] / med['before'][1]:.2f}× the CPU; "
        f"target ≤ 15 s: {'met' if w1 <= 15 else 'MISSED'} ({w1:.1f} s)"
    )
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch_explain.json").write_text(
        json.dumps(
            {
                "median": {p: {"wall_s": w, "cpu_s": c} for p, (w, c) in med.items()},
                "parts": {k: {"wall_s": c.wall, "cpu_s": c.cpu} for k, c in table.items()},
                "trees": trees,
                "load_average": os.getloadavg(),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
