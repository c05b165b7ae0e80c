"""A burst of requests larger than the database pool must not deadlock the server (issue 13, found
by the load benchmark): a request's session is used from several pool threads in turn, so with more
requests than connections every thread could end up waiting for a connection held by a request that
waits for a thread — until the pool's time-out turned them all into 500s."""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
import httpx
from api_world import build_world
from sqlalchemy import create_engine

from sanling.serving.store.db import read_session_factory, session_factory


def test_a_burst_larger_than_the_pool_is_served_without_errors(tmp_path):
    world = build_world(tmp_path)
    app = world.app
    small = create_engine(world.engine.url, pool_size=2, max_overflow=0, pool_timeout=3)
    app.state.engine, app.state.sessionmaker = small, session_factory(small)
    app.state.read_sessionmaker = read_session_factory(small)

    async def burst() -> tuple[list[int], float]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 4  # fewer threads than requests
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=world.headers("analyst")
        ) as c:
            t0 = time.perf_counter()
            answers = await asyncio.gather(*(c.get("/v1/risk-list", params={"limit": 5}) for _ in range(30)))
            return [r.status_code for r in answers], time.perf_counter() - t0

    statuses, took = asyncio.run(burst())
    small.dispose()
    assert statuses == [200] * 30, (statuses, took)
