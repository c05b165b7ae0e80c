"""The tiny world of the store and API tests: two townships of 清徐县, two scored months, tokens for
every role, behind the real app (``build_world``). Used by tests/serving/conftest.py's fixtures and
imported by the tests that need the world's names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from sanling.core.config import Settings
from sanling.serving.store import create_token, revoke_token, save_scores, session_scope, upsert_units
from sanling.serving.store.db import init_db, make_engine
from sanling.serving.store.tokens import principal_for

# --- a tiny world -------------------------------------------------------------------------------

UNITS = pd.DataFrame(
    {
        "unit_id": ["140100001001", "140100001002", "140100002001", "91140100MA0001"],
        "unit_name": ["东关村", "西街社区", "南庄村", "晋兴煤业有限公司"],
        "unit_type": ["village", "community", "village", "enterprise"],
        "township": ["城关镇", "城关镇", "河西乡", "河西乡"],
        "county": ["清徐县", "清徐县", "清徐县", "清徐县"],
        "city": ["太原市"] * 4,
    }
)
OWN, OTHER = "城关镇", "河西乡"


def score_row(unit_id: str, tier: str, risk: float) -> dict:
    probs = {"blue": 0.1, "yellow": 0.2, "orange": 0.3, "red": 0.4}
    return {
        "unit_id": unit_id,
        "tier": tier,
        "risk_score": risk,
        "probabilities": probs,
        "reasons": [
            {
                "feature": "dispute_unresolved_90d",
                "value": 3,
                "contribution": 0.41,
                "text_zh": "未化解矛盾纠纷3起，高于同类村庄平均0.4起",
                "group": "矛盾纠纷",
            },
            {
                "feature": "petition_12m",
                "value": 1,
                "contribution": 0.2,
                "text_zh": "近12个月信访1件",
                "group": "信访",
            },
        ],
        "protective": [
            {
                "feature": "mediators",
                "value": 4,
                "contribution": -0.1,
                "text_zh": "调解员4名",
                "group": "基础",
            }
        ],
    }


def seed_scores(session) -> None:
    upsert_units(session, UNITS)
    save_scores(
        session,
        {"as_of": "2022-11", "model_version": "1"},
        [
            score_row("140100001001", "yellow", 40.0),
            score_row("140100001002", "red", 90.0),
            score_row("140100002001", "blue", 5.0),
            score_row("91140100MA0001", "orange", 60.0),
        ],
    )
    save_scores(
        session,
        {"as_of": "2022-12", "model_version": "1", "drift_warnings": ["事件量较训练期上升35%"]},
        [
            score_row("140100001001", "orange", 70.0),
            score_row("140100001002", "red", 85.0),
            score_row("140100002001", "red", 95.0),
            score_row("91140100MA0001", "blue", 10.0),
        ],
    )


@dataclass
class World:
    app: object
    engine: Engine
    tokens: dict[str, str]  # role label → raw token
    token_ids: dict[str, int]
    own: str = OWN
    other: str = OTHER
    units: pd.DataFrame = field(default_factory=UNITS.copy)

    def headers(self, label: str) -> dict[str, str]:
        return bearer(self.tokens[label])


class StoreScorer:
    """A stand-in for the real scorer: returns the stored explained scores, so auth, limits and shapes
    can be tested without a model."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.calls: list[list[str]] = []

    def score(self, unit_ids: list[str], as_of: str | None = None) -> list[dict]:
        from sanling.serving.store import get_score

        self.calls.append(list(unit_ids))
        with session_scope(self.engine) as s:
            return [get_score(s, u, as_of=as_of) for u in unit_ids]

    def model_info(self) -> dict:
        return {"version": 3, "training_window": ["2018-01", "2022-11"], "backtest": {"rps": 0.08}}


def build_world(home: Path, db_url: str | None = None, with_scorer: bool = True) -> World:
    from sanling.serving.app import create_app

    settings = Settings(home=home, database_url=db_url, secret_key="test-secret")
    engine = make_engine(settings.db_url)
    init_db(engine)
    scorer = StoreScorer(engine) if with_scorer else None
    app = create_app(settings, scorer=scorer)
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    with session_scope(app.state.engine) as s:
        seed_scores(s)
        for label, role, township in [
            ("analyst", "analyst", None),
            ("service", "service", None),
            ("township", "township", OWN),
            ("revoked", "analyst", None),
        ]:
            tokens[label] = create_token(s, role, township, name=f"测试{label}")
            ids[label] = principal_for(s, tokens[label]).token_id
        revoke_token(s, ids["revoked"])
    return World(app=app, engine=engine, tokens=tokens, token_ids=ids)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
