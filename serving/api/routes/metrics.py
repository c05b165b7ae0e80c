"""Prometheus metrics (request counts and latency by route template); analyst and service tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sanling.serving.api.deps import ReaderDep
from sanling.serving.api.schemas import ERROR_RESPONSES

router = APIRouter(tags=["metrics"], responses=ERROR_RESPONSES)


@router.get("/metrics", response_class=Response)
def metrics(_: ReaderDep, request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
