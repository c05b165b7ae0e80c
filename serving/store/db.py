"""Engines, migrations and sessions. SQLite by default (a file under ``Settings.home``), PostgreSQL via
``SANLING_DATABASE_URL``. The schema is created and upgraded only through Alembic (``init_db``), run
programmatically from the migrations shipped inside this package — no ``alembic.ini`` needed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from sanling.core.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# Options of the store's bulk DELETEs: no object of those rows lives in the session, so SQLAlchemy must
# not fetch the deleted rows' keys to synchronise it. By default it would, with RETURNING (SQLite,
# PostgreSQL): for a national registry's observed tiers, 25 M keys held on the client.
BULK = {"synchronize_session": False}
MMAP_BYTES = 1 << 30  # an upper bound: only the pages read are mapped in, shared with the page cache


def normalise_url(url: str) -> str:
    """Pin PostgreSQL URLs to the installed psycopg 3 driver (a bare ``postgresql://`` would ask for psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_PASSWORD = re.compile(r"(?P<head>://[^/@:]*:)[^@/]*@")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` — for every message that names a database, even
    a URL too malformed to parse."""
    return _PASSWORD.sub(lambda m: m.group("head") + "***@", str(url))


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite file with mode 0600 before SQLite does (it would use the umask, often 0644):
    the store holds token hashes, staff names and follow-up texts. SQLite gives its -wal and -shm
    files the database file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def json_loads(text: str | bytes) -> Any:
    """A JSON column's value. orjson reads a township list's reasons several times faster than the
    standard module (JSON decoding was a sixth of the list's CPU); a document only the standard
    module reads (``NaN``, which ``json.dumps`` writes) falls back to it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with a pool sized for the API's thread pool.

    SQLite files get WAL (readers do not wait for the nightly ``score`` writer), a busy timeout and
    foreign keys on, so both backends enforce the same constraints.
    """
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"database URL {redact_url(url)!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        if not memory:
            _private_sqlite_file(Path(parsed.database))
        engine = create_engine(
            url,
            json_deserializer=json_loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            **({"poolclass": StaticPool} if memory else {"pool_size": 8, "max_overflow": 16}),
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                # Read pages through a memory map instead of one read() call each: a township list
                # touches a few dozen scattered score rows (measured 3.0 → 2.65 ms per list of 50,
                # 0.19 → 0.13 ms per unit on a 50,000-unit store).
                cur.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    try:
        engine = create_engine(
            url, json_deserializer=json_loads, pool_size=10, max_overflow=20, pool_recycle=1800
        )
    except (NoSuchModuleError, ImportError) as e:
        raise ConfigError(
            f"database URL {parsed.render_as_string(hide_password=True)}: driver not available ({e})"
        ) from None
    _ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it has been idle for ``IDLE_PING_SECONDS``.

    ``pool_pre_ping`` pings on every checkout: one more round trip per request, a tenth of a unit
    read's CPU on PostgreSQL. A connection that carried a request a moment ago is alive; one that
    sat idle may have been dropped (a server restart, a firewall's idle time-out) and is pinged,
    and replaced when dead (the pool retries with a new one). A connection that breaks while in use
    is found out by SQLAlchemy, which then replaces every older connection of the pool."""

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            raise DisconnectionError(f"a pooled connection is dead: {type(e).__name__}") from e


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for the read routes. On PostgreSQL they run in autocommit: no ``BEGIN`` and
    ``COMMIT`` round trips around a request's two or three SELECTs (each statement sees committed
    data, as SQLite's reads do — a scoring run's scores are committed with the run). SQLite's
    driver opens no transaction for reads in the first place."""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return session_factory(engine)


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` on ``engine``."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Run the Alembic migrations down to ``revision`` (``base`` = an empty schema)."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def init_db(url: str | Engine) -> Engine:
    """Create or upgrade the schema (Alembic ``upgrade head``) and return the engine.

    Raises :class:`ConfigError` with one line when the database cannot be reached.
    """
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        upgrade(engine)
    except OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else "unreachable"
        raise ConfigError(
            f"database {engine.url.render_as_string(hide_password=True)} is not usable: {reason}"
        ) from None
    return engine


def refresh_statistics(session: Session) -> None:
    """Update the query planner's statistics after a bulk write (``sanling score``). Without them
    SQLite walks a township list through the risk-ordered index of all scores — 1.1 s for one
    township of a 50,000-unit province — instead of the township's few dozen units (2–6 ms)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("ANALYZE"))
    else:
        session.execute(text("ANALYZE units, scores, score_runs"))


_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(
    session: Session, table, columns: tuple[str, ...], rows: list[tuple], chunk: int = 50_000
) -> int:
    """Insert ``rows`` (tuples in ``columns``' order; text and integers only: no type processing)
    into ``table`` through the driver's own ``executemany``. SQLAlchemy's per-row parameter
    processing costs more than the insert itself — 2.72 s against 0.58 s for 480,000 rows of
    ``observed_tiers`` on SQLite — and a national ``score`` writes 25 M of them. Returns len(rows)."""
    if not rows:
        return 0
    conn = session.connection()
    mark = _MARKS[conn.dialect.paramstyle]  # sqlite3: qmark; psycopg: pyformat, which takes %s too
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    for i in range(0, len(rows), chunk):
        conn.exec_driver_sql(sql, rows[i : i + chunk])
    return len(rows)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a request stay usable after the dependency commits.
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
