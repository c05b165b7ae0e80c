"""The administration jobs behind ``sanling token …`` and ``sanling backup``: API tokens with a
lifecycle (create with an expiry, list, revoke) and a consistent backup of the store. Each opens the
store once; restoring a backup is described in docs/operations.md."""

from __future__ import annotations

from pathlib import Path

from sanling.core.config import Settings
from sanling.core.errors import SanlingError


def _store(settings: Settings):
    from sanling.serving.store import db

    return db, db.init_db(settings.db_url)


def token_create(
    role: str,
    *,
    township: str | None = None,
    county: str | None = None,
    name: str | None = None,
    expires_days: int | None = None,
    settings: Settings | None = None,
) -> str:
    """Create a token and return it (printed once; only its hash is stored). A township token needs
    ``township``, and ``county`` when that name exists in several counties of the store."""
    from sanling.serving.store.tokens import create_token

    db, engine = _store(settings or Settings())
    try:
        with db.session_scope(engine) as session:
            return create_token(session, role, township, name, county=county, expires_days=expires_days)
    finally:
        engine.dispose()


def token_list(settings: Settings | None = None) -> list[dict]:
    """Every token's id, role, scope, holder, created / last used / expires and status — never the
    token itself."""
    from sanling.serving.store.tokens import list_tokens

    db, engine = _store(settings or Settings())
    try:
        with db.session_scope(engine) as session:
            return list_tokens(session)
    finally:
        engine.dispose()


def token_revoke(token_id: int, settings: Settings | None = None) -> None:
    """Revoke a token at once (every page session signed in with it ends too)."""
    from sanling.serving.store.tokens import revoke_token

    db, engine = _store(settings or Settings())
    try:
        with db.session_scope(engine) as session:
            if not revoke_token(session, token_id):
                raise SanlingError(f"no active token {token_id} (see `sanling token list`)")
    finally:
        engine.dispose()


def format_tokens(tokens: list[dict]) -> str:
    """The ``sanling token list`` table: one line per token."""

    def day(t) -> str:
        return t.strftime("%Y-%m-%d %H:%M") if t is not None else "—"

    header = ("id", "role", "scope", "name", "created", "last used", "expires", "status")
    rows = [
        (
            str(t["id"]),
            t["role"],
            f"{t['county'] or '?'}/{t['township']}" if t["role"] == "township" else "all",
            t["name"] or "—",
            day(t["created_at"]),
            day(t["last_used_at"]),
            day(t["expires_at"]) if t["expires_at"] else "never",
            t["status"],
        )
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


def backup(out: Path, settings: Settings | None = None) -> Path:
    """Write a consistent backup of the store to the file ``out`` (mode 0600); returns its path."""
    from sanling.serving.store.backup import backup as backup_store

    settings = settings or Settings()
    return backup_store(settings.db_url, Path(out))
