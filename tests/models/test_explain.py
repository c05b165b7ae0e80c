import numpy as np
import pandas as pd

from sanling.models.explain import ReasonSpec, explain_rows, peer_means, render

SPECS = [
    ReasonSpec(
        "dispute_count_3m",
        "近3个月矛盾纠纷",
        "近3个月矛盾纠纷{value}起，同县同类单位平均{peer}起",
        "dispute",
        "矛盾纠纷",
    ),
    ReasonSpec(
        "dispute_backlog",
        "未化解矛盾纠纷",
        "目前未化解矛盾纠纷{value}起，同县同类单位平均{peer}起",
        "dispute",
        "矛盾纠纷",
    ),
    ReasonSpec(
        "mediators", "调解员人数", "调解员{value}人（同县同类单位平均{peer}）", "registry", "单位基本情况"
    ),
    ReasonSpec("industry", "行业", "行业为{value}", "industry", "行业"),
]


def test_groups_sum_and_strongest_member_speaks():
    contrib = np.array([[0.30, 0.50, -0.20, 0.005], [-0.1, -0.05, 0.4, 0.0]])
    values = pd.DataFrame(
        {
            "dispute_count_3m": [2.0, 0.0],
            "dispute_backlog": [3.0, 0.0],
            "mediators": [1.0, 6.0],
            "industry": pd.Categorical(["煤炭", None]),
        }
    )
    peers = pd.DataFrame(
        {
            "dispute_count_3m": [1.0, 1.0],
            "dispute_backlog": [0.4, 0.4],
            "mediators": [2.5, 2.5],
            "industry": [np.nan, np.nan],
        }
    )
    reasons, protective = explain_rows(contrib, values, peers, SPECS, top=5)
    r0 = reasons[0]
    assert [r["group"] for r in r0] == ["dispute"]  # 0.005 (industry) is below min_abs
    assert r0[0]["contribution"] == 0.8 and r0[0]["feature"] == "dispute_backlog"
    assert r0[0]["text_zh"] == "目前未化解矛盾纠纷3起，同县同类单位平均0.4起" and r0[0]["value"] == 3
    assert protective[0][0]["feature"] == "mediators" and protective[0][0]["contribution"] == -0.2
    assert reasons[1][0]["feature"] == "mediators" and protective[1][0]["contribution"] == -0.15


def test_comparison_word_follows_the_numbers():
    s = ReasonSpec("x", "x", "近12个月信访{value}件，高于同县同类单位平均{peer}件", "petition", "信访")
    assert render(s, 1, 2.5) == "近12个月信访1件，低于同县同类单位平均2.5件"
    assert render(s, 2, 2) == "近12个月信访2件，持平于同县同类单位平均2件"
    assert render(s, None, 2) == "近12个月信访无件，高于同县同类单位平均2件"


def test_peer_means_are_per_county_type_and_month():
    f = pd.DataFrame(
        {
            "as_of": ["2022-01"] * 4,
            "county": ["a", "a", "a", "b"],
            "unit_type": ["village", "village", "community", "village"],
            "x": [1.0, 3.0, 10.0, 7.0],
        }
    )
    assert peer_means(f, ["x"])["x"].tolist() == [2.0, 2.0, 10.0, 7.0]


def test_missing_values_are_not_reasons_and_shares_read_as_percent():
    spec = ReasonSpec(
        "tier_share_orange_all",
        "s",
        "以往{value_pct}的月份达到橙色及以上预警标准，同县同类单位平均{peer_pct}",
        "history",
        "以往预警情况",
    )
    assert render(spec, 0.48, 0.06) == "以往48%的月份达到橙色及以上预警标准，同县同类单位平均6%"
    contrib = np.array([[0.5, 0.3, 0.0, 0.0]])
    values = pd.DataFrame(
        {
            "dispute_count_3m": [np.nan],
            "dispute_backlog": [np.nan],
            "mediators": [2.0],
            "industry": pd.Categorical([None], categories=["煤炭"]),
        }
    )
    peers = pd.DataFrame({c: [1.0] for c in values.columns})
    contrib[0, 2] = 0.2
    reasons, _ = explain_rows(contrib, values, peers, SPECS)
    assert [r["feature"] for r in reasons[0]] == ["mediators"]
