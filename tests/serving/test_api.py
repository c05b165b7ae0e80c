"""The JSON API through the real app and a real SQLite store: the auth matrix, shapes, township
filtering, limits, clean errors, metrics and the access log."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from sanling.serving.security import SESSION_COOKIE, sign_session
from sanling.serving.store import open_session, session_scope

OWN_UNIT, OTHER_UNIT = "140100001001", "140100002001"  # 城关镇, 河西乡
CONTRACT_KEYS = {
    "unit_id",
    "unit_name",
    "township",
    "as_of",
    "tier",
    "tier_zh",
    "risk_score",
    "probabilities",
    "reasons",
    "model_version",
}

ROUTES = {
    "unit_own": ("GET", f"/v1/units/{OWN_UNIT}/risk", None),
    "unit_other": ("GET", f"/v1/units/{OTHER_UNIT}/risk", None),
    "list": ("GET", "/v1/risk-list", None),
    "list_other_township": ("GET", "/v1/risk-list?township=河西乡", None),
    "xlsx": ("GET", "/v1/risk-list.xlsx", None),
    "score_own": ("POST", "/v1/score", {"unit_ids": [OWN_UNIT]}),
    "score_other": ("POST", "/v1/score", {"unit_ids": [OWN_UNIT, OTHER_UNIT]}),
    "model": ("GET", "/v1/model", None),
    "metrics": ("GET", "/metrics", None),
}
# Expected status per route and caller. Anonymous, wrong and revoked tokens are 401 everywhere.
EXPECTED = {
    "analyst": {
        "unit_own": 200,
        "unit_other": 200,
        "list": 200,
        "list_other_township": 200,
        "xlsx": 200,
        "score_own": 200,
        "score_other": 200,
        "model": 200,
        "metrics": 200,
    },
    "service": {
        "unit_own": 200,
        "unit_other": 200,
        "list": 200,
        "list_other_township": 200,
        "xlsx": 200,
        "score_own": 200,
        "score_other": 200,
        "model": 200,
        "metrics": 200,
    },
    "township": {
        "unit_own": 200,
        "unit_other": 404,
        "list": 200,
        "list_other_township": 404,
        "xlsx": 200,
        "score_own": 200,
        "score_other": 404,
        "model": 403,
        "metrics": 403,
    },
}
CALLERS = ["anonymous", "wrong", "revoked", "analyst", "service", "township"]


def _headers(world, caller: str) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "wrong":
        return {"Authorization": "Bearer " + "x" * 43}
    return world.headers(caller)


def _call(client, route: str, headers: dict[str, str]):
    method, path, body = ROUTES[route]
    return client.request(method, path, headers=headers, json=body)


@pytest.mark.parametrize("caller", CALLERS)
def test_auth_matrix(client, world, caller):
    got = {route: _call(client, route, _headers(world, caller)).status_code for route in ROUTES}
    expected = EXPECTED.get(caller, dict.fromkeys(ROUTES, 401))
    assert got == expected
    assert client.get("/healthz", headers=_headers(world, caller)).status_code == 200


def test_unauthorised_answers_carry_www_authenticate(client, world):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, world.headers("revoked")):
        r = client.get("/v1/risk-list", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"detail": "missing, invalid or revoked token"}


def test_township_404_is_indistinguishable_from_a_missing_unit(client, world):
    h = world.headers("township")
    foreign = client.get(f"/v1/units/{OTHER_UNIT}/risk", headers=h)
    missing = client.get("/v1/units/999999999999/risk", headers=h)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["detail"].replace(OTHER_UNIT, "X") == missing.json()["detail"].replace(
        "999999999999", "X"
    )
    r = client.post("/v1/score", headers=h, json={"unit_ids": [OTHER_UNIT]})
    assert r.status_code == 404 and r.json() == {"detail": f"unit(s) not found: '{OTHER_UNIT}'"}
    assert world.app.state.scorer.calls == []  # nothing scored for a refused request


def _session_cookie(world, label: str, key: str = "test-secret") -> str:
    with session_scope(world.engine) as s:
        return sign_session(open_session(s, world.token_ids[label], 3600), key)


def test_session_cookie_authenticates_and_tampering_does_not(client, world):
    cookie = _session_cookie(world, "township")
    r = client.get(f"/v1/units/{OWN_UNIT}/risk", cookies={SESSION_COOKIE: cookie})
    assert r.status_code == 200
    client.cookies.clear()
    assert client.get("/v1/risk-list", cookies={SESSION_COOKIE: cookie[:-2] + "xx"}).status_code == 401
    client.cookies.clear()
    revoked = _session_cookie(world, "revoked")
    assert client.get("/v1/risk-list", cookies={SESSION_COOKIE: revoked}).status_code == 401
    client.cookies.clear()
    forged = _session_cookie(world, "analyst", "another-key")
    assert client.get("/v1/risk-list", cookies={SESSION_COOKIE: forged}).status_code == 401


def test_explained_score_shape(client, world):
    body = client.get(f"/v1/units/{OWN_UNIT}/risk", headers=world.headers("service")).json()
    assert set(body) >= CONTRACT_KEYS
    assert (body["as_of"], body["tier"], body["tier_zh"], body["risk_score"]) == (
        "2022-12",
        "orange",
        "橙",
        70.0,
    )
    assert set(body["probabilities"]) == {"blue", "yellow", "orange", "red"}
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-9
    assert {"feature", "value", "contribution", "text_zh"} <= set(body["reasons"][0])
    contributions = [r["contribution"] for r in body["reasons"]]
    assert contributions == sorted(contributions, reverse=True)
    assert body["model_version"] == "1" and isinstance(body["model_version"], str)
    assert (body["previous_tier"], body["change"]) == ("yellow", "up")
    assert body["protective"][0]["contribution"] < 0
    old = client.get(f"/v1/units/{OWN_UNIT}/risk?as_of=2022-11", headers=world.headers("service")).json()
    assert (old["as_of"], old["tier"], old["change"]) == ("2022-11", "yellow", "new")
    assert (
        client.get(f"/v1/units/{OWN_UNIT}/risk?as_of=2020-01", headers=world.headers("service")).status_code
        == 404
    )
    bad = client.get(f"/v1/units/{OWN_UNIT}/risk?as_of=2022-13", headers=world.headers("service"))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "as_of"]


def test_risk_list_township_filtering_and_order(client, world):
    h = world.headers("township")
    rows = client.get("/v1/risk-list", headers=h).json()
    assert {r["township"] for r in rows} == {world.own} and len(rows) == 2
    assert client.get(f"/v1/risk-list?township={world.own}", headers=h).json() == rows
    assert client.get("/v1/risk-list?township=河西乡", headers=h).json() == {
        "detail": "township '河西乡' not found"
    }
    everything = client.get("/v1/risk-list", headers=world.headers("analyst")).json()
    assert [r["risk_score"] for r in everything] == [95.0, 85.0, 70.0, 10.0]
    other = client.get("/v1/risk-list?township=河西乡", headers=world.headers("analyst")).json()
    assert {r["township"] for r in other} == {"河西乡"}
    red = client.get("/v1/risk-list?min_tier=red&limit=1", headers=world.headers("analyst")).json()
    assert [r["unit_id"] for r in red] == [OTHER_UNIT]
    ent = client.get("/v1/risk-list?unit_type=enterprise", headers=world.headers("analyst")).json()
    assert [r["unit_type"] for r in ent] == ["enterprise"]
    assert client.get("/v1/risk-list?min_tier=purple", headers=world.headers("analyst")).status_code == 422


def test_post_score_limit_and_shape(client, world):
    h = world.headers("service")
    too_many = client.post("/v1/score", headers=h, json={"unit_ids": [f"u{i}" for i in range(1001)]})
    assert too_many.status_code == 422
    assert "at most 1,000 unit ids per request (got 1,001)" in too_many.json()["detail"][0]["msg"]
    assert "u1000" not in too_many.text  # the input is not echoed back
    # 1,000 passes validation and reaches the unit check (all unknown here → 404, nothing scored).
    limit = client.post("/v1/score", headers=h, json={"unit_ids": [f"u{i}" for i in range(1000)]})
    assert limit.status_code == 404 and "and 995 more" in limit.json()["detail"]
    assert client.post("/v1/score", headers=h, json={"unit_ids": []}).status_code == 422
    assert client.post("/v1/score", headers=h, json={"ids": [OWN_UNIT]}).status_code == 422
    ok = client.post("/v1/score", headers=h, json={"unit_ids": [OWN_UNIT, OWN_UNIT, OTHER_UNIT]})
    assert ok.status_code == 200
    assert [r["unit_id"] for r in ok.json()] == [OWN_UNIT, OTHER_UNIT]
    assert all(set(r) >= CONTRACT_KEYS for r in ok.json())
    assert world.app.state.scorer.calls[-1] == [OWN_UNIT, OTHER_UNIT]


def test_no_model_is_503_with_a_clear_message(client, world):
    world.app.state.scorer = None  # the swap point the real scorer uses
    h = world.headers("analyst")
    r = client.post("/v1/score", headers=h, json={"unit_ids": [OWN_UNIT]})
    assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
    assert client.get("/v1/model", headers=h).status_code == 503
    assert (
        client.get(f"/v1/units/{OWN_UNIT}/risk", headers=h).status_code == 200
    )  # stored scores still served


def test_model_info_includes_drift_warnings(client, world):
    body = client.get("/v1/model", headers=world.headers("analyst")).json()
    assert body["version"] == "3" and body["training_window"] == ["2018-01", "2022-11"]
    assert body["drift_warnings"] == ["事件量较训练期上升35%"]
    assert (body["scores_as_of"], body["scores_model_version"]) == ("2022-12", "1")


class _Exploding:
    def score(self, unit_ids, as_of=None):
        raise RuntimeError("connection to /srv/secret/model.db failed: password=hunter2")

    def model_info(self):
        raise KeyError("internal_key")


def test_unhandled_errors_leak_nothing(client, world, caplog):
    world.app.state.scorer = _Exploding()
    h = world.headers("analyst")
    with caplog.at_level(logging.ERROR, logger="sanling.error"):
        r = client.post("/v1/score", headers=h, json={"unit_ids": [OWN_UNIT]})
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"detail", "request_id"} and body["detail"] == "internal error"
    assert body["request_id"] == r.headers["x-request-id"]
    assert "hunter2" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert any("hunter2" in (rec.exc_text or "") for rec in caplog.records)  # the traceback is logged
    m = client.get("/v1/model", headers=h)
    assert m.status_code == 500 and "internal_key" not in m.text
    nf = client.get("/v1/nothing-here", headers=h)
    assert nf.status_code == 404 and nf.json() == {"detail": "Not Found"}


def test_metrics_count_by_route_template(client, world):
    h = world.headers("analyst")
    client.get(f"/v1/units/{OWN_UNIT}/risk", headers=h)
    client.get("/v1/units/nope/risk", headers=h)
    text = client.get("/metrics", headers=world.headers("service")).text
    assert (
        'sanling_http_requests_total{method="GET",route="/v1/units/{unit_id}/risk",status="200"} 1.0' in text
    )
    assert 'route="/v1/units/{unit_id}/risk",status="404"} 1.0' in text
    assert "sanling_http_request_duration_seconds_bucket" in text
    assert "/v1/units/nope" not in text


def test_access_log_is_one_structured_line_per_request(client, world, caplog):
    with caplog.at_level(logging.INFO, logger="sanling.access"):
        r = client.get(
            f"/v1/units/{OWN_UNIT}/risk", headers={**world.headers("township"), "X-Request-ID": "abc-123"}
        )
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "sanling.access"]
    assert len(lines) == 1
    line = lines[0]
    assert r.headers["x-request-id"] == "abc-123"
    assert {k: line[k] for k in ("method", "route", "status", "role", "request_id")} == {
        "method": "GET",
        "route": "/v1/units/{unit_id}/risk",
        "status": 200,
        "role": "township",
        "request_id": "abc-123",
    }
    assert line["ms"] >= 0


def test_docs_are_public_and_list_every_api_route(client):
    assert client.get("/docs").status_code == 200
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {
        "/healthz",
        "/v1/units/{unit_id}/risk",
        "/v1/risk-list",
        "/v1/risk-list.xlsx",
        "/v1/score",
        "/v1/model",
        "/metrics",
    } <= paths


def test_an_empty_store_answers_cleanly(tmp_path):
    from sanling.core.config import Settings
    from sanling.serving.app import create_app
    from sanling.serving.store import create_token, session_scope

    app = create_app(Settings(home=tmp_path, secret_key="k"))
    with session_scope(app.state.engine) as s:
        h = {"Authorization": "Bearer " + create_token(s, "analyst")}
    with TestClient(app) as c:
        assert c.get("/v1/risk-list", headers=h).json() == []
        assert c.get(f"/v1/units/{OWN_UNIT}/risk", headers=h).status_code == 404
        assert c.get("/v1/risk-list?as_of=2022-12", headers=h).json() == {
            "detail": "no scores for as_of 2022-12"
        }
        assert c.post("/v1/score", headers=h, json={"unit_ids": [OWN_UNIT]}).status_code == 503
    app.state.engine.dispose()


@pytest.mark.postgres
def test_api_on_postgresql(pg_url, make_world, tmp_path):
    world = make_world(tmp_path, pg_url)
    try:
        with TestClient(world.app) as client:
            h = world.headers("township")
            body = client.get(f"/v1/units/{OWN_UNIT}/risk", headers=h).json()
            assert (body["tier"], body["previous_tier"], body["probabilities"]["red"]) == (
                "orange",
                "yellow",
                0.4,
            )
            assert client.get(f"/v1/units/{OTHER_UNIT}/risk", headers=h).status_code == 404
            assert [r["risk_score"] for r in client.get("/v1/risk-list", headers=h).json()] == [85.0, 70.0]
            assert client.get("/v1/risk-list", headers=world.headers("revoked")).status_code == 401
    finally:
        world.engine.dispose()
        world.app.state.engine.dispose()


def test_the_unit_score_carries_its_late_records_when_the_store_has_them(client, world):
    from api_world import score_row

    from sanling.serving.store import save_scores

    late = {"events": 3, "escalations": 0, "corrections": 1, "window_months": 12}
    with session_scope(world.app.state.engine) as s:
        save_scores(
            s,
            {"as_of": "2022-12", "model_version": "9"},
            [{**score_row(OWN_UNIT, "red", 88.0), "late_records": late}, score_row(OTHER_UNIT, "blue", 4.0)],
        )
    own = client.get(f"/v1/units/{OWN_UNIT}/risk", headers=world.headers("analyst")).json()
    other = client.get(f"/v1/units/{OTHER_UNIT}/risk", headers=world.headers("analyst")).json()
    assert own["late_records"] == late and own["model_version"] == "9"
    assert other["late_records"] is None
    assert set(own) >= CONTRACT_KEYS  # the contract's keys stay; the new one is optional


def test_readyz_needs_no_token_and_says_when_no_model_is_served(tmp_path, client):
    from sanling.core.config import Settings
    from sanling.serving.app import create_app

    assert client.get("/readyz").json() == {"status": "ok"}  # a scorer without a warm-up is ready
    with TestClient(create_app(Settings(home=tmp_path, secret_key="k"))) as bare:
        r = bare.get("/readyz")
        assert r.status_code == 503 and r.json()["detail"].startswith("no model loaded: train and promote")
        assert bare.get("/healthz").status_code == 200
