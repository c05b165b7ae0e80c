"""Per-township hit rate and PAI keep same-named townships of different counties apart."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models.group_calibration import calibration_warnings
from sanling.models.township_capacity import township_capacity


def test_same_named_townships_in_two_counties_are_two_records():
    meta = pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(20)],
            "as_of": "2022-12",
            "county": ["甲县"] * 10 + ["乙县"] * 10,
            "township": ["城关镇"] * 20,
        }
    )
    y = np.zeros(20, dtype=int)
    y[[0, 10, 11]] = 3
    proba = np.tile([0.7, 0.2, 0.05, 0.05], (20, 1))
    proba[0] = proba[12] = [0.1, 0.1, 0.2, 0.6]  # 甲县 flags its red unit; 乙县 flags a quiet one
    out = {(r["county"], r["township"]): r for r in township_capacity(meta, y, proba)}
    assert set(out) == {("甲县", "城关镇"), ("乙县", "城关镇")}
    assert out[("甲县", "城关镇")]["hit_rate"] == 1.0 and out[("甲县", "城关镇")]["pai"] == 10.0
    assert out[("乙县", "城关镇")]["hit_rate"] == 0.0 and out[("乙县", "城关镇")]["n_red"] == 2


def test_a_group_twice_as_badly_calibrated_as_the_whole_is_named():
    by_group = {"unit_type": {"village": 0.02, "community": 0.09}, "county": {"甲县": {"ece": 0.03}}}
    warnings = calibration_warnings(by_group, 0.04)
    assert len(warnings) == 1 and "community" in warnings[0] and "0.090" in warnings[0]
    assert calibration_warnings(by_group, None) == [] and calibration_warnings({}, 0.04) == []
