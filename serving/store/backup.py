"""Backups of the store (``sanling backup OUT``), consistent while the server runs.

SQLite: the online backup API copies the database page by page inside one read transaction, so the
copy is a committed state even while follow-ups are being written. PostgreSQL: ``pg_dump
--format=custom``, with the connection passed in ``PG*`` environment variables (a password on the
command line would show in ``ps``). The file is written beside ``OUT`` and moved into place, mode
0600 (it holds token hashes and staff names). Restoring is described in docs/operations.md.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from sanling.core.errors import ConfigError
from sanling.serving.store.db import normalise_url, redact_url


def _private_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)


def backup(url: str, out: Path) -> Path:
    """Write a backup of the store at ``url`` to ``out`` (a file); returns ``out``.

    Raises :class:`ConfigError` (one line, the password never shown) when the store cannot be read
    or ``pg_dump`` fails or is missing.
    """
    parsed = make_url(normalise_url(url))
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.unlink(missing_ok=True)
    _private_file(tmp)
    try:
        if parsed.get_backend_name() == "sqlite":
            _sqlite(parsed.database, tmp)
        elif parsed.get_backend_name() == "postgresql":
            _postgres(parsed, tmp)
        else:
            raise ConfigError(
                f"backup: {parsed.get_backend_name()} stores are not supported (SQLite, PostgreSQL)"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    os.chmod(out, 0o600)
    return out


def _sqlite(database: str | None, tmp: Path) -> None:
    if not database or database == ":memory:" or not Path(database).exists():
        raise ConfigError(f"backup: no SQLite store at {database or ':memory:'}")
    src = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _postgres(parsed, tmp: Path) -> None:
    exe = shutil.which("pg_dump")
    if exe is None:
        raise ConfigError("backup: pg_dump is not installed (Debian: apt-get install postgresql-client)")
    env = {
        **os.environ,
        "PGHOST": parsed.host or "",
        "PGPORT": str(parsed.port or 5432),
        "PGUSER": parsed.username or "",
        "PGDATABASE": parsed.database or "",
    }
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    done = subprocess.run(
        [exe, "--format=custom", "--no-owner", "--file", str(tmp)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise ConfigError(f"backup of {redact_url(str(parsed))}: pg_dump: {reason}")
