"""Fixtures for the store and API tests: a store on SQLite *and* PostgreSQL, and a tiny seeded world
(two townships, two scored months, tokens for every role) behind the real app — built by
tests/support/api_world.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_world import World, build_world, seed_scores
from sqlalchemy import Engine, text

from sanling.serving.store.db import init_db
from sanling.serving.store.tables import Base

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of its own on the PostgreSQL server at 127.0.0.1:5432, dropped at the end.
    Never skipped: an unreachable server fails the tests, with the reason."""
    import psycopg

    name = f"sanling_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True, connect_timeout=5
        )
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL at 127.0.0.1:5432 is unreachable (user postgres): {e}".strip(), pytrace=False
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> str:
    """A store URL with the current schema and no rows, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("pg_url")
    engine = init_db(url)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = init_db(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The seeded app on a SQLite file, with a store-backed scorer."""
    w = build_world(tmp_path)
    yield w
    w.engine.dispose()
    w.app.state.engine.dispose()


@pytest.fixture
def make_world():
    """``make_world(home, db_url=None)``: the seeded app on any store (an empty one: truncate first)."""

    def make(home: Path, db_url: str | None = None) -> World:
        if db_url is not None and not db_url.startswith("sqlite"):
            eng = init_db(db_url)
            with eng.begin() as conn:
                names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            eng.dispose()
        return build_world(home, db_url)

    return make


@pytest.fixture
def seed():
    """Seeds a session with the tiny world's units and two scored months."""
    return seed_scores


@pytest.fixture
def client(world: World):
    from fastapi.testclient import TestClient

    with TestClient(world.app, raise_server_exceptions=False) as c:
        yield c
