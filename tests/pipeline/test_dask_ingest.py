"""Ingestion on the Dask workers (pipeline/distributed/ingest.py): a data directory split by county
into file groups is read group by group on two workers, the client holding only the registry, and
features and scores equal the single process's on the same data in one file per table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from stores import assert_same_rows

from sanling.core.config import Config, ModelParams, Settings
from sanling.features.build import build_frame
from sanling.features.grid import labelled_as_of
from sanling.pipeline import jobs
from sanling.pipeline.context import prepare
from sanling.pipeline.distributed.cluster import dask_client
from sanling.pipeline.distributed.engine import Layout
from sanling.pipeline.distributed.ingest import Ingested, PartitionSource, file_groups, ingest_on_workers
from sanling.pipeline.ingest.readers import locate_tables
from sanling.pipeline.simulate import simulate_world

CONFIG = Config(
    test_periods=1,
    model=ModelParams(n_estimators=30, learning_rate=0.15, num_leaves=7, min_child_samples=40, n_seeds=1),
)


def _split_by_county(world: Path, out: Path) -> None:
    """The tables of ``world`` written one file per county and table (``events_3.parquet`` …), with
    one event of an unknown unit and one bad severity in the second group (rejected there)."""
    out.mkdir()
    units = pd.read_parquet(world / "units.parquet")
    events = pd.read_parquet(world / "events.parquet")
    updates = pd.read_parquet(world / "event_updates.parquet")
    history = pd.read_parquet(world / "unit_history.parquet")
    for k, county in enumerate(units["county"].unique()):
        ids = units.loc[units["county"] == county, "unit_id"]
        ev = events[events["unit_id"].isin(ids)].copy()
        if k == 1:
            bad = ev.iloc[:2].copy()
            bad["event_id"] = ["X-unknown", "X-severity"]
            bad.loc[bad.index[0], "unit_id"] = "999999999999"
            ev = pd.concat([ev, bad], ignore_index=True)
            ev["severity"] = ev["severity"].astype("str").where(ev["severity"].notna(), None)
            ev.loc[len(ev) - 1, "severity"] = "很严重"
        units[units["county"] == county].to_parquet(out / f"units_{k}.parquet", index=False)
        ev.to_parquet(out / f"events_{k}.parquet", index=False)
        updates[updates["event_id"].isin(ev["event_id"])].to_parquet(
            out / f"event_updates_{k}.parquet", index=False
        )
        history[history["unit_id"].isin(ids)].to_parquet(out / f"unit_history_{k}.parquet", index=False)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    work = tmp_path_factory.mktemp("dask_ingest")
    whole = work / "whole"
    simulate_world(whole, preset="province", n_units=240, months=22, seed=12, progress=False)
    split = work / "split"
    _split_by_county(whole, split)
    return SimpleNamespace(work=work, whole=whole, split=split)


def test_files_group_by_their_suffix(tmp_path):
    for name in ("units_a.csv", "events_a.csv", "events_b.csv", "event_updates_b.csv", "unit_history_a.csv"):
        (tmp_path / name).write_text("x\n", encoding="utf-8")
    groups = file_groups(locate_tables(tmp_path, optional=("event_updates", "unit_history")))
    assert [g.key for g in groups] == ["_a", "_b"]
    assert {t: [p.name for p in ps] for t, ps in groups[1].files.items()} == {
        "events": ["events_b.csv"],
        "event_updates": ["event_updates_b.csv"],
    }
    (tmp_path / "event_updates_c.csv").write_text("x\n", encoding="utf-8")  # no events_c: not groups
    assert file_groups(locate_tables(tmp_path, optional=("event_updates",))) is None
    one = {"units": (tmp_path / "units_a.csv",), "events": (tmp_path / "events_a.csv",)}
    assert file_groups(one) is None


def test_features_from_worker_ingestion_equal_the_single_process(worlds, cluster):
    single_ds, panel = prepare(worlds.whole, CONFIG, Settings(home=worlds.work / "home1"))
    dates = labelled_as_of(panel, 1, 1)
    single = build_frame(
        panel, dates, tier_rules=CONFIG.tiers, horizon_months=1, params=CONFIG.features, with_labels=True
    )
    with dask_client(cluster.scheduler_address) as client:
        data = ingest_on_workers(client, worlds.split, CONFIG.categories, worlds.work / "home2")
        assert isinstance(data, Ingested) and len(data.groups) == single_ds.units["county"].nunique()
        assert data.n_events() == len(single_ds.events)
        layout = Layout(client, data, CONFIG, units_per_partition=100)
        assert len(layout.parts) >= 2
        assert all(isinstance(t, PartitionSource) for t in layout._tables)  # ids and files, no events
        frame = layout.frame(dates, with_labels=True)
    pd.testing.assert_frame_equal(frame, single, check_exact=True)
    rejects = pd.read_csv(data.rejects_path, encoding="utf-8-sig")
    assert len(rejects) == 2 and rejects["file"].str.contains("events_1").all()
    assert data.data_fingerprint != ""


def test_a_partition_reads_only_its_members_rows(worlds, cluster):
    with dask_client(cluster.scheduler_address) as client:
        data = ingest_on_workers(client, worlds.split, CONFIG.categories, worlds.work / "home3")
    members = np.flatnonzero(data.units["county"].to_numpy() == data.units["county"].iloc[0])
    tables = data.source_of(members).load()
    assert len(data.source_of(members).files["events"]) == 1  # one county, one group
    ids = set(data.units["unit_id"].iloc[members])
    assert set(tables.events["unit_id"]) <= ids and len(tables.events) > 0
    assert tables.updates["event_id"].isin(tables.events["event_id"]).all()
    occ = tables.events["occurred_at"].to_numpy()
    assert (occ[1:] >= occ[:-1]).all()


@pytest.mark.slow
def test_scores_from_worker_ingestion_equal_the_single_process_run(worlds, cluster):
    one = Settings(home=worlds.work / "home4", database_url=f"sqlite:///{worlds.work}/one.db")
    on_dask = one.model_copy(
        update={"dask": cluster.scheduler_address, "database_url": f"sqlite:///{worlds.work}/dask.db"}
    )
    version = jobs.train(worlds.whole, CONFIG, one)
    jobs.promote(version, settings=one, force=True)
    jobs.score(worlds.whole, settings=one)
    out = jobs.score(worlds.split, settings=on_dask)
    assert out["n_units"] == 240
    queries = {
        "scores": "select unit_id, as_of, model_version, tier, risk_score, p_blue, p_yellow, p_orange, p_red, "
        "reasons, relative_red, relative_orange from scores order by as_of, unit_id",
        "observed": "select unit_id, as_of, tier from observed_tiers order by unit_id, as_of",
        "open_events": "select * from open_events order by 1, 2",
    }
    assert_same_rows(worlds.work, queries, drop=("id", "data_dir", "source"))
