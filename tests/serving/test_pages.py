"""The township pages without a browser: pure bulletin/achievement/chart functions, and the routes
through FastAPI's TestClient on the small seeded world (sign-in, scope, CSRF, follow-ups + audit)."""

from __future__ import annotations

import io
import re

import pages_world as world
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sanling.core.months import months_back
from sanling.serving.pages.achievement import achievement_rates
from sanling.serving.pages.bulletin import build_bulletin, bulletin_xlsx
from sanling.serving.pages.charts import contribution_chart, event_grid, tier_strip_svg
from sanling.serving.store import list_audit, session_scope

# --- pure functions -----------------------------------------------------------------------------


def test_bulletin_counts_rankings_and_new_red():
    cur = [
        {
            "unit_id": "a",
            "unit_name": "甲村",
            "unit_type": "village",
            "township": "T1",
            "tier": "red",
            "risk_score": 90.0,
            "reasons": [{"text_zh": "r1"}, {"text_zh": "r2"}, {"text_zh": "r3"}, {"text_zh": "r4"}],
        },
        {
            "unit_id": "b",
            "unit_name": "乙村",
            "unit_type": "village",
            "township": "T1",
            "tier": "orange",
            "risk_score": 70.0,
            "reasons": [],
        },
        {
            "unit_id": "c",
            "unit_name": "丙村",
            "unit_type": "village",
            "township": "T2",
            "tier": "blue",
            "risk_score": 5.0,
            "reasons": [],
        },
        {
            "unit_id": "d",
            "unit_name": "丁社区",
            "unit_type": "community",
            "township": "T2",
            "tier": "red",
            "risk_score": 80.0,
            "reasons": [],
        },
        {
            "unit_id": "e",
            "unit_name": "戊村",
            "unit_type": "village",
            "township": "T3",
            "tier": "blue",
            "risk_score": 1.0,
            "reasons": [],
        },
    ]
    prev = [
        {"unit_id": "a", "tier": "orange"},
        {"unit_id": "d", "tier": "red"},
        {"unit_id": "b", "tier": "blue"},
    ]
    fu = [
        {"unit_id": "a", "status": "已整改"},
        {"unit_id": "b", "status": "排查中"},
        {"unit_id": "d", "status": "误报"},
    ]
    b = build_bulletin("县", "2022-12", cur, prev, fu, previous_as_of="2022-11")
    counts = {r["tier"]: r for r in b.tier_counts}
    assert counts["red"]["n"] == 2 and counts["red"]["delta"] == 1
    assert counts["blue"]["n"] == 2 and counts["blue"]["n_prev"] == 1
    town = {r["township"]: r for r in b.townships}
    assert town["T1"]["hot_share"] == 1.0 and town["T1"]["rank_hot"] == 1
    assert town["T1"]["completion"] == 0.5 and town["T1"]["coverage"] == 1.0
    assert town["T2"]["completion"] == 1.0 and town["T2"]["rank_done"] == 1 and town["T1"]["rank_done"] == 2
    assert town["T3"]["completion"] is None and town["T3"]["rank_done"] is None
    assert [r["unit_id"] for r in b.new_red] == ["a"]  # d was already red
    assert b.new_red[0]["reasons"] == ["r1", "r2", "r3"] and b.new_red[0]["prev_tier_zh"] == "橙"
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(bulletin_xlsx(b)))
    assert wb.sheetnames == ["分级统计", "乡镇排名", "新增红色预警"]
    assert [c.value for c in wb["新增红色预警"][2]][:2] == ["a", "甲村"]


def test_bulletin_without_previous_month_says_so():
    cur = [
        {
            "unit_id": "a",
            "unit_name": "甲",
            "unit_type": "village",
            "township": "T",
            "tier": "red",
            "risk_score": 9.0,
            "reasons": [],
        }
    ]
    b = build_bulletin("县", "2022-12", cur, [], [])
    assert b.tier_counts[0]["delta"] is None and b.notes
    assert b.new_red[0]["prev_tier_zh"] == "新"


