"""Reasons in plain Chinese from TreeSHAP contributions.

What is explained: the calibrated log-odds of P(tier ≥ orange) — the quantity behind
``risk_score`` and the orange step of the decision (see :mod:`models.policy`). The contributions
of one unit plus the base value add up to it exactly.

How: sibling features are grouped by their registry ``group`` (every dispute window, decay and
backlog feature → "矛盾纠纷"); a group's contribution is the sum of its members'. Groups that raise
the risk are the reasons, strongest first; groups that lower it are listed separately as protective
factors. Each reason is rendered from the template of the group's strongest member, with the unit's
value and its peers' — the mean of the same unit type in the same county at the same as-of date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ReasonSpec:
    """What the explainer needs of one feature's registry declaration."""

    name: str
    label_zh: str
    template_zh: str
    group: str
    group_zh: str


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "无"
    if isinstance(v, str):
        return v
    v = float(v)
    if abs(v - round(v)) < 1e-9:
        return str(round(v))
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.1f}"


def _pct(v) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "无"
    return "无" if not np.isfinite(f) else f"{100 * f:.0f}%"


def render(spec: ReasonSpec, value, peer) -> str:
    """Fill a template; the comparison word follows the numbers, whatever the template says."""
    text = spec.template_zh.format(
        value=_fmt(value), peer=_fmt(peer), label=spec.label_zh, value_pct=_pct(value), peer_pct=_pct(peer)
    )
    try:
        v, p = float(value), float(peer)
    except (TypeError, ValueError):
        return text
    if np.isfinite(v) and np.isfinite(p):
        if v < p:
            text = text.replace("高于", "低于")
        elif v == p:
            text = text.replace("高于", "持平于")
    return text


def peer_means(
    frame: pd.DataFrame, feature_names: Sequence[str], keys: Sequence[str] = ("as_of", "county", "unit_type")
) -> pd.DataFrame:
    """Mean of each numeric feature over the same county, unit type and as-of date, row-aligned."""
    numeric = [c for c in feature_names if pd.api.types.is_numeric_dtype(frame[c])]
    means = frame.groupby(list(keys), observed=True)[numeric].transform("mean")
    return means.reindex(columns=list(feature_names))


def explain_rows(
    contrib: np.ndarray,
    values: pd.DataFrame,
    peers: pd.DataFrame,
    specs: Sequence[ReasonSpec],
    *,
    top: int = 5,
    min_abs: float = 0.01,
) -> tuple[list[list[dict]], list[list[dict]]]:
    """Grouped reasons and protective factors for each row.

    Parameters
    ----------
    contrib : (n, F) contributions, columns in ``specs`` order.
    values, peers : (n, F) the rows' feature values and their peers' means (same column order).
    specs : registry declarations of the F features.

    Returns
    -------
    (reasons, protective): per row, lists of ``{"feature", "group", "value", "contribution",
    "text_zh"}``, strongest first; contributions in log-odds units, rounded to 3 decimals.
    """
    groups = sorted({s.group for s in specs})
    gi = {g: i for i, g in enumerate(groups)}
    member = np.array([gi[s.group] for s in specs])
    n, f = contrib.shape
    onehot = np.zeros((f, len(groups)))
    onehot[np.arange(f), member] = 1.0
    group_sum = contrib @ onehot  # (n, G)
    # The strongest member of every group, per row and direction, in one pass per group.
    best = {+1: np.empty((n, len(groups)), dtype=np.int64), -1: np.empty((n, len(groups)), dtype=np.int64)}
    for g in range(len(groups)):
        cols = np.flatnonzero(member == g)
        best[+1][:, g] = cols[np.argmax(contrib[:, cols], axis=1)]
        best[-1][:, g] = cols[np.argmin(contrib[:, cols], axis=1)]
    numeric = np.array([pd.api.types.is_numeric_dtype(values.iloc[:, j]) for j in range(f)])
    num_vals = np.full((n, f), np.nan)
    num_vals[:, numeric] = values.iloc[:, np.flatnonzero(numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
    peer_vals = peers.to_numpy(dtype=np.float64, na_value=np.nan)
    text_cols = {
        j: values.iloc[:, j].astype("string").to_numpy(dtype=object, na_value=None)
        for j in np.flatnonzero(~numeric)
    }
    rounded = np.round(group_sum, 3)
    order = np.argsort(-group_sum, axis=1)
    up_ok, down_ok = group_sum >= min_abs, group_sum <= -min_abs

    def reason(r: int, g: int, sign: int) -> dict | None:
        j = best[sign][r, g]
        spec = specs[j]
        if numeric[j]:
            v = num_vals[r, j]
            value = None if np.isnan(v) else (int(v) if v.is_integer() else round(float(v), 3))
        else:
            value = text_cols[j][r]
        if value is None:  # "not recorded" moves the model but is nothing a clerk can check or fix
            return None
        return {
            "feature": spec.name,
            "group": spec.group,
            "group_zh": spec.group_zh,
            "value": value,
            "contribution": float(rounded[r, g]),
            "text_zh": render(spec, value, peer_vals[r, j]),
        }

    reasons: list[list[dict]] = []
    protective: list[list[dict]] = []
    for r in range(n):
        o = order[r]
        up = (reason(r, g, +1) for g in o if up_ok[r, g])
        down = (reason(r, g, -1) for g in o[::-1] if down_ok[r, g])
        reasons.append([x for x in up if x is not None][:top])
        protective.append([x for x in down if x is not None][:top])
    return reasons, protective
