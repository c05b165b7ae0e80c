"""Batch scoring with explanations at province size (issue 14): what each part costs, and the
explanation of the boosters by LightGBM's ``pred_contrib`` (the peer, as before issue 14) against
``models/tree_shap.py`` on the same model and the same frame, in one run.

    .venv/bin/python benchmarks/batch_explain.py [--work DIR] [--repeat 3]

Simulates the province preset (seed 1) and trains + promotes a champion once in ``DIR`` (reused on
later runs), then times ``pipeline.scoring.explained_scores`` for every unit at the latest month
with each explanation path (alternating, ``--repeat`` times each) and the parts of one call: the
month's features, the peers' means, the probabilities, each term of the stacked contributions, the
grouped reasons. Prints wall and CPU (user + system) seconds; the reasons of both paths must be the
same (checked: same groups in the same order, contributions within 1e-6). Target: ≤ 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # benchmarks/features.py shadows

from sanling.core.config import Config, Settings  # noqa: E402
from sanling.models import tier_model  # noqa: E402
from sanling.models.explain import explain_rows, peer_means  # noqa: E402
from sanling.pipeline import jobs  # noqa: E402
from sanling.pipeline.scoring import explained_scores, frame_at, peer_risk_table  # noqa: E402
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


def parts(bundle, panel) -> dict[str, Clock]:
    """The pieces of one explained_scores call, timed one by one."""
    m, out = bundle.model, {}
    with Clock() as out["features for the month (build_frame)"]:
        frame = frame_at(bundle, panel, panel.last_month)
    with Clock() as out["peers' means"]:
        peers = peer_means(frame, bundle.feature_names)
    with Clock() as out["probabilities (predict_proba)"]:
        m.predict_proba(frame)
    with Clock() as out["peers' risk (predict_proba again)"]:
        peer_risk_table(bundle, frame)
    with Clock() as out["encode the matrix"]:
        X = m._matrix(frame)
    i = tier_model.CUMULATIVE_LEVELS.index(tier_model.EXPLAINED_LEVEL)
    bag = m.members_[i]
    with Clock() as out["boosters: pred_contrib (before)"]:
        np.mean([b.predict(X, pred_contrib=True, num_iteration=b.best_iteration) for b in bag], axis=0)
    with Clock() as out["boosters: tree_shap (now)"]:
        m._tree_contributions(bag, X)
    if m.linear_ is not None:
        with Clock() as out["linear model's parts"]:
            m.linear_.contributions(X, i)
    if m.count_ is not None:
        with Clock() as out["count model's parts"]:
            m.count_.contributions(frame, i, float(m.count_centre_[i]))
    if m.history_ is not None:
        with Clock() as out["record term"]:
            m._history_logits(frame)
    contrib, _ = m.contributions(frame)
    names = bundle.feature_names
    with Clock() as out["grouped reasons (explain_rows)"]:
        explain_rows(
            contrib, frame[names].reset_index(drop=True), peers[names].reset_index(drop=True), bundle.specs
        )
    return out


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
    fast_from = tier_model.BATCH_SHAP_ROWS
    for _ in range(args.repeat):
        for path in ("before", "now"):
            tier_model.BATCH_SHAP_ROWS = fast_from if path == "now" else 10**12
            with Clock() as c:
                rows[path] = explained_scores(bundle, ds, panel, panel.last_month, model_version=version)
            runs[path].append(c)
            print(
                f"  {path:<6} {len(rows[path]):,} units: {c.wall:6.1f} s wall, {c.cpu:6.1f} s CPU", flush=True
            )
    tier_model.BATCH_SHAP_ROWS = fast_from
    worst = 0.0
    for a, b in zip(rows["before"], rows["now"], strict=True):
        assert [r["group"] for r in a["reasons"]] == [r["group"] for r in b["reasons"]], a["unit_id"]
        for x, y in zip(a["reasons"] + a["protective"], b["reasons"] + b["protective"], strict=True):
            worst = max(worst, abs(x["contribution"] - y["contribution"]))
    print(
        f"reasons identical on all {len(rows['now']):,} units (largest contribution difference {worst:.1g})"
    )

    print(f"\n{'part of one call':<40} {'wall s':>8} {'CPU s':>8}")
    table = parts(bundle, panel)
    for name, c in table.items():
        print(f"{name:<40} {c.wall:8.2f} {c.cpu:8.2f}")
    med = {
        p: (statistics.median(c.wall for c in v), statistics.median(c.cpu for c in v))
        for p, v in runs.items()
    }
    print(f"\n{'explained_scores, every unit':<40} {'wall s':>8} {'CPU s':>8}   (median of {args.repeat})")
    for p, (w, c) in med.items():
        print(f"{p:<40} {w:8.1f} {c:8.1f}")
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
