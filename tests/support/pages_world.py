"""A small world for the page tests, and the real app served by uvicorn on a free local port.

Loaded by the page test modules with :func:`load` (tests/serving/conftest.py belongs to the API
tests). Two counties: 示范县 with 城关镇 (6 units) and 河西乡 (4 units), 东山县 with 东山镇 (2 units);
scores for 2022-11 and 2022-12 and a backfilled forecast history from 2021-01 with observed tiers;
event history; open events; a township token for 城关镇 and an analyst token."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pandas as pd

from sanling.core.config import Settings
from sanling.serving.app import create_app
from sanling.serving.store import (
    create_token,
    replace_event_history,
    replace_observed_tiers,
    save_scores,
    session_scope,
    upsert_units,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts"

UNITS = [
    # unit_id, name, type, township, county, city
    ("140101001001", "东关村", "village", "城关镇", "示范县", "太原市"),
    ("140101001002", "西关村", "village", "城关镇", "示范县", "太原市"),
    ("140101001003", "南街社区", "community", "城关镇", "示范县", "太原市"),
    ("140101001004", "北街社区", "community", "城关镇", "示范县", "太原市"),
    ("140101001005", "晋阳机械厂", "enterprise", "城关镇", "示范县", "太原市"),
    ("140101001006", "槐树村", "village", "城关镇", "示范县", "太原市"),
    ("140101002001", "河西村", "village", "河西乡", "示范县", "太原市"),
    ("140101002002", "柳林村", "village", "河西乡", "示范县", "太原市"),
    ("140101002003", "河西社区", "community", "河西乡", "示范县", "太原市"),
    ("140101002004", "河西煤业公司", "enterprise", "河西乡", "示范县", "太原市"),
    ("140202001001", "东山村", "village", "东山镇", "东山县", "大同市"),
    ("140202001002", "东山社区", "community", "东山镇", "东山县", "大同市"),
]
# tier and risk score per unit, for 2022-11 and 2022-12
TIERS_NOV = [
    "orange",
    "yellow",
    "red",
    "blue",
    "blue",
    "yellow",
    "red",
    "yellow",
    "orange",
    "blue",
    "yellow",
    "blue",
]
TIERS_DEC = [
    "red",
    "orange",
    "red",
    "yellow",
    "blue",
    "yellow",
    "red",
    "orange",
    "red",
    "blue",
    "orange",
    "blue",
]
# 南街社区 is red with a lower risk score (66) than 西关村's orange (72): lists put tier first.
RISK_DEC = [91.5, 72.0, 66.0, 41.0, 5.5, 33.0, 95.0, 55.0, 80.5, 3.0, 60.0, 8.0]
_P = {
    "red": (0.05, 0.15, 0.30, 0.50),
    "orange": (0.10, 0.25, 0.45, 0.20),
    "yellow": (0.30, 0.45, 0.20, 0.05),
    "blue": (0.80, 0.15, 0.04, 0.01),
}

REASONS = [
    {
        "feature": "dispute_unresolved_90d",
        "value": 3,
        "contribution": 0.62,
        "group": "dispute",
        "text_zh": "未化解矛盾纠纷3起，高于同类村庄平均0.4起",
    },
    {
        "feature": "petition_12m",
        "value": 2,
        "contribution": 0.35,
        "group": "petition",
        "text_zh": "近12个月信访2件",
    },
    {
        "feature": "hazard_open",
        "value": 1,
        "contribution": 0.21,
        "group": "hazard",
        "text_zh": "尚有1项风险隐患未整改",
    },
    {
        "feature": "migrant_ratio",
        "value": 0.31,
        "contribution": 0.08,
        "group": "static",
        "text_zh": "流动人口占比31%",
    },
]
PROTECTIVE = [
    {
        "feature": "mediators",
        "value": 6,
        "contribution": -0.18,
        "group": "static",
        "text_zh": "调解员6名，多于同类平均",
    },
]


RELATIVE = {
    "red": {"red": 2.4, "orange_or_worse": 1.6},
    "orange": {"red": 1.2, "orange_or_worse": 1.3},
    "yellow": {"red": 0.6, "orange_or_worse": 0.7},
    "blue": {"red": 0.2, "orange_or_worse": 0.3},
}
# Earlier months, scored after the fact (sanling score's first run): 2021-01 … 2022-10.
HISTORY_MONTHS = [f"2021-{m:02d}" for m in range(1, 13)] + [f"2022-{m:02d}" for m in range(1, 11)]


LATE_RECORDS = {
    0: {"events": 2, "escalations": 1, "corrections": 0, "window_months": 12},
    1: {"events": 0, "escalations": 0, "corrections": 0, "window_months": 12},
}


def history(month_index: int) -> list[str]:
    """Each unit's forecast tier in an earlier month: a slow deterministic cycle around November's."""
    order = ["blue", "yellow", "orange", "red"]
    return [order[(order.index(t) + (month_index + i) // 5) % 4] for i, t in enumerate(TIERS_NOV)]


def observed(month_index: int) -> list[str]:
    """What then happened: the forecast tier, one lower every third unit-month (a quiet month)."""
    order = ["blue", "yellow", "orange", "red"]
    return [
        order[max(order.index(t) - ((month_index + i) % 3 == 0), 0)]
        for i, t in enumerate(history(month_index))
    ]


def _scores(tiers: list[str], risk: list[float]) -> list[dict]:
    out = []
    for i, ((uid, *_), t, r) in enumerate(zip(UNITS, tiers, risk, strict=True)):
        p = _P[t]
        out.append(
            {
                "unit_id": uid,
                "tier": t,
                "risk_score": r,
                "probabilities": dict(zip(("blue", "yellow", "orange", "red"), p, strict=True)),
                "reasons": REASONS if t in ("red", "orange") else REASONS[2:],
                "protective": PROTECTIVE,
                "relative_risk": RELATIVE[t],
                "tier_set": ["orange", "red"] if t == "red" else [t],
                "reporting_intensity": {
                    "label_zh": "网格员每千人",
                    "value": 3.2 - 0.4 * (i % 4),
                    "peer_mean": 2.0,
                    "ratio": round((3.2 - 0.4 * (i % 4)) / 2.0, 2),
                },
                # 东关村's figures hold two late-entered events and a later escalation; 西关村's none.
                "late_records": LATE_RECORDS.get(i),
            }
        )
    return out


def seed(engine) -> dict[str, str]:
    """Write the world into a fresh store; returns the raw tokens by name."""
    units = pd.DataFrame(UNITS, columns=["unit_id", "unit_name", "unit_type", "township", "county", "city"])
    months = [f"2021-{m:02d}" for m in range(1, 13)] + [f"2022-{m:02d}" for m in range(1, 13)]
    em = []
    for i, (uid, *_rest) in enumerate(UNITS):
        for j, m in enumerate(months):
            if (i + j) % 3 == 0:
                em.append((uid, m, "dispute", 1 + (i + j) % 4))
            if (i * 7 + j) % 5 == 0:
                em.append((uid, m, "hazard", 1 + j % 2))
            if (i + 2 * j) % 11 == 0 and j >= 12:
                em.append((uid, m, "petition", 1))
    # red-rule pseudo-categories for the province view: units 0, 2 in 2022; units 0, 1, 6 in 2021
    for uid, m, c in [
        (UNITS[0][0], "2022-05", "criminal"),
        (UNITS[2][0], "2022-08", "petition_escalated"),
        (UNITS[0][0], "2021-03", "casualties"),
        (UNITS[1][0], "2021-07", "criminal"),
        (UNITS[6][0], "2021-10", "criminal"),
    ]:
        em.append((uid, m, c, 1))
    event_months = pd.DataFrame(em, columns=["unit_id", "month", "category", "n"])
    open_events = pd.DataFrame(
        [
            ("E1", UNITS[0][0], "dispute", "土地承包", "2022-10-12", 2, False),
            ("E2", UNITS[0][0], "hazard", "消防通道堵塞", "2022-12-02", 3, False),
            ("E3", UNITS[0][0], "petition", "征地拆迁", "2022-11-20", 2, True),
            ("E4", UNITS[6][0], "dispute", "劳资", "2022-12-05", 1, False),
        ],
        columns=["event_id", "unit_id", "category", "subtype", "occurred_at", "severity", "escalated"],
    )
    risk_nov = [r - 7 for r in RISK_DEC]
    with session_scope(engine) as s:
        upsert_units(s, units)
        for j, month in enumerate(HISTORY_MONTHS):
            save_scores(
                s, {"as_of": month, "model_version": "3", "backfilled": True}, _scores(history(j), risk_nov)
            )
        save_scores(s, {"as_of": "2022-11", "model_version": "3"}, _scores(TIERS_NOV, risk_nov))
        save_scores(s, {"as_of": "2022-12", "model_version": "3"}, _scores(TIERS_DEC, RISK_DEC))
        replace_event_history(s, event_months, open_events)
        outcomes = [
            (u[0], m, t)
            for j, m in enumerate(HISTORY_MONTHS)
            for u, t in zip(UNITS, observed(j), strict=True)
        ]
        # November's window (December) is known: 南街社区, November's one red warning, did turn red
        outcomes += [(u[0], "2022-11", t) for u, t in zip(UNITS, TIERS_DEC, strict=True)]
        replace_observed_tiers(s, outcomes)
        return {
            "township": create_token(s, "township", "城关镇", "王芳"),
            "other": create_token(s, "township", "河西乡", "李强"),
            "analyst": create_token(s, "analyst", None, "张分析"),
            "service": create_token(s, "service", None, "接口"),
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_app(home: Path, **settings_kw):
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'pages.db'}",
        secret_key="pages-test-secret",
        **settings_kw,
    )
    app = create_app(settings)
    tokens = seed(app.state.engine)
    return app, settings, tokens


class Served:
    """The app under uvicorn in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
