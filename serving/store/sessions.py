"""Page sessions: a sign-in at ``/login`` opens one, ``POST /logout`` ends it — on the server, so a
copied cookie is worthless afterwards. The cookie carries a random session id (signed); only its
SHA-256 is stored. A session is bound to the token's *hash*, not only its id: after a store reset
a new token that happens to get the same id does not inherit old cookies."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from sanling.serving.security import hash_token
from sanling.serving.store.tables import PageSession, Token, utcnow
from sanling.serving.store.tokens import PRINCIPAL_COLUMNS, Principal, aware, principal_from_row

_T, _S = Token.__table__, PageSession.__table__
_BY_SESSION = (
    select(*PRINCIPAL_COLUMNS, _S.c.expires_at.label("session_expires_at"))
    .select_from(_S)
    .join(_T, (_T.c.id == _S.c.token_id) & (_T.c.token_hash == _S.c.token_hash))
    .where(_S.c.id == bindparam("s"), _S.c.ended_at.is_(None), _T.c.revoked_at.is_(None))
)
_END = update(_S).where(_S.c.id == bindparam("s"), _S.c.ended_at.is_(None)).values(ended_at=bindparam("now"))


def open_session(session: Session, token_id: int, max_age_seconds: int) -> str:
    """Start a session for an active token; returns the raw session id for the cookie."""
    token_hash = session.scalar(select(Token.token_hash).where(Token.id == token_id))
    if token_hash is None:
        raise ValueError(f"no token {token_id}")
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    # Sign-ins are rare: the moment to forget sessions that ended or expired more than a day ago.
    session.execute(delete(PageSession).where(PageSession.expires_at < now - timedelta(days=1)))
    session.execute(delete(PageSession).where(PageSession.ended_at < now - timedelta(days=1)))
    session.add(
        PageSession(
            id=hash_token(raw),
            token_id=token_id,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + timedelta(seconds=max_age_seconds),
        )
    )
    session.flush()
    return raw


def principal_for_session(session: Session, raw_session_id: str) -> Principal | None:
    """The caller behind a session id, or ``None`` when the session is unknown, ended or expired, or
    its token is revoked, expired or no longer the token it was opened with."""
    if not raw_session_id:
        return None
    row = session.execute(_BY_SESSION, {"s": hash_token(raw_session_id)}).first()
    if row is None or aware(row.session_expires_at) <= utcnow():
        return None
    return principal_from_row(session, row)


def end_session(session: Session, raw_session_id: str) -> bool:
    """End a session (logout); returns whether it was open."""
    if not raw_session_id:
        return False
    return session.execute(_END, {"s": hash_token(raw_session_id), "now": utcnow()}).rowcount > 0