def test_achievement_rates_this_year_so_far_and_last_year():
    units = pd.DataFrame(
        {
            "unit_id": ["a", "b", "c", "d"],
            "unit_type": ["village", "village", "community", "enterprise"],
            "city": ["太原市", "太原市", "大同市", "大同市"],
        }
    )
    ev = pd.DataFrame(
        {
            "unit_id": ["a", "a", "c", "b", "d"],
            "month": ["2022-03", "2021-05", "2022-09", "2021-01", "2022-02"],
            "category": ["criminal", "casualties", "petition_escalated", "dispute", "petition"],
            "n": [1, 1, 1, 5, 2],
        }
    )
    r = achievement_rates(units, ev, "2022-06")  # c's September event is after the as-of month
    by = {x["unit_type"]: x for x in r["by_type"]}
    assert by["village"]["rate"] == 0.5 and by["village"]["rate_last"] == 0.5
    assert by["community"]["rate"] == 1.0 and by["enterprise"]["rate"] == 1.0  # petition is not a red rule
    assert [x["unit_type"] for x in r["by_type"]] == ["village", "community", "enterprise"]
    assert {(x["city"], x["unit_type"]) for x in r["by_city"]} == {
        ("太原市", "village"),
        ("大同市", "community"),
        ("大同市", "enterprise"),
    }


def test_charts():
    assert months_back("2022-02", 3) == ["2021-12", "2022-01", "2022-02"]
    html = str(
        contribution_chart(
            [{"text_zh": "纠纷<多>", "contribution": 0.5}], [{"text_zh": "调解", "contribution": -0.25}]
        )
    )
    assert html.count('class="bar up"') == 1 and html.count('class="bar down"') == 1
    assert "纠纷&lt;多&gt;" in html and "<多>" not in html
    # the zero line sits a third of the way across the bars (0.25 of 0.75 is negative space)
    assert "--zero:33.3%" in html and "width:50.7%" in html and "width:25.3%" in html
    assert contribution_chart([], []) == ""
    strip = str(tier_strip_svg({"2022-01": "red"}, ["2021-12", "2022-01"]))
    assert "#d93025" in strip and "未评分" in strip
    g = event_grid(
        [
            {"month": "2022-01", "category": "dispute", "n": 4},
            {"month": "2022-02", "category": "dispute", "n": 1},
            {"month": "2022-01", "category": "criminal_x", "n": 9},
        ],
        ["2022-01", "2022-02"],
    )
    assert [r["category"] for r in g["rows"]] == ["dispute"]
    assert [c["level"] for c in g["rows"][0]["cells"]] == [4, 1]


