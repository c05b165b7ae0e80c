"""What is being served: the scorer's model description and the latest run's drift warnings.
Analyst and service tokens only — a township clerk has no use for it."""

from __future__ import annotations

from fastapi import APIRouter

from sanling.serving.api.deps import ReaderDep, ScorerDep, SessionDep
from sanling.serving.api.schemas import ERROR_RESPONSES, ModelInfo
from sanling.serving.store.scores import latest_run

router = APIRouter(prefix="/v1", tags=["model"], responses=ERROR_RESPONSES)


@router.get("/model", response_model=ModelInfo)
def model(_: ReaderDep, session: SessionDep, scorer: ScorerDep) -> dict:
    info = dict(scorer.model_info())
    run = latest_run(session)
    info["drift_warnings"] = run["drift_warnings"] if run else []
    info["scores_as_of"] = run["as_of"] if run else None
    info["scores_model_version"] = run["model_version"] if run else None
    if info.get("version") is not None:
        info["version"] = str(info["version"])
    return info
