"""What a read request costs (issue 13, load): the unit and list routes check the token and read the
store in one thread-pool call, with no cache between the token and the store — revoking a token or
letting it expire takes effect on the very next request — and the store's JSON columns are read with
orjson, falling back to the standard module for what only it reads."""

from __future__ import annotations

import asyncio
import json
import math

import anyio.to_thread
import httpx
import pytest
from api_world import OTHER, bearer

from sanling.serving.store import create_token, revoke_token, risk_list, session_scope
from sanling.serving.store.db import json_loads
from sanling.serving.store.tables import Token, utcnow

READS = ["/v1/units/140100001001/risk", "/v1/risk-list"]


def _thread_calls(app, path: str, headers: dict) -> tuple[int, int]:
    """(status, number of thread-pool calls) of one request."""
    calls = 0
    real = anyio.to_thread.run_sync

    async def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)

    async def go() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return (await c.get(path, headers=headers)).status_code

    anyio.to_thread.run_sync = counting
    try:
        status = asyncio.run(go())
    finally:
        anyio.to_thread.run_sync = real
    return status, calls


@pytest.mark.parametrize("path", READS)
def test_a_read_takes_one_thread_pool_call(world, path):
    assert _thread_calls(world.app, path, world.headers("analyst")) == (200, 1)
    # Refused callers cost no more: a wrong token is found out in that same call, a missing one at once.
    assert _thread_calls(world.app, path, bearer("wrong")) == (401, 1)
    assert _thread_calls(world.app, path, {}) == (401, 0)
    assert _thread_calls(world.app, "/healthz", {}) == (200, 0)


@pytest.mark.parametrize("path", READS)
def test_revocation_and_expiry_take_effect_on_the_next_request(world, path):
    with session_scope(world.engine) as s:
        raw = create_token(s, "service", name="load")
        token_id = s.query(Token).order_by(Token.id.desc()).first().id
    transport = httpx.ASGITransport(app=world.app)

    async def go() -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer(raw)) as c:
            statuses = [(await c.get(path)).status_code for _ in range(3)]
            with session_scope(world.engine) as s:
                assert revoke_token(s, token_id)
            statuses.append((await c.get(path)).status_code)
            return statuses

    assert asyncio.run(go()) == [200, 200, 200, 401]

    with session_scope(world.engine) as s:
        raw = create_token(s, "service", name="expiring", expires_days=1)
        token = s.query(Token).order_by(Token.id.desc()).first()

    async def expire() -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=bearer(raw)) as c:
            first = (await c.get(path)).status_code
            with session_scope(world.engine) as s:
                s.get(Token, token.id).expires_at = utcnow()
            return [first, (await c.get(path)).status_code]

    assert asyncio.run(expire()) == [200, 401]


def test_township_scope_holds_on_the_one_call_path(world):
    transport = httpx.ASGITransport(app=world.app)

    async def go() -> list[int]:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=world.headers("township")
        ) as c:
            return [
                (await c.get("/v1/units/140100002001/risk")).status_code,  # the other township's unit
                (await c.get("/v1/risk-list", params={"township": OTHER})).status_code,
                (await c.get("/v1/units/140100001001/risk")).status_code,
            ]

    assert asyncio.run(go()) == [404, 404, 200]


def test_lists_join_the_previous_run_of_the_month_asked_for(world):
    with session_scope(world.engine) as s:
        latest = risk_list(s, limit=None)
        november = risk_list(s, as_of="2022-11", limit=None)
        assert {r["as_of"] for r in latest} == {"2022-12"}
        assert {r["previous_tier"] for r in latest} != {None}  # November's tiers
        assert {r["as_of"] for r in november} == {"2022-11"}
        assert {r["change"] for r in november} == {"new"}  # no month before November
        assert risk_list(s, as_of="2020-01") == []


def test_json_columns_read_standard_json_and_what_only_the_standard_module_reads():
    doc = [{"feature": "未化解矛盾纠纷", "value": 3, "contribution": 0.41}]
    assert json_loads(json.dumps(doc)) == doc  # ensure_ascii escapes, as SQLAlchemy writes them
    assert json_loads(json.dumps(doc, ensure_ascii=False).encode()) == doc
    assert math.isnan(json_loads(json.dumps({"x": float("nan")}))["x"])
    with pytest.raises(ValueError):
        json_loads("{not json")


@pytest.mark.postgres
def test_an_idle_connection_that_died_is_replaced_before_use(pg_url, monkeypatch):
    """No ping per checkout: a connection is checked only after sitting idle, and a dead one is
    replaced instead of failing the request."""
    import psycopg
    from sqlalchemy import text

    from sanling.serving.store import db

    engine = db.init_db(pg_url)
    try:
        with engine.connect() as c:
            pid = c.execute(text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # as if it had sat idle
        with engine.connect() as c:
            assert c.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_read_sessions_on_postgresql_open_no_transaction(pg_url):
    """No BEGIN / COMMIT round trips around a read request's SELECTs."""
    import psycopg
    from sqlalchemy import text

    from sanling.serving.store import db

    engine = db.init_db(pg_url)
    try:
        status = {}
        for name, factory in [("read", db.read_session_factory), ("write", db.session_factory)]:
            with factory(engine)() as s:
                s.execute(text("SELECT 1"))
                status[name] = s.connection().connection.dbapi_connection.info.transaction_status
        assert status == {
            "read": psycopg.pq.TransactionStatus.IDLE,
            "write": psycopg.pq.TransactionStatus.INTRANS,
        }
    finally:
        engine.dispose()
