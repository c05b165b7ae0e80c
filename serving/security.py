"""Token hashing and the signed session cookie of the township pages.

API tokens are random (``secrets.token_urlsafe(32)``) and only their SHA-256 is stored, so a copy of
the database does not hand out access. The pages keep a random *session id* (not the token) in a
cookie signed with :mod:`itsdangerous`; the store's ``sessions`` table (:mod:`serving.store.sessions`)
says which token it belongs to, so logout and revoking the token end it on the server."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "sanling_session"
SESSION_MAX_AGE = 12 * 3600  # one working day; a clerk signs in again the next morning
_SALT = "sanling-session"


def new_token() -> str:
    """A fresh raw API token (43 URL-safe characters, 256 bits of randomness)."""
    return secrets.token_urlsafe(32)


def hash_token(raw_token: str) -> str:
    """The stored form of a token: its SHA-256 as 64 hex digits."""
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def load_secret_key(home: Path, configured: str | None = None) -> str:
    """The session-signing key: ``configured`` (``SANLING_SECRET_KEY``) when set, otherwise a random key
    generated once and kept in ``<home>/secret_key`` (mode 0600) so sessions survive restarts."""
    if configured:
        return configured
    path = Path(home) / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting together must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key)
    return key


def _serializer(secret_key: str | None) -> URLSafeTimedSerializer:
    if secret_key is None:
        from sanling.core.config import Settings

        settings = Settings()
        secret_key = load_secret_key(settings.home, settings.secret_key)
    return URLSafeTimedSerializer(secret_key, salt=_SALT)


def sign_session(session_id: str, secret_key: str | None = None) -> str:
    """The cookie value for a session id (from :func:`serving.store.sessions.open_session`). Inside a
    request pass ``request.app.state.secret_key``; ``None`` reads the key from the environment."""
    return _serializer(secret_key).dumps(str(session_id))


def read_session(
    cookie: str | None, secret_key: str | None = None, max_age: int = SESSION_MAX_AGE
) -> str | None:
    """The session id inside a cookie, or ``None`` if it is missing, forged, malformed or expired."""
    if not cookie:
        return None
    try:
        value = _serializer(secret_key).loads(cookie, max_age=max_age)
    except (BadSignature, UnicodeError):  # SignatureExpired is a subclass of BadSignature
        return None
    return value if isinstance(value, str) and value else None
