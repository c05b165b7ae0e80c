"""The backtest report's audit sections say exactly what metrics.json's summary holds."""

from __future__ import annotations

from sanling.models.reporting.audit import ACTED_ON_NOTE, audit_sections
from sanling.models.reporting.render import render

LGB = {"rps": 0.1, "ece": 0.02, "red_recall": 0.5, "red_precision": 0.2}
METRICS = {
    "models": {"lightgbm": LGB},
    "summary": {
        "conformal": {
            "level": 0.9,
            "overall": {"coverage": 0.905, "mean_size": 1.8, "n": 6000},
            "by_unit_type": {"village": {"coverage": 0.89, "mean_size": 2.1, "n": 3600}},
        },
        "acted_on": {
            "visited": {"n_rows": 300, "red_share": 0.1, "models": {"lightgbm": LGB}},
            "not_visited": {"n_rows": 5700, "red_share": 0.05, "models": {"lightgbm": LGB}},
        },
        "residual_by_intensity": {
            "label_zh": "网格员每千人",
            "deciles": [
                {
                    "decile": d,
                    "n": 600,
                    "intensity_min": d,
                    "intensity_max": d + 1,
                    "observed_ge_yellow": 0.5,
                    "observed_ge_orange": 0.2,
                    "residual_ge_yellow.lightgbm": 0.0,
                    "residual_ge_orange.lightgbm": -0.01,
                }
                for d in range(1, 11)
            ],
        },
        "calibration_by_group": {"unit_type": {"village": 0.01, "community": 0.07}, "county": {"甲县": 0.02}},
    },
}


def test_each_summary_key_gets_its_section_and_only_bad_groups_are_named():
    sections = audit_sections(METRICS)
    titles = [s["title"] for s in sections]
    assert titles[0].startswith("等级区间 Tier sets at 90%")
    assert "Visited and not-visited" in titles[1] and sections[1]["note"] == ACTED_ON_NOTE
    assert "网格员每千人" in titles[2]
    warnings = sections[3]["blocks"][0]["items"]
    assert len(warnings) == 1 and "community" in warnings[0]
    html = render(
        "backtest.html",
        title="t",
        n_rows=1,
        months=["2022-01"],
        horizon=1,
        n_units=1,
        n_townships=1,
        main="lightgbm",
        sections=sections,
    )
    assert "<li>calibration: 单位类型 community ECE 0.070" in html and "90.5%" in html


def test_nothing_is_added_without_the_summary_keys():
    assert audit_sections({"models": {"lightgbm": LGB}, "summary": {}}) == []
    calm = {**METRICS["summary"], "calibration_by_group": {"unit_type": {"village": 0.03}}}
    assert all("Calibration" not in s["title"] for s in audit_sections({**METRICS, "summary": calm}))
