"""The township pages in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) against the real app under uvicorn on a seeded SQLite store.

Screenshots go to ``tests/_artifacts/`` (git-ignored); the good ones are copied to ``docs/img/``."""

from __future__ import annotations

import io
from pathlib import Path

import pages_world as world
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ARTIFACTS = world.ARTIFACTS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    app, _settings, tokens = world.make_app(tmp_path_factory.mktemp("browser"))
    with world.Served(app) as base_url:
        yield base_url, tokens, app


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian chromium is not installed: run `make browser` (the page tests must run, not skip)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def _shot(page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _sign_in(browser, base_url: str, token: str, **ctx):
    context = browser.new_context(base_url=base_url, locale="zh-CN", accept_downloads=True, **ctx)
    context.set_default_timeout(10_000)
    page = context.new_page()
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base_url) else external.append(r.url))
    # console errors include Content-Security-Policy violations (e.g. an inline script slipping in)
    page.on(
        "console",
        lambda m: (
            external.append(f"console: {m.text}")
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    # a stylesheet, script or icon that fails to load (the 404 page itself is a document, expected)
    page.on(
        "response",
        lambda r: (
            external.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    page.goto("/list")
    assert page.url.endswith("/login")  # redirected to the sign-in form
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/list")
    return context, page, external


def test_township_staff_workflow(served, browser):
    base_url, tokens, _app = served
    context, page, external = _sign_in(
        browser, base_url, tokens["township"], viewport={"width": 1280, "height": 900}
    )
    assert "风险清单 · 城关镇" in page.inner_text("h1")
    rows = page.locator("#risklist tbody tr")
    assert rows.count() == 6
    assert rows.first.locator(".chip").inner_text() == "红"
    # the CJK font renders: the brand's glyphs are wider than a box-glyph fallback would make them
    assert page.locator(".brand").bounding_box()["width"] > 120
    _shot(page, "list_desktop")

    # filter: red only
    page.select_option("select[name=tier]", "red")
    page.click("form#filters button[type=submit]")
    page.wait_for_url("**tier=red**")
    assert rows.count() == 2

    # the unit page: explained score, chart, history, open events
    page.click("text=东关村")
    page.wait_for_url("**/units/140101001001")
    assert page.locator("#reasons .cbar .bar").count() == 5  # four reasons + one protective factor
    assert page.locator("#history svg rect[data-kind=forecast]").count() == 24
    assert page.locator("#history svg rect[data-kind=observed]").count() == 24
    assert page.locator("#open-events tbody tr").count() == 3
    assert page.locator("table.heat tbody tr").count() >= 2
    _shot(page, "unit_desktop")

    # record a follow-up (双排查)
    page.fill("input[name=screened_on]", "2023-01-06")
    page.fill("input[name=person]", "王芳")
    page.fill("textarea[name=findings]", "土地承包纠纷一起，消防通道堵塞")
    page.fill("textarea[name=measures]", "村委会调解；三日内清理通道")
    page.select_option("select[name=status]", "排查中")
    page.fill("input[name=deadline]", "2023-01-20")
    page.click("#followup-form button[type=submit]")
    page.wait_for_url("**/units/140101001001?saved=1**")
    fu = page.locator("#followups tbody tr").first
    assert "土地承包纠纷一起" in fu.inner_text() and "排查中" in fu.inner_text()
    page.goto("/list")
    first = page.locator("#risklist tbody tr").first
    assert "排查中" in first.inner_text()

    # export the ledger and check its rows
    with page.expect_download() as dl:
        page.click("#export")
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes())).active
    header = [c.value for c in ws[1]]
    body = [dict(zip(header, (c.value for c in r), strict=True)) for r in ws.iter_rows(min_row=2)]
    listed = page.locator("#risklist tbody tr td.title a").all_inner_texts()
    assert [r["单位名称"] for r in body] == listed
    assert {r["所属乡镇"] for r in body} == {"城关镇"}
    assert body[0]["整改状态"] == "排查中" and body[0]["排查情况"].startswith("土地承包")

    # another township's unit by URL: the 404 page, no data
    resp = page.goto("/units/140101002001")
    assert resp.status == 404 and "未找到" in page.inner_text("h1") and "河西村" not in page.content()
    _shot(page, "not_found")

    # CSRF: a POST with the session cookie but without the form token is refused
    r = context.request.post(
        f"{base_url}/units/140101001001/followups",
        form={"screened_on": "2023-01-07", "person": "x", "status": "误报"},
    )
    assert r.status == 403
    page.goto("/units/140101001001")
    assert page.locator("#followups tbody tr").count() == 1

    # sign out ends the session
    page.click("text=退出")
    page.wait_for_url("**/login")
    page.goto("/list")
    assert page.url.endswith("/login")
    assert external == []  # everything is served locally, no console or CSP errors
    context.close()


def test_phone_width(served, browser):
    base_url, tokens, _app = served
    context, page, external = _sign_in(
        browser,
        base_url,
        tokens["township"],
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    # no sideways scrolling, large tap targets
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("form#filters button[type=submit]").bounding_box()
    assert box["height"] >= 44
    assert page.locator("#risklist thead").is_hidden()  # rows become cards
    _shot(page, "list_phone")
    page.locator("#risklist").scroll_into_view_if_needed()
    _shot(page, "list_phone_screen", full_page=False)
    page.click("text=东关村")
    page.wait_for_url("**/units/140101001001")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "unit_phone")
    assert external == []
    context.close()


def test_analyst_bulletin_and_province(served, browser):
    base_url, tokens, _app = served
    context, page, external = _sign_in(
        browser, base_url, tokens["analyst"], viewport={"width": 1280, "height": 900}
    )
    # analysts choose county and township
    page.select_option("#county", "示范县")
    page.select_option("#township", "河西乡")
    page.click("form#filters button[type=submit]")
    page.wait_for_url("**township=**")
    assert page.locator("#risklist tbody tr").count() == 4
    page.goto("/bulletin?county=示范县&as_of=2022-12")
    assert "月度通报" in page.inner_text("h1")
    assert page.locator("#ranking tbody tr").first.locator("td.title").inner_text() == "河西乡"
    assert "河西社区" in page.inner_text("#new-red")
    _shot(page, "bulletin")
    with page.expect_download() as dl:
        page.click("#bulletin-download")
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes()))
    ranking = [r[1] for r in wb["乡镇排名"].iter_rows(min_row=2, values_only=True)]
    assert ranking == ["河西乡", "城关镇"]
    page.goto("/province")
    assert "83.3%" in page.inner_text("#by-type")
    _shot(page, "province")
    assert external == []
    context.close()


