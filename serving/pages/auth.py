"""Who is signed in to the pages, and the CSRF protection of their forms.

The session cookie (``serving.security``) carries a session id; every request looks the session
and its token up again, so logout or revoking the token ends the session at once. Forms carry a
CSRF token derived from the session cookie with an HMAC under the app's secret key: an attacker's
page can neither read the HttpOnly cookie nor compute the token. Before sign-in (the login form itself) a random double-submit cookie
plays the same role. POSTs that carry an ``Origin`` (or, failing that, a ``Referer``) from another
host are refused as well."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy.orm import Session

from sanling.serving.security import SESSION_COOKIE, read_session
from sanling.serving.store.sessions import principal_for_session
from sanling.serving.store.tokens import Principal, Scope, principal_for

LOGIN_CSRF_COOKIE = "sanling_login_csrf"
PAGE_ROLES: tuple[str, ...] = ("analyst", "township")


@dataclass(frozen=True)
class PagePrincipal:
    """A signed-in page user (analyst or township staff). ``township`` is the enforced scope of
    township users."""

    token_id: int
    role: str
    township: str | None
    name: str | None
    county: str | None = None

    @property
    def display(self) -> str:
        who = self.name or f"令牌#{self.token_id}"
        return f"{who}（{self.county}{self.township}）" if self.role == "township" else f"{who}（分析员）"

    @property
    def scope(self) -> Scope | None:
        """The (county, township) every read and write is restricted to (``None``: analysts)."""
        return Scope(self.county or "", self.township or "") if self.role == "township" else None

    @property
    def actor(self) -> str:
        """How the audit trail names this user — the same form the API uses."""
        return Principal(self.token_id, self.role, self.township, self.name, self.county).actor


def _page_principal(p: Principal | None) -> tuple[PagePrincipal | None, str | None]:
    if p is None:
        return None, "令牌无效或已吊销。"
    if p.role not in PAGE_ROLES:
        return None, "该令牌为系统接口令牌，不能用于网页登录。"
    if p.role == "township" and not (p.township and p.county):
        # A township token without a township would otherwise see every unit.
        return None, "该乡镇令牌未绑定乡镇，请联系管理员。"
    return PagePrincipal(
        token_id=p.token_id, role=p.role, township=p.township, name=p.name, county=p.county
    ), None


def principal_from_token(session: Session, raw_token: str) -> tuple[PagePrincipal | None, str | None]:
    """Check a pasted token. Returns the principal, or ``None`` and the reason shown to the user."""
    raw = raw_token.strip()
    if not raw:
        return None, "请输入访问令牌。"
    return _page_principal(principal_for(session, raw))


def principal_from_request(request: Request, session: Session) -> PagePrincipal | None:
    """The principal of the request's session cookie, or ``None`` (missing, forged, expired, revoked,
    or a role that has no pages)."""
    session_id = read_session(request.cookies.get(SESSION_COOKIE), request.app.state.secret_key)
    if session_id is None:
        return None
    return _page_principal(principal_for_session(session, session_id))[0]


def csrf_for_session(cookie: str, secret_key: str) -> str:
    """The CSRF token of a session: HMAC of the session cookie value."""
    return hmac.new(secret_key.encode(), b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def same_origin(request: Request) -> bool:
    """False when the browser says the POST came from another site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        # Absent: non-browser clients and some privacy settings; the CSRF token still protects.
        return source != "null"
    host = request.headers.get("host", "")
    return urlsplit(source).netloc == host


def csrf_ok(request: Request, submitted: str | None, login: bool = False) -> bool:
    """Check a POST's hidden ``csrf_token`` against the session, or — for the sign-in form only —
    against the double-submit cookie set with the form."""
    if not submitted or not same_origin(request):
        return False
    cookie = request.cookies.get(SESSION_COOKIE)
    expected: list[str] = []
    if cookie:
        expected.append(csrf_for_session(cookie, request.app.state.secret_key))
    pre = request.cookies.get(LOGIN_CSRF_COOKIE)
    if login and pre:
        expected.append(pre)
    # Bytes, not str: compare_digest refuses non-ASCII str (a TypeError, i.e. a 500, before this).
    given = submitted.encode("utf-8", "surrogateescape")
    return any(hmac.compare_digest(given, e.encode("utf-8", "surrogateescape")) for e in expected)
