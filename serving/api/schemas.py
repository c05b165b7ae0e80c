"""Request and response models of the JSON API (docs/operations.md). Response models may carry more fields
than the contract names, never fewer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SCORE_IDS = 1000
AS_OF_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"

Tier = Literal["blue", "yellow", "orange", "red"]
UnitType = Literal["village", "community", "enterprise"]


class Factor(BaseModel):
    """One reason (pushes risk up) or protective factor (pulls it down), strongest first."""

    feature: str
    value: float | int | str | bool | None = None
    contribution: float
    text_zh: str
    group: str | None = None


class Probabilities(BaseModel):
    blue: float
    yellow: float
    orange: float
    red: float


class RelativeRisk(BaseModel):
    """The unit's probability over the mean of the same unit type in the same county that month
    (2.4 reads "2.4 times its peers"); ``None`` where the peers' mean is 0."""

    red: float | None = None
    orange_or_worse: float | None = None


class ReportingIntensity(BaseModel):
    """How hard the unit's events are looked for (e.g. 网格员每千人) against the mean of the same unit
    type in the same county: a high ratio means more small events get recorded, not more risk."""

    label_zh: str
    value: float | None = None
    peer_mean: float | None = None
    ratio: float | None = None


class LateRecords(BaseModel):
    """What the unit's figures as of the month held that was recorded after the fact, over the last
    ``window_months`` months: events entered in a later month than they occurred (补录),
    escalations dated in a later month than the event, and corrections recorded later."""

    events: int = Field(ge=0)
    escalations: int = Field(ge=0)
    corrections: int = Field(ge=0)
    window_months: int = Field(ge=1)


class HistoryMonth(BaseModel):
    """One earlier month: the tier forecast and the tier then observed (``None`` while open)."""

    as_of: str
    tier: Tier
    observed_tier: Tier | None = None


class ExplainedScore(BaseModel):
    """docs/operations.md explained score, plus unit_type, county, protective factors and month-on-month change."""

    unit_id: str
    unit_name: str
    township: str
    as_of: str
    tier: Tier
    tier_zh: str
    risk_score: float = Field(ge=0, le=100)
    probabilities: Probabilities
    reasons: list[Factor]
    model_version: str
    unit_type: str | None = None
    county: str | None = None
    protective: list[Factor] = []
    responsible_person: str | None = None
    previous_tier: Tier | None = None
    change: Literal["up", "down", "same", "new"] | None = Field(
        None,
        description="tier against the previous month's score: up, down, same, or new (no previous score)",
    )
    risk_score_change: float | None = None
    relative_risk: RelativeRisk | None = None
    reporting_intensity: ReportingIntensity | None = None
    late_records: LateRecords | None = Field(
        None,
        description="counts recorded after the fact (late reports, escalations, corrections); absent without reporting dates",
    )
    tier_set: list[Tier] | None = Field(
        None,
        description="the conformal set of tiers that holds next month's tier at the model's level (90 %)",
    )


class UnitRisk(ExplainedScore):
    """One unit's explained score with its forecast history (up to 24 earlier months, oldest first)."""

    history: list[HistoryMonth] = []


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_ids: list[str] = Field(description=f"1 to {MAX_SCORE_IDS:,} unit ids")
    as_of: str | None = Field(None, pattern=AS_OF_PATTERN, description="YYYY-MM; default the latest month")

    @field_validator("unit_ids")
    @classmethod
    def _size(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one unit id")
        if len(v) > MAX_SCORE_IDS:
            raise ValueError(
                f"at most {MAX_SCORE_IDS:,} unit ids per request (got {len(v):,}); split the request"
            )
        return list(dict.fromkeys(v))  # duplicates would be scored twice for nothing


class ModelInfo(BaseModel):
    """The serving model as the scorer describes it (version, training window, backtest metrics …),
    plus the latest scoring run from the store."""

    model_config = ConfigDict(extra="allow")

    version: str | None = None
    drift_warnings: list[str] = []
    scores_as_of: str | None = None
    scores_model_version: str | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorDetail(BaseModel):
    """Every error answer: ``{"detail": "…"}`` (a 422 lists ``loc``, ``msg``, ``type`` per problem)."""

    detail: str | list[dict]


# The answers every authenticated route may give besides its success, declared in the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict] = {
    401: {"model": ErrorDetail, "description": "missing, invalid, revoked or expired token"},
    403: {"model": ErrorDetail, "description": "the token's role may not use this route"},
    404: {
        "model": ErrorDetail,
        "description": "no such unit, township or month — or outside the token's township",
    },
    413: {"model": ErrorDetail, "description": "request body larger than the configured cap (default 1 MB)"},
    422: {"model": ErrorDetail, "description": "invalid parameters or body"},
}
