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
from math import copysign
from typing import NamedTuple

import numpy as np
import pandas as pd

from sanling.core.vocabulary import UNIT_TYPE_ZH


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
        return UNIT_TYPE_ZH.get(v, v)  # 单位类型为社区, not …为community
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


class GroupTables(NamedTuple):
    """What choosing a row's reasons reads: each group's summed contribution per row (and rounded),
    the groups strongest first, each group's strongest member per direction, the members' values
    (numeric as float64, text as objects) and their peers' means."""

    group_sum: np.ndarray
    rounded: np.ndarray
    order: np.ndarray
    best: dict[int, np.ndarray]
    numeric: np.ndarray
    num_vals: np.ndarray
    peer_vals: np.ndarray
    text_cols: dict[int, np.ndarray]


def group_tables(
    contrib: np.ndarray, values: pd.DataFrame, peers: pd.DataFrame, specs: Sequence
) -> GroupTables:
    """The per-row group tables of ``explain_rows`` (columns of ``contrib``, ``values`` and ``peers``
    in ``specs`` order)."""
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
    return GroupTables(group_sum, rounded, order, best, numeric, num_vals, peer_vals, text_cols)


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
    t = group_tables(contrib, values, peers, specs)
    n, group_sum, best, order, rounded = len(contrib), t.group_sum, t.best, t.order, t.rounded
    numeric, num_vals, peer_vals, text_cols = t.numeric, t.num_vals, t.peer_vals, t.text_cols
    # A row's reasons: its groups in ``order`` that pass the threshold and whose strongest member has
    # a value ("not recorded" moves the model but is nothing a clerk can check or fix), the first
    # ``top``; protective factors the same from the other end. Chosen for all rows at once, so only
    # the reasons shown are rendered.
    recorded = numeric[None, :] & ~np.isnan(num_vals)
    for j, col in text_cols.items():
        recorded[:, j] = np.array([v is not None for v in col], dtype=bool)
    rows = np.arange(n)[:, None]
    chosen = {}
    for sign, ok, o in ((+1, group_sum >= min_abs, order), (-1, group_sum <= -min_abs, order[:, ::-1])):
        usable = np.take_along_axis(ok & recorded[rows, best[sign]], o, axis=1)
        usable &= np.cumsum(usable, axis=1) <= top
        r_idx, pos = np.nonzero(usable)  # row-major: per row, strongest first
        chosen[sign] = (r_idx, o[r_idx, pos])
    cache: dict[tuple, str] = {}

    def build(sign: int) -> list[list[dict]]:
        r_idx, g_idx = chosen[sign]
        j_idx = best[sign][r_idx, g_idx]
        raw = num_vals[r_idx, j_idx].tolist()
        peer = peer_vals[r_idx, j_idx].tolist()
        contribution = rounded[r_idx, g_idx].tolist()
        out: list[list[dict]] = [[] for _ in range(n)]
        for k, (r, j) in enumerate(zip(r_idx.tolist(), j_idx.tolist(), strict=True)):
            spec = specs[j]
            if numeric[j]:
                v = raw[k]
                value = int(v) if v.is_integer() else round(v, 3)
            else:
                value = text_cols[j][r]
            # the sign of a zero too: -0.0 == 0 but renders as "-0%" in a percentage
            key = (
                j,
                value,
                peer[k],
                copysign(1.0, value) if type(value) is float else 0.0,
                copysign(1.0, peer[k]),
            )
            text = cache.get(key)
            if text is None:
                text = cache[key] = render(spec, value, peer[k])
            out[r].append(
                {
                    "feature": spec.name,
                    "group": spec.group,
                    "group_zh": spec.group_zh,
                    "value": value,
                    "contribution": contribution[k],
                    "text_zh": text,
                }
            )
        return out

    return build(+1), build(-1)
