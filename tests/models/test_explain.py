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


def test_batch_choice_equals_the_row_by_row_reasons():
    """The vectorised choice of reasons against the row-by-row computation it replaced: missing
    values skipped, ties, thresholds, ``top`` cut-offs, text columns — the same lists to the letter."""
    from reference_reasons import explain_rows_row_by_row

    rng = np.random.default_rng(3)
    n = 400
    specs = [*SPECS, ReasonSpec("share", "s", "以往{value_pct}，平均{peer_pct}", "history", "以往预警情况")]
    specs += [
        ReasonSpec(f"x{k}", f"x{k}", f"x{k}为{{value}}，平均{{peer}}", f"g{k % 4}", f"组{k}")
        for k in range(8)
    ]
    values = pd.DataFrame({s.name: rng.integers(0, 4, n).astype(float) for s in specs})
    values["industry"] = pd.Categorical(rng.choice(["煤炭", "化工", None], n))
    values["share"] = rng.random(n)
    values["x3"] = np.round(rng.normal(size=n), 4)
    values = values.mask(rng.random(values.shape) < 0.15)  # not recorded: never a reason
    values["industry"] = values["industry"].astype("category")
    peers = pd.DataFrame({s.name: rng.random(n) * 3 for s in specs}).assign(industry=np.nan)
    contrib = np.round(rng.normal(scale=0.2, size=(n, len(specs))), 2)  # ties between groups
    contrib[rng.random(contrib.shape) < 0.2] = 0.0
    for top in (1, 3, 5):
        got = explain_rows(contrib, values, peers, specs, top=top)
        want = explain_rows_row_by_row(contrib, values, peers, specs, top=top)
        assert got == want
        assert any(len(r) == top for r in got[0]) and any(r == [] for r in got[1])
        # the same value types, not only equal values (1 and 1.0 compare equal)
        assert [type(x["value"]) for r in got[0] for x in r] == [type(x["value"]) for r in want[0] for x in r]


def test_a_rendered_text_is_reused_only_for_the_same_value_and_sign():
    """-0.0 equals 0 but reads "-0%": texts kept between rows must not mix them up."""
    from reference_reasons import explain_rows_row_by_row

    spec = [ReasonSpec("share", "s", "以往{value_pct}，平均{peer_pct}", "history", "以往预警情况")]
    values = pd.DataFrame({"share": [0.0, -0.0004, 0.0, 0.5]})
    peers = pd.DataFrame({"share": [0.0, 0.0, -0.0, 0.0]})
    contrib = np.full((4, 1), 0.3)
    got = explain_rows(contrib, values, peers, spec)
    assert got == explain_rows_row_by_row(contrib, values, peers, spec)
    assert [r[0]["text_zh"] for r in got[0]] == [
        "以往0%，平均0%",
        "以往-0%，平均0%",
        "以往0%，平均-0%",
        "以往50%，平均0%",
    ]


def test_a_unit_type_reads_in_chinese():
    from sanling.models.explain import ReasonSpec, render

    spec = ReasonSpec("unit_type", "单位类型", "单位类型为{value}", "registry", "单位基本情况")
    assert [render(spec, v, None) for v in ("community", "village", "enterprise", "矿山")] == [
        "单位类型为社区",
        "单位类型为村",
        "单位类型为企事业单位",
        "单位类型为矿山",
    ]