# --- routes -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app, _settings, tokens = world.make_app(tmp_path_factory.mktemp("pages"))
    return app, tokens


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def _client(app, token: str | None) -> TestClient:
    c = TestClient(app, base_url="http://testserver")
    if token is not None:
        r = c.get("/login")
        r = c.post("/login", data={"token": token, "csrf_token": _csrf(r.text)}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/list"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    return c


def test_pages_need_a_session(site):
    app, _ = site
    c = _client(app, None)
    for path in ("/", "/list", "/units/140101001001", "/bulletin", "/province"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    assert c.get("/login").status_code == 200


def test_login_rejects_bad_token_service_token_and_missing_csrf(site):
    app, tokens = site
    c = _client(app, None)
    csrf = _csrf(c.get("/login").text)
    r = c.post("/login", data={"token": "nope", "csrf_token": csrf})
    assert r.status_code == 401 and "令牌无效" in r.text
    csrf = _csrf(r.text)
    r = c.post("/login", data={"token": tokens["service"], "csrf_token": csrf})
    assert r.status_code == 401 and "不能用于网页登录" in r.text
    r = c.post("/login", data={"token": tokens["township"]}, follow_redirects=False)
    assert r.status_code == 403


def test_township_list_is_scoped_sorted_and_explained(site):
    app, tokens = site
    c = _client(app, tokens["township"])
    html = c.get("/list").text
    ids = re.findall(r'data-unit="(\d+)"', html)
    assert ids == [
        "140101001001",
        "140101001003",
        "140101001002",
        "140101001004",
        "140101001006",
        "140101001005",
    ]
    assert "河西村" not in html and "未化解矛盾纠纷3起" in html
    row = html[html.index('data-unit="140101001001"') :]
    assert "delta up" in row[:800]  # orange → red
    assert c.get("/list?tier=red").text.count('data-unit="') == 2
    assert re.findall(r'data-unit="(\d+)"', c.get("/list?q=社区").text) == ["140101001003", "140101001004"]
    # a township user cannot widen the scope with the township filter
    assert "河西村" not in c.get("/list?township=河西乡").text


def test_other_township_unit_is_404_like_a_missing_one(site):
    app, tokens = site
    c = _client(app, tokens["township"])
    own = c.get("/units/140101001001")
    assert (
        own.status_code == 200
        and "<svg" in own.text
        and 'class="bar up"' in own.text
        and "土地承包" in own.text
    )
    foreign, missing = c.get("/units/140101002001"), c.get("/units/999")
    assert foreign.status_code == missing.status_code == 404
    assert "河西村" not in foreign.text
    assert c.get("/province").status_code == 404


def test_followup_create_edit_audit_and_scope(site):
    app, tokens = site
    c = _client(app, tokens["township"])
    csrf = _csrf(c.get("/units/140101001002").text)
    form = {
        "csrf_token": csrf,
        "screened_on": "2023-01-05",
        "person": "赵六",
        "findings": "邻里纠纷两起",
        "measures": "调解",
        "status": "排查中",
        "deadline": "2023-01-31",
    }
    r = c.post("/units/140101001002/followups", data=form, follow_redirects=False)
    assert r.status_code == 303
    page = c.get("/units/140101001002").text
    fid = re.search(r'data-followup="(\d+)"', page).group(1)
    r = c.post(f"/followups/{fid}", data={**form, "status": "已整改"}, follow_redirects=False)
    assert r.status_code == 303
    assert re.findall(r'data-unit="(\d+)"', c.get("/list?status=已整改").text) == ["140101001002"]
    assert "140101001002" not in c.get("/list?status=未排查").text
    with session_scope(app.state.engine) as s:
        trail = list_audit(s, entity="followups", entity_id=fid)
    assert [a["action"] for a in trail] == ["update", "create"]
    assert trail[0]["detail"]["before"] == {"status": "排查中"} and trail[0]["detail"]["after"] == {
        "status": "已整改"
    }
    assert "王芳" in trail[0]["actor"]
    # bad input: one clear message, nothing stored
    r = c.post("/units/140101001002/followups", data={**form, "screened_on": "昨天"})
    assert r.status_code == 400 and "排查日期格式不正确" in r.text
    # another township's user can neither see nor edit it
    other = _client(app, tokens["other"])
    assert other.get(f"/followups/{fid}/edit").status_code == 404
    csrf_o = _csrf(other.get("/list").text)
    assert other.post(f"/followups/{fid}", data={**form, "csrf_token": csrf_o}).status_code == 404
    assert other.post("/units/140101001002/followups", data={**form, "csrf_token": csrf_o}).status_code == 404


def test_csrf_and_origin_are_checked(site):
    app, tokens = site
    c = _client(app, tokens["township"])
    csrf = _csrf(c.get("/units/140101001003").text)
    data = {"screened_on": "2023-01-05", "person": "赵六", "status": "待排查"}
    assert c.post("/units/140101001003/followups", data=data).status_code == 403
    assert c.post("/units/140101001003/followups", data={**data, "csrf_token": "x" * 64}).status_code == 403
    r = c.post(
        "/units/140101001003/followups",
        data={**data, "csrf_token": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    assert "尚无排查记录" in c.get("/units/140101001003").text


def test_responsible_person_is_audited(site):
    app, tokens = site
    c = _client(app, tokens["township"])
    csrf = _csrf(c.get("/units/140101001006").text)
    r = c.post(
        "/units/140101001006/responsible",
        data={"csrf_token": csrf, "responsible_person": "钱七"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "钱七" in c.get("/list").text
    with session_scope(app.state.engine) as s:
        a = list_audit(s, entity="units", entity_id="140101001006")[0]
    assert a["detail"]["after"] == {"responsible_person": "钱七"}


def test_bulletin_and_province_for_the_analyst(site):
    app, tokens = site
    c = _client(app, tokens["analyst"])
    html = c.get("/bulletin?county=示范县&as_of=2022-12").text
    assert "示范县 三零单位风险预警月度通报" in html and "河西社区" in html  # orange → red: new red
    assert html.index("河西乡") < html.index("城关镇")  # 3/4 red+orange ranks above 3/6
    r = c.get("/bulletin.xlsx?county=示范县&as_of=2022-12")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    prov = c.get("/province").text
    # 2022: units 东关村 (criminal) and 南街社区 (escalated petition) fail; 2021: three villages
    assert "83.3%" in prov and "75.0%" in prov and "50.0%" in prov
    # a township user gets the own county's bulletin only
    t = _client(app, tokens["township"])
    assert "东山县" not in t.get("/bulletin?county=东山县").text


def test_revoking_the_token_ends_the_session(tmp_path):
    app, _settings, tokens = world.make_app(tmp_path)
    c = _client(app, tokens["township"])
    assert c.get("/list", follow_redirects=False).status_code == 200
    with session_scope(app.state.engine) as s:
        from sanling.serving.store import principal_for, revoke_token

        assert revoke_token(s, principal_for(s, tokens["township"]).token_id)
    r = c.get("/list", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_secure_cookie_behind_https(tmp_path):
    app, _settings, tokens = world.make_app(tmp_path, cookie_secure=True)
    c = TestClient(app, base_url="https://testserver")
    r = c.get("/login")
    r = c.post(
        "/login", data={"token": tokens["analyst"], "csrf_token": _csrf(r.text)}, follow_redirects=False
    )
    assert r.status_code == 303
    assert "secure" in r.headers["set-cookie"].lower()


def test_list_pages(site, monkeypatch):
    from sanling.serving.pages import routes

    app, tokens = site
    monkeypatch.setattr(routes, "PAGE_SIZE", 5)
    c = _client(app, tokens["analyst"])
    first, second = c.get("/list").text, c.get("/list?page=2").text
    ids = re.findall(r'data-unit="(\d+)"', first) + re.findall(r'data-unit="(\d+)"', second)
    assert len(ids) == 10 and len(set(ids)) == 10 and "第 1 / 3 页" in first and "下一页" in first
    assert "共 12 个单位" in first


def test_unit_page_says_which_figures_were_recorded_after_the_fact(site):
    app, tokens = site
    c = _client(app, tokens["township"])
    late = c.get("/units/140101001001").text  # 东关村: two late-entered events, one later escalation
    m = re.search(r'<p[^>]*id="late-records"><abbr title="([^"]+)"[^>]*>([^<]+)</abbr>', late)
    assert m, "no late-records note on the unit page"
    assert m.group(2) == "含补录事件2起、事后越级1起"
    assert "补录" in m.group(1) and "本月底已登记" in m.group(1)
    # 西关村's counts are all zero, 南街社区 has none stored: no note.
    for unit in ("140101001002", "140101001003"):
        page = c.get(f"/units/{unit}").text
        assert 'id="late-records"' not in page and "补录" not in page
