"""Named dependencies: the database session, the caller (token or session cookie), role checks and the
scorer. Routes (and the township pages) declare what they need with these."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from sanling.serving.scorer import Scorer
from sanling.serving.security import SESSION_COOKIE, read_session
from sanling.serving.store.sessions import principal_for_session
from sanling.serving.store.tokens import Principal, principal_for


def finish_session(session: Session, ok: bool) -> None:
    """Commit (``ok``) or roll back, then close: the end of every request's session."""
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def db_gate(request: Request) -> asyncio.Semaphore:
    """At most as many requests hold a session as the engine's pool has connections.

    A request's session is used from up to three pool threads in turn (the caller's dependency, the
    route, the commit). Without this gate a burst of more requests than connections fills every
    thread of the pool with requests waiting for a connection, while the requests holding the
    connections wait for a free thread to commit and give them back: nothing moves until the pool's
    30 s time-out turns them all into 500s (measured at 200 req/s after a short stall). Waiting here,
    on the event loop, costs no thread. One gate per event loop (tests run several)."""
    loop = asyncio.get_running_loop()
    gate = getattr(request.app.state, "db_gate", None)
    if gate is None or gate[0] is not loop:
        pool = request.app.state.engine.pool
        size = pool.size() + max(getattr(pool, "_max_overflow", 0), 0) if hasattr(pool, "size") else 1
        gate = (loop, asyncio.Semaphore(max(1, size)))
        request.app.state.db_gate = gate
    return gate[1]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed when the route succeeds, rolled back when it raises.

    Opening a session does no I/O, so it happens on the event loop; only the commit and close go to
    the thread pool — one thread hop fewer per request than a sync generator dependency. The
    request first waits for a place at the database (:func:`db_gate`).
    """
    async with db_gate(request):
        session = request.app.state.sessionmaker()
        ok = False
        try:
            yield session
            ok = True
        finally:
            # Shielded: a client that disconnects must not leave the connection checked out.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(finish_session, session, ok)


SessionDep = Annotated[Session, Depends(get_session)]


def principal_from_request(request: Request, session: Session) -> Principal | None:
    """The caller of a request: an ``Authorization: Bearer`` token, else the pages' signed session
    cookie; ``None`` when neither identifies an active token. Stores it on ``request.state.principal``
    for the access log."""
    principal = None
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, raw = header.partition(" ")
        if scheme.lower() == "bearer":
            principal = principal_for(session, raw.strip())
    else:
        session_id = read_session(request.cookies.get(SESSION_COOKIE), request.app.state.secret_key)
        if session_id is not None:
            principal = principal_for_session(session, session_id)
    request.state.principal = principal
    return principal


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing, invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})


def get_principal(request: Request, session: SessionDep) -> Principal:
    """The authenticated caller; 401 with ``WWW-Authenticate: Bearer`` when missing, wrong or revoked."""
    principal = principal_from_request(request, session)
    if principal is None:
        raise _unauthorized()
    return principal


def get_optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The caller or ``None`` — for pages that redirect to the sign-in form instead of answering 401."""
    return principal_from_request(request, session)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]


def require_role(*roles: str):
    """A dependency admitting only ``roles`` (403 for the others)."""

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"not allowed for role {principal.role}")
        return principal

    return check


ReaderDep = Annotated[Principal, Depends(require_role("analyst", "service"))]


def get_scorer(request: Request) -> Scorer:
    """The loaded scorer; 503 when no model is being served."""
    scorer = getattr(request.app.state, "scorer", None)
    if scorer is None:
        raise HTTPException(
            503,
            "no model loaded: train and promote one (sanling train, sanling promote), then restart the server",
        )
    return scorer


ScorerDep = Annotated[Scorer, Depends(get_scorer)]


T = TypeVar("T")


class Caller:
    """The caller of a read route and its database work, done together in one thread-pool call.

    ``PrincipalDep`` + ``SessionDep`` on a plain ``def`` route cost four hops between the event loop
    and the thread pool per request (the token check, the route, the response's validation, the
    commit) — each a queue put, a thread wake-up and a loop wake-up, more CPU than the SQL of a unit
    (figures: docs/operations.md, "Performance"). ``await caller.run(work, …)`` checks the token,
    runs ``work(session, principal, …)`` and commits (rolls back when it raises) in a single call;
    the ``async def`` route then validates and writes its response on the event loop. Revocation and
    expiry are checked against the store on every request, as with ``PrincipalDep``. The session
    is a read session (``app.state.read_sessionmaker``: autocommit on PostgreSQL)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    async def run(self, work: Callable[..., T], *args) -> T:
        """``work(session, principal, *args)`` for the authenticated caller; 401 when the token is
        wrong, revoked or expired."""
        async with db_gate(self.request):
            # Not cancellable (anyio waits for the thread): a client that disconnects cannot leave
            # the connection checked out, and the gate is held until the session is closed.
            return await run_in_threadpool(self._in_session, work, args)

    def _in_session(self, work: Callable[..., T], args: tuple) -> T:
        session = self.request.app.state.read_sessionmaker()
        ok = False
        try:
            principal = principal_from_request(self.request, session)
            if principal is None:
                raise _unauthorized()
            result = work(session, principal, *args)
            ok = True
            return result
        finally:
            finish_session(session, ok)


async def get_caller(request: Request) -> Caller:
    """The caller of a read route (:class:`Caller`); a request with neither a token nor a session
    cookie is 401 at once, before its parameters are read (as with ``PrincipalDep``)."""
    if request.headers.get("authorization") is None and SESSION_COOKIE not in request.cookies:
        raise _unauthorized()
    return Caller(request)


CallerDep = Annotated[Caller, Depends(get_caller)]