def test_list_order_relative_risk_sentence_and_history_strip(served, browser):
    """What a clerk reads first: red units before any orange one whatever their scores, how a unit
    compares with its peers in words, and what earlier forecasts came to."""
    base_url, tokens, _app = served
    context, page, external = _sign_in(
        browser, base_url, tokens["township"], viewport={"width": 1280, "height": 900}
    )
    chips = page.locator("#risklist tbody tr .chip").all_inner_texts()
    assert chips == ["红", "红", "橙", "黄", "黄", "蓝"]
    ids = [r.get_attribute("data-unit") for r in page.locator("#risklist tbody tr").all()]
    assert ids[:3] == ["140101001001", "140101001003", "140101001002"]  # red 66.0 above orange 72.0
    scores = page.locator("#risklist tbody tr td.num").all_inner_texts()
    assert scores[1].startswith("66.0") and scores[2].startswith("72.0")
    assert "同类2.4倍" in scores[0]
    assert page.inner_text("#last-month-hits") == "上月（2022-11）红色预警1个，其中1个发生红色事件"

    page.goto("/units/140101001002")  # nothing recorded after the fact: no note
    assert page.locator("#late-records").count() == 0
    page.goto("/units/140101001001")
    assert page.inner_text("#relative-risk") == "下月发生红色事件的概率50%，是同县同类村庄的2.4倍"
    assert page.inner_text("#tier-set") == "有90%的把握，下月等级在橙、红之中"
    assert page.inner_text("#reporting-intensity").startswith(
        "网格员每千人3.2，是同县同类村庄平均的1.6倍：上报较勤"
    )
    late = page.locator("#late-records abbr")
    assert late.inner_text() == "含补录事件2起、事后越级1起"
    assert "本月底已登记" in late.get_attribute("title")
    forecast = page.locator("#history svg rect[data-kind=forecast]")
    observed = page.locator("#history svg rect[data-kind=observed]")
    assert forecast.count() == observed.count() == 24
    months = [r.get_attribute("data-month") for r in forecast.all()]
    assert months[0] == "2021-01" and months[-1] == "2022-12"
    assert all(r.get_attribute("data-tier") for r in forecast.all())  # every month was forecast
    seen = [r.get_attribute("data-tier") for r in observed.all()]
    assert all(seen[:-1]) and seen[-1] == ""  # December's window is still open
    assert "预测红色" in page.inner_text("#forecast-record")
    page.locator("#history").scroll_into_view_if_needed()
    _shot(page, "unit_history", full_page=False)
    assert external == []
    context.close()
