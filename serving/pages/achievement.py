"""The 三零 achievement rate (三零单位达标率) for the province view: the share of units with none of
the red-rule events (criminal case, escalated petition, casualties) in a calendar year.

The store's ``event_months`` holds monthly counts by category; the score job also writes the
pseudo-categories ``petition_escalated`` and ``casualties`` there, so the red-rule events of a unit
and month are the rows whose category is one of :data:`RED_RULE_CATEGORIES` with ``n > 0``.
(``event_months`` keeps only the recent months the unit pages show — a year "so far" and the
year before need the last 24 months, which is what it keeps.)
"""

from __future__ import annotations

import pandas as pd

from sanling.core.vocabulary import UNIT_TYPE_ZH, UNIT_TYPES

RED_RULE_CATEGORIES: tuple[str, ...] = ("criminal", "petition_escalated", "casualties")


def achievement_rates(units: pd.DataFrame, event_months: pd.DataFrame, as_of: str) -> dict:
    """三零 achievement of this year so far (January up to ``as_of``) against the whole last year.

    Parameters
    ----------
    units : one row per unit with ``unit_id, unit_type, city``.
    event_months : ``unit_id, month (YYYY-MM), category, n`` (any categories; others are ignored).
    as_of : ``YYYY-MM``, the latest scored month; "this year" is its calendar year up to that month.

    Returns ``{"year", "through", "last_year", "by_type": [...], "by_city": [...]}``; each row has
    ``n_units``, ``rate`` (this year so far) and ``rate_last`` (the whole previous year), rates in
    0–1. ``by_city`` rows are one per (city, unit type) with the unit type spelled in Chinese.
    """
    year, month = int(as_of[:4]), int(as_of[5:7])
    ev = event_months[event_months["category"].isin(RED_RULE_CATEGORIES) & (event_months["n"] > 0)]
    ev_year = ev["month"].str[:4].astype(int)
    ev_month = ev["month"].str[5:7].astype(int)
    hit_now = set(ev.loc[(ev_year == year) & (ev_month <= month), "unit_id"])
    hit_last = set(ev.loc[ev_year == year - 1, "unit_id"])
    u = units[["unit_id", "unit_type", "city"]].assign(
        ok=~units["unit_id"].isin(hit_now), ok_last=~units["unit_id"].isin(hit_last)
    )

    def _rates(keys: list[str]) -> list[dict]:
        g = (
            u.groupby(keys, sort=True)
            .agg(n_units=("unit_id", "size"), rate=("ok", "mean"), rate_last=("ok_last", "mean"))
            .reset_index()
        )
        g["unit_type_zh"] = g["unit_type"].map(UNIT_TYPE_ZH)
        order = {t: i for i, t in enumerate(UNIT_TYPES)}
        g = g.sort_values(keys, key=lambda s: s.map(order) if s.name == "unit_type" else s)
        return g.to_dict("records")

    return {
        "year": year,
        "through": as_of,
        "last_year": year - 1,
        "by_type": _rates(["unit_type"]),
        "by_city": _rates(["city", "unit_type"]),
    }
