"""The request-size cap: a body larger than ``Settings.max_request_bytes`` is answered 413 before
anything parses it — before the token check too, so an anonymous caller cannot make the server
buffer a large body. A pure ASGI middleware: a declared ``Content-Length`` over the cap is refused
at once; a chunked body is counted as it streams and refused when it crosses the cap."""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised inside ``receive`` when a streamed body crosses the cap. An HTTPException, because
    FastAPI turns any other error while reading a body into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes")


def _reply_413(limit: int) -> tuple[Message, Message]:
    body = json.dumps({"detail": f"request body larger than {limit:,} bytes"}).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (JSON ``{"detail": …}``)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        chunked = False
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is None and not chunked and scope.get("http_version") in ("1.0", "1.1"):
            # In HTTP/1 a request without either header has no body (a GET): nothing to count, so
            # no wrapped receive and send on every message. (HTTP/2 may stream one without them.)
            await self.app(scope, receive, send)
            return
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = True  # a malformed length is not worth reading on
            if too_big:
                for message in _reply_413(self.max_bytes):
                    await send(message)
                return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            for message in _reply_413(self.max_bytes):
                await send(message)
