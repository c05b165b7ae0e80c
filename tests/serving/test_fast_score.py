"""``POST /v1/score`` from the scorer's cached rows (serving/api/fast_score.py, issue 14): the same
answer as the route, and every check of the route still applied — a wrong, revoked or expired token,
a unit outside the token's township, an unknown unit, a malformed or oversized body — with the
metrics and the access log naming the route."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from api_world import StoreScorer, bearer

from sanling.serving.api.fast_score import encode_score
from sanling.serving.store import create_token, revoke_token, session_scope
from sanling.serving.store.tables import Token, utcnow

OWN_UNIT, OTHER_UNIT, ENTERPRISE = "140100001001", "140100002001", "91140100MA0001"


class CachedScorer(StoreScorer):
    """The stored rows, also offered encoded (as the live scorer offers its month's rows); ``warm``
    False stands for a month not yet computed."""

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.warm = True
        self.cached_calls: list[list[str]] = []

    def cached_json(self, unit_ids, as_of, encode):
        from sanling.serving.store import get_score

        self.cached_calls.append(list(unit_ids))
        if not self.warm:
            return None
        with session_scope(self.engine) as s:
            rows = [get_score(s, u, as_of=as_of) for u in unit_ids]
        return None if any(r is None for r in rows) else [encode(r) for r in rows]


@pytest.fixture
def cached(world) -> CachedScorer:
    scorer = CachedScorer(world.engine)
    world.app.state.scorer = scorer
    return scorer


def _posts(app, requests: list[tuple[dict, object]]) -> list[httpx.Response]:
    """Each (headers, json body or raw bytes) POSTed to /v1/score in turn, on one client."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            out = []
            for headers, body in requests:
                if isinstance(body, bytes):
                    out.append(await c.post("/v1/score", headers=headers, content=body))
                else:
                    out.append(await c.post("/v1/score", headers=headers, json=body))
            return out

    return asyncio.run(go())


@pytest.mark.parametrize(
    "body",
    [
        {"unit_ids": [OWN_UNIT]},
        {"unit_ids": [ENTERPRISE, OWN_UNIT, ENTERPRISE]},
        {"unit_ids": [OTHER_UNIT], "as_of": "2022-11"},
    ],
)
def test_the_fast_path_answers_what_the_route_answers(world, cached, body):
    h = world.headers("service")
    (fast,) = _posts(world.app, [(h, body)])
    assert cached.calls == [] and cached.cached_calls  # answered from the cached rows
    world.app.state.scorer = StoreScorer(world.engine)  # no cached rows: the route computes
    (route,) = _posts(world.app, [(h, body)])
    assert world.app.state.scorer.calls
    assert (fast.status_code, route.status_code) == (200, 200)
    assert fast.json() == route.json()
    assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert [r["unit_id"] for r in fast.json()] == list(dict.fromkeys(body["unit_ids"]))


def test_encoding_is_the_response_models(world):
    from sanling.serving.store import get_score

    with session_scope(world.engine) as s:
        row = get_score(s, OWN_UNIT)
    for key in ("tier_zh", "late_records", "tier_set", "protective"):
        row.pop(key, None)
    row["not_in_the_model"] = 1
    encoded = httpx.Response(200, content=encode_score(dict(row))).json()
    assert encoded["tier_zh"] == "橙" and "not_in_the_model" not in encoded
    # the model's defaults written out, as the response model writes them
    assert (encoded["late_records"], encoded["tier_set"], encoded["protective"]) == (None, None, [])


def test_refusals_go_to_the_route(world, cached):
    service, township = world.headers("service"), world.headers("township")
    answers = _posts(
        world.app,
        [
            ({}, {"unit_ids": [OWN_UNIT]}),
            (bearer("wrong"), {"unit_ids": [OWN_UNIT]}),
            (world.headers("revoked"), {"unit_ids": [OWN_UNIT]}),
            ({"Authorization": f"Basic {world.tokens['service']}"}, {"unit_ids": [OWN_UNIT]}),
            (service, {"unit_ids": ["nope", OWN_UNIT]}),
            (service, {"unit_ids": []}),
            (service, {"ids": [OWN_UNIT]}),
            (service, {"unit_ids": [OWN_UNIT], "as_of": "2022-13"}),
            (service, b'{"unit_ids": ["140100001001"'),
            (township, {"unit_ids": [OTHER_UNIT]}),
            (township, {"unit_ids": [OWN_UNIT, OTHER_UNIT]}),
            (township, {"unit_ids": [OWN_UNIT]}),
            ({**service, "Content-Type": "text/plain"}, b'{"unit_ids": ["140100001001"]}'),
        ],
    )
    assert [a.status_code for a in answers] == [
        401,
        401,
        401,
        401,
        404,
        422,
        422,
        422,
        422,
        404,
        404,
        200,
        422,
    ]
    assert answers[0].headers["www-authenticate"] == "Bearer"
    assert "'nope'" in answers[4].json()["detail"]
    assert cached.calls == []  # nothing was computed: the township's own unit came from the cache


def test_a_month_not_computed_yet_is_computed_by_the_route(world, cached):
    cached.warm = False
    (r,) = _posts(world.app, [(world.headers("analyst"), {"unit_ids": [OWN_UNIT]})])
    assert r.status_code == 200 and cached.calls == [[OWN_UNIT]]


def test_revocation_and_expiry_take_effect_on_the_next_request(world, cached):
    with session_scope(world.engine) as s:
        raw = create_token(s, "service", name="fast")
        token_id = s.query(Token).order_by(Token.id.desc()).first().id
        expiring = create_token(s, "analyst", name="expiring", expires_days=1)
        expiring_id = s.query(Token).order_by(Token.id.desc()).first().id
    body = {"unit_ids": [OWN_UNIT]}
    assert [r.status_code for r in _posts(world.app, [(bearer(raw), body)] * 3)] == [200] * 3
    with session_scope(world.engine) as s:
        assert revoke_token(s, token_id)
    assert _posts(world.app, [(bearer(raw), body)])[0].status_code == 401
    assert _posts(world.app, [(bearer(expiring), body)])[0].status_code == 200
    with session_scope(world.engine) as s:
        s.get(Token, expiring_id).expires_at = utcnow()
    assert _posts(world.app, [(bearer(expiring), body)])[0].status_code == 401
    assert cached.calls == []


def test_the_size_cap_metrics_and_access_log_apply(world, cached, caplog):
    h = world.headers("service")
    cap = world.app.state.settings.max_request_bytes
    big = b'{"unit_ids": ["' + b"x" * cap + b'"]}'
    with caplog.at_level(logging.INFO, logger="sanling.access"):
        ok, too_big = _posts(world.app, [(h, {"unit_ids": [OWN_UNIT]}), (h, big)])
    assert (ok.status_code, too_big.status_code) == (200, 413)
    assert ok.headers["x-request-id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "sanling.access"]
    assert '"route": "/v1/score", "status": 200' in lines[0] and '"role": "service"' in lines[0]
    text = asyncio.run(_get(world.app, "/metrics", h))
    assert 'sanling_http_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text


def test_the_route_stays_in_the_openapi_document(client):
    op = client.get("/openapi.json").json()["paths"]["/v1/score"]["post"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"].endswith(
        "ExplainedScore"
    )
    assert "requestBody" in op


async def _get(app, path: str, headers: dict) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return (await c.get(path, headers=headers)).text


def test_a_token_whose_use_is_due_to_be_noted_is_noted(world, cached):
    with session_scope(world.engine) as s:
        raw = create_token(s, "service", name="fresh")
        token_id = s.query(Token).order_by(Token.id.desc()).first().id
    (r,) = _posts(world.app, [(bearer(raw), {"unit_ids": [OWN_UNIT]})])
    assert r.status_code == 200 and cached.calls == []
    with session_scope(world.engine) as s:
        assert s.get(Token, token_id).last_used_at is not None
