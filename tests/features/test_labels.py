"""The tier-rule evaluator, the outcome totals and the as-of grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from worlds import random_units

from sanling.core.config import Config, TierRules
from sanling.core.errors import ConfigError, DataError
from sanling.features.grid import labelled_as_of, scoring_as_of
from sanling.features.labels import (
    evaluate_rule,
    outcome_names,
    tiers_from_outcomes,
    validate_tier_rules,
    window_outcomes,
)
from sanling.features.panel import build_panel

CFG = Config()


def test_precedence_and_comparisons() -> None:
    v = {"a": np.array([0, 1, 2, 3]), "b": np.array([1, 0, 1, 0])}
    np.testing.assert_array_equal(evaluate_rule("a >= 2 or b == 1 and a < 1", v), [True, False, True, True])
    np.testing.assert_array_equal(
        evaluate_rule("(a >= 2 or b == 1) and a < 3", v), [True, False, True, False]
    )
    np.testing.assert_array_equal(evaluate_rule("not a > 0.5 or a != 3 and b", v), [True, False, True, False])
    np.testing.assert_array_equal(evaluate_rule("a > 1.5", v), [False, False, True, True])


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ("dispute >= 1 or murder >= 1", "unknown name 'murder'"),
        ("__import__('os')", "unexpected character"),
        ("dispute >=", "expected a name"),
        ("(dispute >= 1", "expected ')'"),
        ("dispute 1", "expected 'and', 'or'"),
        ("", "empty"),
    ],
)
def test_bad_rules_raise_config_errors_naming_the_rule(rule: str, needle: str) -> None:
    with pytest.raises(ConfigError, match="red") as err:
        validate_tier_rules(TierRules(red=rule), list(CFG.categories))
    assert needle in str(err.value)
    if "unknown name" in needle:
        assert "petition_escalated" in str(err.value)  # lists the valid names


def test_tiers_checked_red_first() -> None:
    names = outcome_names(["dispute", "criminal"])
    out = {n: np.zeros(4, dtype=np.int64) for n in names}
    out["criminal"][:] = [0, 1, 0, 0]
    out["dispute"][:] = [0, 1, 1, 0]
    out["dispute_unresolved"][:] = [0, 0, 2, 0]
    rules = TierRules(red="criminal >= 1", orange="dispute_unresolved >= 2", yellow="dispute >= 1")
    np.testing.assert_array_equal(tiers_from_outcomes(out, rules), [0, 3, 2, 0])


def _hand_world():
    units = random_units(np.random.default_rng(0), 4)
    u0 = units["unit_id"].iloc[0]
    ts = pd.Timestamp
    events = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d", "e"],
            "unit_id": [u0] * 5,
            "occurred_at": [
                ts("2020-01-05"),
                ts("2020-02-29 22:00"),
                ts("2020-02-10"),
                ts("2020-02-03"),
                ts("2020-04-01"),
            ],
            "category": ["dispute", "dispute", "dispute", "petition", "dispute"],
            "count": [1, 2, 1, 1, 1],
            "escalated": [False, False, False, True, False],
            "casualties": [0, 0, 0, 0, 0],
            # b resolved exactly on the window's last day, c the day after, a never.
            "resolved_at": [pd.NaT, ts("2020-02-29 23:00"), ts("2020-03-01"), pd.NaT, pd.NaT],
        }
    )
    return units, events


def test_window_outcomes_by_hand() -> None:
    units, events = _hand_world()
    panel = build_panel(units, events, CFG.categories)
    out = window_outcomes(panel, ["2020-01"], 1)
    assert out["dispute"][0, 0] == 3 and out["dispute_unresolved"][0, 0] == 1  # only c is open on 02-29
    assert out["petition_escalated"][0, 0] == 1 and out["events"][0, 0] == 4
    assert out["dispute"][0, 1:].sum() == 0
    assert tiers_from_outcomes(out, CFG.tiers)[0, 0] == 3
    with pytest.raises(DataError, match="runs past"):
        window_outcomes(panel, ["2020-04"], 1)


def test_as_of_grid() -> None:
    units, events = _hand_world()
    panel = build_panel(units, events, CFG.categories)
    assert panel.last_month == "2020-04" == scoring_as_of(panel)
    assert labelled_as_of(panel, 1, 1) == ["2020-01", "2020-02", "2020-03"]
    assert labelled_as_of(panel, 1, 2) == ["2020-01", "2020-03"]
    assert labelled_as_of(panel, 3, 1) == ["2020-01"]
    assert labelled_as_of(panel, 4, 1) == []
    early = build_panel(units, events, CFG.categories, first_month="2019-11")
    assert labelled_as_of(early, 3, 1) == ["2019-11", "2019-12", "2020-01"]
    with pytest.raises(ConfigError):
        labelled_as_of(panel, 0, 1)
