"""Fresh scores on demand, through the scorer the app was started with."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from sanling.core.errors import ModelError, SanlingError
from sanling.core.vocabulary import TIER_ZH
from sanling.serving.api.deps import PrincipalDep, SessionDep, get_scorer
from sanling.serving.api.schemas import ERROR_RESPONSES, ExplainedScore, ScoreRequest
from sanling.serving.store.units import existing_unit_ids

router = APIRouter(prefix="/v1", tags=["score"], responses=ERROR_RESPONSES)


@router.post("/score", response_model=list[ExplainedScore])
def score(body: ScoreRequest, principal: PrincipalDep, session: SessionDep, request: Request) -> list[dict]:
    """Score up to 1,000 units now (``MAX_SCORE_IDS``); unknown units (and, for a township token, units of
    another township) are 404 and nothing is scored; 503 when no model is loaded."""
    # The scorer is looked up after the body is validated, so an oversized request is 422 even
    # on a server without a model.
    scorer = get_scorer(request)
    known = existing_unit_ids(session, body.unit_ids, scope=principal.scope)
    missing = [u for u in body.unit_ids if u not in known]
    if missing:
        shown = ", ".join(repr(u) for u in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise HTTPException(404, f"unit(s) not found: {shown}")
    try:
        rows = scorer.score(body.unit_ids, body.as_of)
    except ModelError as e:
        raise HTTPException(503, str(e)) from None
    except SanlingError as e:
        raise HTTPException(422, str(e)) from None
    for r in rows:
        r.setdefault("tier_zh", TIER_ZH.get(r.get("tier"), ""))
    return rows
