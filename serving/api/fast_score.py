"""``POST /v1/score`` answered without FastAPI's per-request machinery when the answer is already
known (issue 14): a pure ASGI layer in front of the router, inside the body-size cap and the
observability middleware.

A request takes this path only when everything about it is ordinary: a JSON body that
:class:`ScoreRequest` accepts, a bearer token that the store says is active (checked against the
store on every request, like every route: revocation and expiry take effect on the next request),
every unit in the store and in the token's scope, and a scorer whose month is explained already
(``cached_json``: each unit's row kept as the JSON bytes the response model gives it). Anything else —
no or a wrong token, a malformed body, an unknown unit, a month not yet computed, a token whose
last use is due to be written — goes on to the FastAPI route with the same body, which answers it
exactly as before (401, 404, 422, 503 or the computed scores). The route stays declared, so the
OpenAPI document is unchanged.

What this path skips is what costs most on a small machine (docs/benchmarks.md, "Serving"): the
dependency resolution, three thread-pool hops (token, route, commit), the response model's
validation of every row on every request and the JSON encoding of the rows; what it keeps is one
thread-pool call for the store's two reads, in one read session."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, select
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sanling.core.vocabulary import TIER_ZH
from sanling.serving.api.deps import db_gate, finish_session
from sanling.serving.api.routes import score
from sanling.serving.api.schemas import ExplainedScore, ScoreRequest
from sanling.serving.security import hash_token
from sanling.serving.store.tables import Unit
from sanling.serving.store.tokens import (
    PRINCIPAL_COLUMNS,
    TOKEN_BY_HASH,
    principal_for,
    principal_of,
    use_due,
)
from sanling.serving.store.units import existing_unit_ids

PATH = "/v1/score"
_ROW = TypeAdapter(ExplainedScore)
_UNITS = select(Unit.__table__.c.unit_id).where(
    Unit.__table__.c.unit_id.in_(bindparam("ids", expanding=True))
)
_HEADERS = [(b"content-type", b"application/json")]
_UNIT = select(Unit.__table__.c.unit_id).where(Unit.__table__.c.unit_id == bindparam("u"))
_TokenRow = namedtuple("_TokenRow", [c.name for c in PRINCIPAL_COLUMNS])
MAX_DIRECT_IDS = 8  # more units than this are checked with one IN query in a session


def encode_score(row: dict) -> bytes:
    """One explained score as the route's response model writes it: the row completed with
    ``tier_zh``, validated as :class:`ExplainedScore` and dumped as JSON (the same keys and values as
    FastAPI's ``response_model`` encoding; tests/serving/test_fast_score.py compares the two)."""
    row.setdefault("tier_zh", TIER_ZH.get(row.get("tier"), ""))
    return _ROW.dump_json(_ROW.validate_python(row))


def _json_content_type(headers: list) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower() == b"application/json"
    return False


class FastScore:
    """The ASGI layer described in the module docstring; ``app`` is the rest of the stack."""

    def __init__(self, app: ASGIApp, fastapi_app) -> None:
        self.app = app
        self.fastapi_app = fastapi_app  # for app.state: the scorer and the read sessions
        # What the router puts in scope["route"] for this path: the metrics and the access log name
        # its template.
        self.route = next(r for r in score.router.routes if r.path == PATH and "POST" in r.methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        token = None
        for name, value in headers:
            if name == b"authorization":
                scheme, _, raw = value.decode("latin-1").partition(" ")
                # a second header or another scheme: the route decides
                token = raw.strip() if scheme.lower() == "bearer" and token is None else ""
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the route finds out too
                await self.app(scope, _replay(b"".join(chunks), message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        parts = None
        if token and _json_content_type(headers):
            parts = await self._answer(scope, token, body)
        if parts is None:
            await self.app(scope, _replay(body, None, receive), send)
            return
        scope["route"] = self.route
        payload = b"[" + b",".join(parts) + b"]"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _answer(self, scope: Scope, token: str, body: bytes) -> list[bytes] | None:
        """The response rows' bytes, or ``None`` when the route must answer."""
        state = self.fastapi_app.state
        cached = getattr(state.scorer, "cached_json", None)
        if cached is None:
            return None
        try:
            request = ScoreRequest.model_validate_json(body)
        except (ValidationError, ValueError):
            return None
        parts = cached(request.unit_ids, request.as_of, encode_score)  # no I/O: on the loop
        if parts is None:
            return None
        gate = db_gate(_GateRequest(self.fastapi_app))
        async with gate:  # not cancellable (anyio waits for the thread), as in deps.Caller
            direct = self._direct(state)
            principal = ASK_SESSION
            if direct is not None and len(request.unit_ids) <= MAX_DIRECT_IDS:
                principal = direct.check(token, request.unit_ids)
            if principal is ASK_SESSION:
                principal = await run_in_threadpool(_check, state.read_sessionmaker, token, request.unit_ids)
        if principal is None:
            return None
        scope.setdefault("state", {})["principal"] = principal
        return parts

    def _direct(self, state) -> _SqliteReads | None:
        bind = state.read_sessionmaker.kw.get("bind")
        reads = getattr(state, "fast_score_reads", None)
        if reads is None or reads.bind is not bind:
            reads = state.fast_score_reads = _SqliteReads(bind) if bind.dialect.name == "sqlite" else False
        return reads or None


ASK_SESSION = object()  # the direct reads cannot decide: the session path does


class _SqliteReads:
    """The fast path's reads on a SQLite store: the token by its hash (the store's own statement,
    ``tokens.TOKEN_BY_HASH``: active tokens only) and each unit by id, compiled once for the engine's
    dialect and run on a pooled DBAPI connection, the token's columns converted by their own column
    types — what a session does, without its bookkeeping (≈ 30 µs against ≈ 400 µs a request).
    The token's validity is decided by :func:`tokens.principal_of`, as on every other path."""

    def __init__(self, bind) -> None:
        self.bind = bind
        dialect = bind.dialect
        token = TOKEN_BY_HASH.compile(dialect=dialect)
        self.token_sql, self.token_params = token.string, token.positiontup
        self.converters = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in PRINCIPAL_COLUMNS
        ]
        unit = _UNIT.compile(dialect=dialect)
        self.unit_sql = unit.string

    def check(self, token: str, unit_ids: list[str]):
        """The principal when the token is active and every unit is in the store, ``None`` when not
        (the route answers), :data:`ASK_SESSION` for a township token (its scope is checked in SQL
        by the session path) or a token whose last use is due to be written."""
        conn = self.bind.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute(self.token_sql, (hash_token(token),))
            raw = cur.fetchone()
            if raw is None:
                return None
            row = _TokenRow(*(v if f is None else f(v) for f, v in zip(self.converters, raw, strict=True)))
            principal = principal_of(row)
            if principal is not None and use_due(self.bind, row):
                return ASK_SESSION  # the session path writes the token's use
            if principal is None:
                return None
            if principal.scope is not None:
                return ASK_SESSION
            for u in unit_ids:
                cur.execute(self.unit_sql, (u,))
                if cur.fetchone() is None:
                    return None
            cur.close()
            return principal
        finally:
            conn.close()


class _GateRequest:
    """Enough of a request for :func:`deps.db_gate` (it reads ``request.app.state``)."""

    def __init__(self, app) -> None:
        self.app = app


def _check(sessionmaker: Callable, token: str, unit_ids: list[str]):
    """In one read session (as :class:`deps.Caller` reads): the token's principal — active, not expired,
    its use noted every few minutes — when every unit exists and lies in its scope; ``None`` otherwise
    (the route then decides and answers)."""
    session = sessionmaker()
    ok = False
    try:
        principal = principal_for(session, token)
        if principal is None:
            return None
        scope = principal.scope
        if scope is None:
            found = set(session.scalars(_UNITS, {"ids": unit_ids}))
        else:
            found = existing_unit_ids(session, unit_ids, scope=scope)
        ok = True
        return principal if len(found) == len(unit_ids) else None
    finally:
        finish_session(session, ok)


def _replay(body: bytes, last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read (then ``last``, if the client
    disconnected while it was read), then whatever the server sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": last is not None}]
    if last is not None:
        pending.append(last)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
