"""The national preset: regions with their own codes, names and coordinate boxes, written region by
region and split by city into files a data directory reads as one table each."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sanling.core.errors import ConfigError
from sanling.pipeline.ingest import load_dataset
from sanling.pipeline.simulate.national import region_sizes, simulate_national


def test_region_sizes_add_up_to_the_units_asked_for():
    assert region_sizes(1_000_000) == [50_000] * 20
    sizes = region_sizes(123_457)
    assert sum(sizes) == 123_457 and len(sizes) == 2
    assert region_sizes(1_000, 3) == [334, 333, 333]


def test_national_world_is_split_by_city_and_reads_as_one_data_set(tmp_path):
    out = tmp_path / "nation"
    line = simulate_national(out, n_units=400, months=14, seed=2, n_regions=2, progress=False)
    assert "400 units in 2 regions" in line
    units_files = sorted(out.glob("units_*.parquet"))
    assert len(units_files) >= 2 * 11  # every city of both regions has its own file
    assert {p.name[len("units_") : -len(".parquet")][:2] for p in units_files} == {"11", "12"}
    ds = load_dataset(out, home=tmp_path / "home")
    units = ds.units
    assert len(units) == 400 and units["unit_id"].is_unique
    assert units["city"].str.split("·").str[0].isin(["北京", "天津"]).all()
    # The two regions' coordinate boxes do not overlap.
    region = units["city"].str.split("·").str[0]
    boxes = units.groupby(region)["lon"].agg(["min", "max"])
    assert boxes.loc["北京", "max"] < boxes.loc["天津", "min"]
    assert ds.events["event_id"].is_unique and len(ds.events) > 0
    assert ds.updates is not None and ds.updates["event_id"].isin(ds.events["event_id"]).all()
    truth = pd.read_parquet(out / "truth_sample.parquet")
    assert truth["unit_id"].isin(units["unit_id"]).all()
    assert 0 < truth["unit_id"].nunique() < 400
    meta = json.loads((out / "world.json").read_text(encoding="utf-8"))
    assert meta["preset"] == "national" and meta["regions"] == ["北京", "天津"]


def test_national_preset_refuses_too_few_units(tmp_path):
    with pytest.raises(ConfigError, match="too small"):
        simulate_national(tmp_path / "y", n_units=10, progress=False)
    with pytest.raises(ConfigError, match="regions"):
        simulate_national(tmp_path / "z", n_units=400, n_regions=21, progress=False)
