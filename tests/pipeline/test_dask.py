"""The Dask engine against the single process, on a LocalCluster of two in-process workers:
partitions with their halo give every feature exactly; scores, explanations, forecast history and
observed tiers in the store are the same; a model trained on the cluster's features is the same
model and backtests to the same RPS."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from stores import assert_same_rows
from worlds import random_events, random_units

from sanling.core.config import Config, ModelParams, Settings
from sanling.features.build import build_frame
from sanling.features.grid import labelled_as_of
from sanling.features.panel import build_panel
from sanling.pipeline import jobs
from sanling.pipeline.context import labelled_frame, prepare, registry
from sanling.pipeline.distributed.cluster import check_address, dask_client
from sanling.pipeline.distributed.engine import Layout
from sanling.pipeline.distributed.partitions import plan_partitions
from sanling.pipeline.simulate import simulate_world

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Config(
    test_periods=1,
    model=ModelParams(n_estimators=40, learning_rate=0.15, num_leaves=7, min_child_samples=40, n_seeds=1),
)


def _random_world(seed: int):
    """Two counties with a township name in both (two townships), uniform coordinates across the
    province (nearest neighbours across the county border), units without coordinates or
    population, a categorical attribute."""
    rng = np.random.default_rng(seed)
    units = random_units(rng, 90)
    units["township"] = units["township"].replace({"镇3": "镇0"})
    events = random_events(rng, units, n=1500)
    return SimpleNamespace(units=units, events=events, updates=None, history=None)


@pytest.mark.parametrize("units_per_partition", [20, 1000])
def test_features_equal_the_single_process_frame(cluster, units_per_partition):
    ds = _random_world(3)
    panel = build_panel(ds.units, ds.events, CONFIG.categories)
    dates = labelled_as_of(panel, 1, 1)
    single = build_frame(
        panel, dates, tier_rules=CONFIG.tiers, horizon_months=1, params=CONFIG.features, with_labels=True
    )
    with dask_client(cluster.scheduler_address) as client:
        layout = Layout(client, ds, CONFIG, units_per_partition=units_per_partition)
        assert len(layout.parts) == 2  # two counties, never split
        assert layout.halo_share() > 0.3  # the other county's 镇0 and neighbours across the border
        frame = layout.frame(dates, with_labels=True)
    pd.testing.assert_frame_equal(frame, single, check_exact=True)


def test_a_partition_without_its_halo_would_differ(cluster):
    """The halo is what makes the neighbour features exact: the same county on its own gets other values."""
    ds = _random_world(4)
    panel = build_panel(ds.units, ds.events, CONFIG.categories)
    single = build_frame(
        panel, ["2020-06"], tier_rules=CONFIG.tiers, horizon_months=1, params=CONFIG.features
    )
    alone = ds.units[ds.units["county"] == "甲县"]
    own = build_panel(alone, ds.events[ds.events["unit_id"].isin(alone["unit_id"])], CONFIG.categories)
    cut = build_frame(own, ["2020-06"], tier_rules=CONFIG.tiers, horizon_months=1, params=CONFIG.features)
    ref = single.set_index("unit_id").loc[cut["unit_id"]]
    names = [c for c in cut.columns if c.startswith("peer_knn_")]
    assert names
    assert not np.allclose(cut[names].to_numpy(), ref[names].to_numpy(), equal_nan=True)
    same = [c for c in cut.columns if c.startswith(("peer_township_", "peer_county_"))]
    np.testing.assert_array_equal(cut[same].to_numpy(), ref[same].to_numpy())  # whole counties


def test_partitions_hold_whole_counties_and_their_halo():
    ds = _random_world(5)
    units = ds.units
    parts = plan_partitions(units, 4, knn_k=8)
    cores = np.concatenate([p.core for p in parts])
    assert sorted(cores.tolist()) == list(range(len(units)))  # every unit in exactly one core
    for p in parts:
        counties = set(units["county"].iloc[p.core])
        assert (units["county"].isin(counties).to_numpy() == np.isin(np.arange(len(units)), p.core)).all()
        nb = p.neighbours[p.core_in_members]
        assert set(p.members[nb[nb >= 0]]) - set(p.core)  # neighbours across the border are in the halo
        assert (nb[nb >= 0] < len(p.members)).all()


def test_dask_address_is_checked():
    assert check_address(" local ") == "local"
    assert check_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    with pytest.raises(Exception, match="scheduler address"):
        check_address("10.0.0.5:8786")


def test_features_and_models_do_not_import_dask():
    for folder in ("features", "models", "serving"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
            assert not [m for m in names if m.split(".")[0] in ("dask", "distributed")], path


# -- the jobs, on a simulated world with late records ------------------------------------------
@pytest.fixture(scope="module")
def deployed(tmp_path_factory, cluster):
    work = tmp_path_factory.mktemp("dask")
    world = work / "world"
    simulate_world(world, preset="province", n_units=240, months=22, seed=11, progress=False)
    units = pd.read_parquet(world / "units.parquet")
    # A township name that two counties share.
    first, second = units["county"].unique()[:2]
    name = units.loc[units["county"] == first, "township"].iloc[0]
    units.loc[units["township"] == units.loc[units["county"] == second, "township"].iloc[0], "township"] = (
        name
    )
    units.to_parquet(world / "units.parquet", index=False)
    one = Settings(home=work / "home", database_url=f"sqlite:///{work}/one.db")
    on_dask = one.model_copy(
        update={"dask": cluster.scheduler_address, "database_url": f"sqlite:///{work}/dask.db"}
    )
    version = jobs.train(world, CONFIG, one)
    jobs.promote(version, settings=one, force=True)
    return SimpleNamespace(work=work, world=world, one=one, dask=on_dask, version=version)


@pytest.mark.slow
def test_scores_in_the_store_equal_the_single_process_run(deployed):
    jobs.score(deployed.world, settings=deployed.one)
    out = jobs.score(deployed.world, settings=deployed.dask)
    assert out["n_units"] == 240
    queries = {
        "scores": "select unit_id, as_of, model_version, tier, risk_score, p_blue, p_yellow, p_orange, p_red, "
        "reasons, protective, relative_red, relative_orange, tier_set, reporting from scores order by as_of, unit_id",
        "runs": "select as_of, model_version, data_dir, n_units, backfilled from score_runs order by as_of",
        "observed": "select unit_id, as_of, tier from observed_tiers order by unit_id, as_of",
        "event_months": "select * from event_months order by 1, 2, 3, 4",
        "open_events": "select * from open_events order by 1, 2",
    }
    assert_same_rows(deployed.work, queries)
    with sqlite3.connect(deployed.work / "dask.db") as db:
        explained = db.execute("select distinct as_of from scores where reasons != '[]'").fetchall()
    assert explained == [(out["as_of"],)]  # the month scored is explained; the backfilled history is not


@pytest.mark.slow
def test_a_dask_trained_model_is_the_single_process_model(deployed):
    version = jobs.train(deployed.world, CONFIG, deployed.dask)
    reg = registry(deployed.one)
    _, ds_panel = prepare(deployed.world, CONFIG, deployed.one)
    frame = labelled_frame(ds_panel, CONFIG)
    p_one = reg.load_bundle(deployed.version).model.predict_proba(frame)
    p_dask = reg.load_bundle(version).model.predict_proba(frame)
    np.testing.assert_array_equal(p_one, p_dask)
    one = jobs.backtest(deployed.world, deployed.work / "bt1", CONFIG, deployed.one)
    on_dask = jobs.backtest(deployed.world, deployed.work / "bt2", CONFIG, deployed.dask)
    rps = [m["models"]["lightgbm"]["rps"] for m in (one, on_dask)]
    assert abs(rps[0] - rps[1]) <= 0.002
