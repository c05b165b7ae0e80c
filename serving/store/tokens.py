"""API tokens: created by ``sanling token create``, stored as SHA-256 hashes, looked up by hash.

A township token is scoped to one township, identified by (county, township) — names such as 城关镇
repeat across counties. A token may expire (``expires_at``); revoked and expired tokens, and
township tokens without a county (from before the county was recorded, when the name was
ambiguous), identify nobody."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from sanling.core.errors import ConfigError
from sanling.serving.security import hash_token, new_token
from sanling.serving.store.scope import Scope
from sanling.serving.store.tables import ROLES, Token, Unit, utcnow

# Writing last_used_at on every request would turn each read into a write; a few minutes' precision
# is enough to see which tokens are in use. The process remembers when it last claimed the write for
# a token, so a burst of requests with a token whose stored time is old writes once, not once per
# request: on SQLite the concurrent writers queued on the write lock and exhausted the connection
# pool (measured: 30 s time-outs at 200 req/s on a fresh token).
_TOUCH_EVERY = timedelta(minutes=5)
_claimed: dict[tuple[int, int], datetime] = {}  # (id of the engine, token id) → claimed at
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EXPIRES_DAYS = 3650


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, role, township scope (township role only) and holder's name."""

    token_id: int
    role: str
    township: str | None = None
    name: str | None = None
    county: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this caller, e.g. ``张三 (township #4)``."""
        return f"{self.name or self.role} ({self.role} #{self.token_id})"

    @property
    def scope(self) -> Scope | None:
        """The township every read is restricted to, or ``None`` for analyst and service tokens."""
        if self.role != "township":
            return None
        return Scope(self.county or "", self.township or "")


def aware(t: datetime | None) -> datetime | None:
    """``t`` as an aware UTC datetime (SQLite hands datetimes back naive; they are UTC)."""
    if t is not None and t.tzinfo is None:
        return t.replace(tzinfo=utcnow().tzinfo)
    return t


def township_counties(session: Session, township: str) -> list[str]:
    """The counties that have a township of this name in the store, sorted."""
    q = select(Unit.county).where(Unit.township == township).distinct().order_by(Unit.county)
    return list(session.scalars(q))


def _resolve_county(session: Session, township: str, county: str | None) -> str:
    counties = township_counties(session, township)
    if county is None:
        if len(counties) == 1:
            return counties[0]
        if not counties:
            raise ConfigError(
                f"township {township!r} is not in the store (run `sanling score` first), "
                "or name its county with --county"
            )
        raise ConfigError(
            f"township {township!r} exists in {len(counties)} counties "
            f"({', '.join(counties)}): name one with --county"
        )
    if counties and county not in counties:
        raise ConfigError(
            f"township {township!r} is not in county {county!r}; it is in {', '.join(counties)}"
        )
    if not counties and session.scalar(select(func.count()).select_from(Unit)):
        raise ConfigError(f"township {township!r} of county {county!r} is not in the store")
    return county


def create_token(
    session: Session,
    role: str,
    township: str | None = None,
    name: str | None = None,
    *,
    county: str | None = None,
    expires_days: int | None = None,
) -> str:
    """Create a token for ``role`` (analyst, service, township — the last needs ``township``, and
    ``county`` when the name exists in several counties) valid for ``expires_days`` days (``None``:
    until revoked); returns the raw token — only its hash is stored, so it cannot be shown again."""
    if role not in ROLES:
        raise ConfigError(f"token role {role!r} is not one of {', '.join(ROLES)}")
    township = (township or "").strip() or None
    county = (county or "").strip() or None
    if role == "township" and township is None:
        raise ConfigError("a township token needs --township NAME (the township it may read)")
    if role != "township" and (township is not None or county is not None):
        raise ConfigError(f"--township and --county apply only to township tokens, not to role {role}")
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise ConfigError(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS}, not {expires_days}")
    if role == "township":
        county = _resolve_county(session, township, county)
    now = utcnow()
    raw = new_token()
    session.add(
        Token(
            token_hash=hash_token(raw),
            role=role,
            township=township,
            county=county,
            name=name,
            created_at=now,
            expires_at=None if expires_days is None else now + timedelta(days=expires_days),
        )
    )
    session.flush()
    return raw


# Built once: constructing a statement costs more than running it, and this runs on every request.
_T = Token.__table__
PRINCIPAL_COLUMNS = (
    _T.c.id,
    _T.c.role,
    _T.c.township,
    _T.c.county,
    _T.c.name,
    _T.c.last_used_at,
    _T.c.expires_at,
)
TOKEN_BY_HASH = select(*PRINCIPAL_COLUMNS).where(
    _T.c.token_hash == bindparam("h"), _T.c.revoked_at.is_(None)
)  # an active token's PRINCIPAL_COLUMNS by its hash
_TOUCH = update(_T).where(_T.c.id == bindparam("i")).values(last_used_at=bindparam("now"))


def principal_of(row) -> Principal | None:
    """The caller of a token row (:data:`PRINCIPAL_COLUMNS`), or ``None`` when it has expired or is a
    township token without a full (county, township) scope. Reads nothing, writes nothing."""
    if row is None:
        return None
    expires = aware(row.expires_at)
    if expires is not None and expires <= utcnow():
        return None
    if row.role == "township" and not (row.township and row.county):
        return None  # fail closed: a bare name could match townships of other counties
    return Principal(token_id=row.id, role=row.role, township=row.township, name=row.name, county=row.county)


def use_due(bind, row) -> bool:
    """Whether the token's use is due to be written to the store of ``bind`` (every few minutes)."""
    last = max(aware(row.last_used_at) or _EPOCH, _claimed.get((id(bind), row.id), _EPOCH))
    return utcnow() - last > _TOUCH_EVERY


def principal_from_row(session: Session, row) -> Principal | None:
    """:func:`principal_of` the row, noting the token's use in ``session`` when it is due."""
    principal = principal_of(row)
    if principal is not None and use_due(session.get_bind(), row):
        now = utcnow()
        _claimed[(id(session.get_bind()), row.id)] = now  # claimed first: the burst's other requests skip it
        session.execute(_TOUCH, {"i": row.id, "now": now})
    return principal


def principal_for(session: Session, raw_token: str) -> Principal | None:
    """The caller a raw token stands for, or ``None`` if it is unknown, revoked or expired."""
    if not raw_token:
        return None
    return principal_from_row(session, session.execute(TOKEN_BY_HASH, {"h": hash_token(raw_token)}).first())


def revoke_token(session: Session, token_id: int) -> bool:
    """Revoke a token (and every session built on it); returns whether it existed and was active."""
    token = session.get(Token, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    session.flush()
    return True


def token_status(t: Token, now: datetime | None = None) -> str:
    """active, revoked or expired."""
    now = now or utcnow()
    if t.revoked_at is not None:
        return "revoked"
    expires = aware(t.expires_at)
    return "expired" if expires is not None and expires <= now else "active"


def list_tokens(session: Session) -> list[dict]:
    """Every token's metadata (never the token itself), oldest first."""
    now = utcnow()
    return [
        {
            "id": t.id,
            "role": t.role,
            "county": t.county,
            "township": t.township,
            "name": t.name,
            "created_at": aware(t.created_at),
            "last_used_at": aware(t.last_used_at),
            "expires_at": aware(t.expires_at),
            "revoked_at": aware(t.revoked_at),
            "status": token_status(t, now),
        }
        for t in session.scalars(select(Token).order_by(Token.id))
    ]
