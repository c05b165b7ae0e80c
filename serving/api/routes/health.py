"""Liveness and readiness: no token, no database.

``/healthz``: 200 while the process is up. ``/readyz``: 200 once the scorer has explained its
latest month for every unit (requests for it then read stored rows), 503 before — and 503 when no
model is served. A scorer that computes every request itself (no ``ready``) is ready at once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sanling.serving.api.deps import get_scorer
from sanling.serving.api.schemas import ErrorDetail, Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:  # async: no work, so no hop to the thread pool and back
    return Health()


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorDetail}})
async def readyz(request: Request):
    scorer = get_scorer(request)  # 503, saying what to do, when no model is served
    ready = getattr(scorer, "ready", None)
    if callable(ready) and not ready():
        return JSONResponse({"detail": "warming up: the latest month is being explained"}, status_code=503)
    return Health()
