"""The warning service: the JSON API (docs/operations.md) and the township pages in one FastAPI app.

``create_app`` opens the store (running migrations), wires the routes, the observability middleware
and the error handlers, and keeps the scorer on ``app.state.scorer`` — replace that attribute to swap
models atomically (a reference assignment; requests in flight keep the old one)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from sanling.core.config import Settings
from sanling.core.errors import ModelError, SanlingError
from sanling.serving.api.fast_score import FastScore
from sanling.serving.api.limits import BodySizeLimit
from sanling.serving.api.observability import Metrics, ObservabilityMiddleware
from sanling.serving.api.routes import health, metrics, model, risk, score
from sanling.serving.scorer import Scorer
from sanling.serving.security import load_secret_key
from sanling.serving.store.db import init_db, read_session_factory, session_factory
from sanling.serving.store.errors import RecordNotFound

log = logging.getLogger("sanling.serving")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back (up to 1,001 ids) plus pydantic internals; keep
        # where and what only.
        detail = [
            {
                "loc": list(e.get("loc", ())),
                "msg": str(e.get("msg", "invalid")).removeprefix("Value error, "),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RecordNotFound)
    async def _not_found(request: Request, exc: RecordNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ModelError)
    async def _no_model(request: Request, exc: ModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(SanlingError)
    async def _bad_input(request: Request, exc: SanlingError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)


def create_app(settings: Settings | None = None, scorer: Scorer | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment) serving ``scorer`` (``None``: the
    stored scores are served, while ``POST /v1/score`` and ``GET /v1/model`` answer 503).

    Opens the store at ``settings.db_url`` and upgrades its schema; raises
    :class:`pipeline.errors.ConfigError` when the database is unusable.
    """
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = init_db(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (the model, MLflow, pandas, the data) lives as long as the
        # process: move it out of the collector's generations, so that a full collection triggered
        # by a request's garbage does not walk it (measured on a county: p99 of the township list
        # of 50 at 50 req/s fell from 174 ms to 15 ms; at 100 req/s from time-outs to 15 ms).
        gc.collect()
        gc.freeze()
        yield
        engine.dispose()

    app = FastAPI(
        title="sanling 三零 risk early-warning",
        version="1",
        lifespan=lifespan,
        description="Explained four-tier risk scores of villages, communities and enterprises. "
        "Every /v1 route needs `Authorization: Bearer <token>` (see docs/operations.md).",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = session_factory(engine)
    app.state.read_sessionmaker = read_session_factory(engine)
    app.state.secret_key = load_secret_key(settings.home, settings.secret_key)
    app.state.scorer = scorer
    app.state.metrics = Metrics()

    _install_error_handlers(app)
    for module in (health, risk, score, model, metrics):
        app.include_router(module.router)
    from sanling.serving.pages import router as pages_router

    app.include_router(pages_router)
    # POST /v1/score from the scorer's cached rows (serving/api/fast_score.py): innermost, so the
    # size cap, the metrics and the access log apply to it as to the route it stands in front of.
    app.add_middleware(FastScore, fastapi_app=app)
    # Added before the observability layer, so it runs inside it (a 413 is logged and counted) and
    # before any route reads a body.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    return app


def run(
    host: str = "127.0.0.1", port: int = 8000, settings: Settings | None = None, scorer: Scorer | None = None
) -> None:
    """Serve the app with uvicorn until interrupted (our middleware writes the access log)."""
    import uvicorn

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings, scorer)
    log.info("serving on http://%s:%d (docs at /docs)", host, port)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")
