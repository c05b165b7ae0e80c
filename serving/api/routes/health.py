"""Liveness: no token, no database — 200 while the process is up."""

from __future__ import annotations

from fastapi import APIRouter

from sanling.serving.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:  # async: no work, so no hop to the thread pool and back
    return Health()
