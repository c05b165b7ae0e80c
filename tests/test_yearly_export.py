"""A data directory the code has never seen, the way a county might export it: yearly statistical
counts dated December 31st, GBK-encoded CSV with Chinese headers and Chinese category names, and a
configuration of its own (horizon and cadence of 12 months). It must validate and backtest, train
and score without code changes."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from sanling.core.config import Settings, load_config
from sanling.core.vocabulary import CATEGORIES_ZH
from sanling.pipeline import jobs
from sanling.pipeline.ingest import validate_dir
from sanling.pipeline.simulate import simulate_world

pytestmark = pytest.mark.slow

ZH_UNIT_TYPE = {"village": "村", "community": "社区", "enterprise": "企事业单位"}


def yearly_export(src, dst) -> None:
    """Aggregate a simulated world into yearly counted rows, written as a county's GBK export."""
    units = pd.read_parquet(src / "units.parquet")
    events = pd.read_parquet(src / "events.parquet")
    events["year"] = events["occurred_at"].dt.year
    events["open_at_year_end"] = events["resolved_at"].isna() | (
        events["resolved_at"] > pd.to_datetime(events["year"].astype(str) + "-12-31")
    )
    rows = events.groupby(
        ["unit_id", "year", "category", "escalated", "open_at_year_end"], as_index=False
    ).agg(count=("event_id", "size"), casualties=("casualties", "sum"))
    rows["事件编号"] = [f"Y{i:07d}" for i in range(len(rows))]
    dec31 = rows["year"].astype(str) + "年12月31日"
    out_events = pd.DataFrame(
        {
            "事件编号": rows["事件编号"],
            "单位编码": rows["unit_id"],
            "发生时间": dec31,
            "事件类别": rows["category"].map(CATEGORIES_ZH),
            "数量": rows["count"],
            "是否越级": rows["escalated"].map({True: "是", False: "否"}),
            "伤亡人数": rows["casualties"],
            # open at the year's end: no 化解时间; otherwise resolved by the end of that year
            "化解时间": dec31.where(~rows["open_at_year_end"], ""),
        }
    )
    out_units = units.rename(
        columns={
            "unit_id": "单位编码",
            "unit_name": "单位名称",
            "unit_type": "单位类型",
            "township": "所属乡镇",
            "county": "所属县区",
            "city": "所属市",
        }
    )
    out_units["单位类型"] = out_units["单位类型"].map(ZH_UNIT_TYPE)
    dst.mkdir()
    out_units.to_csv(dst / "units.csv", index=False, encoding="gbk")
    out_events.to_csv(dst / "events.csv", index=False, encoding="gbk")


def test_yearly_gbk_export_backtests_trains_and_scores(tmp_path):
    sim = tmp_path / "sim"
    simulate_world(sim, preset="county", n_units=200, months=60, seed=11, progress=False)
    export = tmp_path / "county_export"
    yearly_export(sim, export)
    (tmp_path / "yearly.yaml").write_text(
        yaml.safe_dump(
            {
                "horizon_months": 12,
                "cadence_months": 12,
                "test_periods": 1,
                "backtest": {"min_train_periods": 2},
                "model": {"validation_periods": 2, "calibration_periods": 1, "n_estimators": 60},
            }
        ),
        encoding="utf-8",
    )
    config = load_config(tmp_path / "yearly.yaml")
    settings = Settings(home=tmp_path / "home")

    report = validate_dir(export, categories=config.categories, home=settings.home)
    assert report.to_dict()["events"]["rejected"] == 0

    metrics = jobs.backtest(export, tmp_path / "bt", config, settings)
    assert metrics["horizon_months"] == 12 and metrics["as_of_dates"] == ["2021-12"]
    assert metrics["n_rows"] == 200
    assert "oracle" not in metrics["models"]  # the simulator's oracle is monthly; none here
    assert json.loads((tmp_path / "bt" / "metrics.json").read_text())["models"]["lightgbm"]["rps"] >= 0

    version = jobs.train(export, config, settings)
    jobs.promote(version, settings=settings)
    scored = jobs.score(export, settings=settings)
    assert scored["as_of"] == "2022-12" and scored["n_units"] == 200
