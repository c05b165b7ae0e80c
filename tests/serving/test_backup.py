"""``sanling backup`` and the documented restore, as a round trip on SQLite and PostgreSQL: what was
committed before the backup comes back, what was written after it does not (issue 13)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
from api_world import UNITS
from sqlalchemy import select

from sanling.serving.store import (
    create_followup,
    create_token,
    init_db,
    principal_for,
    session_scope,
    upsert_units,
)
from sanling.serving.store.backup import backup
from sanling.serving.store.tables import Followup


def _seed(url: str) -> tuple[int, str]:
    engine = init_db(url)
    with session_scope(engine) as s:
        upsert_units(s, UNITS)
        fid = create_followup(
            s, "140100001001", actor="t", screened_on="2022-12-01", person="张三", status="排查中"
        )["id"]
        raw = create_token(s, "analyst", name="备份前")
    engine.dispose()
    return fid, raw


def _after_backup(url: str) -> int:
    engine = init_db(url)
    with session_scope(engine) as s:
        fid = create_followup(
            s, "140100001002", actor="t", screened_on="2022-12-02", person="李四", status="排查中"
        )["id"]
    engine.dispose()
    return fid


def _check(url: str, kept: int, lost: int, raw: str) -> None:
    engine = init_db(url)
    with session_scope(engine) as s:
        ids = set(s.scalars(select(Followup.id)))
        assert kept in ids and lost not in ids
        assert principal_for(s, raw) is not None
    engine.dispose()


def test_sqlite_backup_and_restore_round_trip(tmp_path):
    store = tmp_path / "home" / "sanling.db"
    url = f"sqlite:///{store}"
    kept, raw = _seed(url)
    out = backup(url, tmp_path / "backups" / "sanling.db")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    lost = _after_backup(url)
    # The documented restore: stop the server, copy the file over the store, drop the WAL files.
    shutil.copyfile(out, store)
    for suffix in ("-wal", "-shm"):
        (tmp_path / "home" / f"sanling.db{suffix}").unlink(missing_ok=True)
    _check(url, kept, lost, raw)


@pytest.mark.postgres
def test_postgresql_backup_and_restore_round_trip(pg_url, tmp_path):
    import psycopg

    name = pg_url.rsplit("/", 1)[1] + "_bk"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        kept, raw = _seed(url)
        out = backup(url, tmp_path / "sanling.dump")
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        lost = _after_backup(url)
        done = subprocess.run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "-d",
                url.replace("+psycopg", ""),
                str(out),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        _check(url, kept, lost, raw)
    finally:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_errors_are_one_line_without_the_password(tmp_path):
    from sanling.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no SQLite store"):
        backup(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "out.db")
    with pytest.raises(ConfigError) as e:
        backup("postgresql://sanling:s3cr3t-pw@127.0.0.1:1/none", tmp_path / "out.dump")
    assert "s3cr3t-pw" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out.dump").exists()
