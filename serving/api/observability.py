"""Request ids, the access log, Prometheus metrics and the last-resort error handler, as one pure
ASGI middleware (cheaper than ``BaseHTTPMiddleware``, and it sees the matched route template)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("sanling.access")
error_log = logging.getLogger("sanling.error")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The service's Prometheus series, in a registry of its own (one per app, so tests do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sanling_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sanling_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    # Unmatched paths all count as one series: a scanner must not create a series per URL.
    return getattr(route, "path", None) or "<unmatched>"


class ObservabilityMiddleware:
    """Gives each request an id (``X-Request-ID``, kept from the caller when well-formed), logs one
    structured line, counts it, and turns any unhandled exception into a 500 without internals."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex[:16]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            error_log.exception(
                "unhandled error in %s %s (request_id=%s)", scope["method"], scope["path"], request_id
            )
            status = 500
            if started:  # the body is half sent: nothing sensible left to do but let the server close it
                raise
            body = json.dumps({"detail": "internal error", "request_id": request_id}).encode()
            await send_wrapper(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            # Any method is accepted on the wire; only the standard ones get a series of their own.
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            principal = state.get("principal")
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "method": method,
                            "route": route,
                            "status": status,
                            "ms": round(elapsed * 1000, 2),
                            "role": getattr(principal, "role", None),
                            "token_id": getattr(principal, "token_id", None),
                            "request_id": request_id,
                        }
                    )
                )
