"""API tokens: created by ``sanling token create``, stored as SHA-256 hashes, looked up by hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from sanling.core.errors import ConfigError
from sanling.serving.security import hash_token, new_token
from sanling.serving.store.tables import ROLES, Token, utcnow

# Writing last_used_at on every request would turn each read into a write; a few minutes' precision
# is enough to see which tokens are in use.
_TOUCH_EVERY = timedelta(minutes=5)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, role, township scope (township role only) and holder's name."""

    token_id: int
    role: str
    township: str | None = None
    name: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this caller, e.g. ``张三 (township #4)``."""
        return f"{self.name or self.role} ({self.role} #{self.token_id})"

    @property
    def scope(self) -> str | None:
        """The township every read is restricted to, or ``None`` for analyst and service tokens."""
        return self.township if self.role == "township" else None


def create_token(session: Session, role: str, township: str | None = None, name: str | None = None) -> str:
    """Create a token for ``role`` (analyst, service, township — the last needs ``township``) and return
    the raw token; only its hash is stored, so it cannot be shown again."""
    if role not in ROLES:
        raise ConfigError(f"token role {role!r} is not one of {', '.join(ROLES)}")
    township = (township or "").strip() or None
    if role == "township" and township is None:
        raise ConfigError("a township token needs --township NAME (the township it may read)")
    if role != "township" and township is not None:
        raise ConfigError(f"--township applies only to township tokens, not to role {role}")
    raw = new_token()
    session.add(
        Token(token_hash=hash_token(raw), role=role, township=township, name=name, created_at=utcnow())
    )
    session.flush()
    return raw


# Built once: constructing a statement costs more than running it, and this runs on every request.
_T = Token.__table__
_BY_HASH = select(_T.c.id, _T.c.role, _T.c.township, _T.c.name, _T.c.last_used_at).where(
    _T.c.token_hash == bindparam("h"), _T.c.revoked_at.is_(None)
)
_BY_ID = select(_T.c.id, _T.c.role, _T.c.township, _T.c.name, _T.c.last_used_at).where(
    _T.c.id == bindparam("i"), _T.c.revoked_at.is_(None)
)
_TOUCH = update(_T).where(_T.c.id == bindparam("i")).values(last_used_at=bindparam("now"))


def _principal(session: Session, row) -> Principal | None:
    if row is None:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite hands datetimes back naive (they are UTC)
        last = last.replace(tzinfo=now.tzinfo)
    if last is None or now - last > _TOUCH_EVERY:
        session.execute(_TOUCH, {"i": row.id, "now": now})
    return Principal(token_id=row.id, role=row.role, township=row.township, name=row.name)


def principal_for(session: Session, raw_token: str) -> Principal | None:
    """The caller a raw token stands for, or ``None`` if it is unknown or revoked."""
    if not raw_token:
        return None
    return _principal(session, session.execute(_BY_HASH, {"h": hash_token(raw_token)}).first())


def principal_for_id(session: Session, token_id: int) -> Principal | None:
    """The caller behind a token id (from a signed session cookie), or ``None`` if unknown or revoked."""
    return _principal(session, session.execute(_BY_ID, {"i": int(token_id)}).first())


def revoke_token(session: Session, token_id: int) -> bool:
    """Revoke a token (and every session built on it); returns whether it existed and was active."""
    token = session.get(Token, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    session.flush()
    return True


def list_tokens(session: Session) -> list[dict]:
    """Every token's metadata (never the token itself)."""
    return [
        {
            "id": t.id,
            "role": t.role,
            "township": t.township,
            "name": t.name,
            "created_at": t.created_at,
            "revoked_at": t.revoked_at,
            "last_used_at": t.last_used_at,
        }
        for t in session.scalars(select(Token).order_by(Token.id))
    ]
