"""The sentences the pages say about a forecast."""

from __future__ import annotations

from sanling.serving.pages.wording import (
    hits_sentence,
    intensity_sentence,
    record_sentence,
    relative_sentence,
    tier_set_text,
)


def test_relative_risk_in_words():
    assert relative_sentence(0.08, 2.4, "village") == "下月发生红色事件的概率8%，是同县同类村庄的2.4倍"
    assert relative_sentence(0.08, 1.02, "community") == "下月发生红色事件的概率8%，与同县同类社区持平"
    assert relative_sentence(0.004, None, "enterprise") == "下月发生红色事件的概率不足1%"


def test_last_months_hits_and_the_units_own_record():
    assert hits_sentence("2022-11", 3, 2) == "上月（2022-11）红色预警3个，其中2个发生红色事件"
    assert hits_sentence("2022-11", 3, None).endswith("结果尚待观察")
    assert hits_sentence("2022-11", 0, None) == "上月（2022-11）红色预警0个"
    forecast = {"2022-01": "red", "2022-02": "red", "2022-03": "blue", "2022-04": "red"}
    observed = {"2022-01": "red", "2022-02": "orange", "2022-03": "red"}
    assert record_sentence(forecast, observed) == "以上月份中预测红色3次，已知结果的2次中1次发生红色事件"
    assert record_sentence({"2022-01": "blue"}, {}) == ""


def test_tier_sets_and_reporting_intensity_in_words():
    assert tier_set_text(["orange", "red"]) == "有90%的把握，下月等级在橙、红之中"
    assert tier_set_text(["red"]) == ""
    busy = {"label_zh": "网格员每千人", "value": 3.2, "peer_mean": 2.0, "ratio": 1.6}
    assert intensity_sentence(busy, "village").startswith(
        "网格员每千人3.2，是同县同类村庄平均的1.6倍：上报较勤"
    )
    assert "可能有事件未被记录" in intensity_sentence({**busy, "ratio": 0.5}, "village")
    assert intensity_sentence(None, "village") == ""
