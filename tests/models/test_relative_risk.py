"""Relative risk against the same unit type in the same county and month."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models.relative_risk import peer_mean_probabilities, relative_risk


def test_ratio_is_against_same_type_same_county_same_month():
    meta = pd.DataFrame(
        {
            "as_of": ["2022-12"] * 5 + ["2022-11"],
            "county": ["甲县", "甲县", "甲县", "乙县", "甲县", "甲县"],
            "unit_type": ["village", "village", "enterprise", "village", "village", "village"],
        }
    )
    p_red = np.array([0.24, 0.06, 0.5, 0.9, 0.0, 0.9])
    proba = np.column_stack([1 - p_red - 0.1, np.full(6, 0.05), np.full(6, 0.05), p_red])
    rr = relative_risk(proba, peer_mean_probabilities(meta, proba))
    # 甲县 villages in 2022-12: 0.24, 0.06, 0.0 → mean 0.10; the 2022-11 row and 乙县 are not peers
    assert rr[0]["red"] == 2.4 and rr[1]["red"] == 0.6 and rr[4]["red"] == 0.0
    assert rr[2]["red"] == 1.0 and rr[3]["red"] == 1.0  # alone in its group
    assert rr[0]["orange_or_worse"] == round(0.29 / np.mean([0.29, 0.11, 0.05]), 2)


def test_peers_all_at_zero_give_no_ratio():
    meta = pd.DataFrame({"as_of": ["2022-12"] * 2, "county": ["甲县"] * 2, "unit_type": ["enterprise"] * 2})
    proba = np.array([[0.9, 0.1, 0.0, 0.0], [0.8, 0.2, 0.0, 0.0]])
    rr = relative_risk(proba, peer_mean_probabilities(meta, proba))
    assert rr[0] == {"red": None, "orange_or_worse": None}
