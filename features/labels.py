"""Tier labels: the outcome window's totals and the configured tier rules (docs/configuration.md).

The rules are user text, so they are parsed by a small tokenizer and recursive-descent parser —
never ``eval`` — into a tree evaluated over numpy arrays. Grammar::

    expr   := and ("or" and)*
    and    := not ("and" not)*
    not    := "not" not | cmp
    cmp    := atom (("<=" | "<" | ">=" | ">" | "==" | "!=") atom)?
    atom   := NAME | NUMBER | "(" expr ")"

A bare atom in a boolean position means "≠ 0".
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sanling.core.config import TierRules
from sanling.core.errors import ConfigError, DataError
from sanling.core.months import month_label
from sanling.features.grid import as_of_offsets

if TYPE_CHECKING:
    from sanling.features.panel import Panel

TIER_ORDER: tuple[tuple[str, int], ...] = (("red", 3), ("orange", 2), ("yellow", 1))
LABEL = "tier"
# The labelled frame's window totals of the outcomes the rules name: "next:petition_escalated".
OUTCOME_PREFIX = "next:"

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*|\.\d+|\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|==|!=|<|>|\(|\)))"
)
_CMP: dict[str, Callable] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num | name | op | kw | end
    text: str
    pos: int


def _tokenize(text: str, rule: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            col = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise ConfigError(f"tier rule '{rule}': unexpected character {text[col]!r} at position {col + 1}")
        kind = m.lastgroup or "op"
        value, start = m.group(kind), m.start(kind)
        if kind == "name" and value in ("and", "or", "not"):
            kind = "kw"
        toks.append(_Tok(kind, value, start))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, text: str, rule: str, names: Sequence[str]):
        self.toks, self.i, self.rule, self.names = _tokenize(text, rule), 0, rule, list(names)

    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _fail(self, what: str) -> ConfigError:
        tok = self._peek()
        found = f"'{tok.text}'" if tok.kind != "end" else "the end of the rule"
        return ConfigError(
            f"tier rule '{self.rule}': expected {what} but found {found} at position {tok.pos + 1}"
        )

    def parse(self) -> tuple:
        tree = self._or()
        if self._peek().kind != "end":
            raise self._fail("'and', 'or' or the end")
        return tree

    def _or(self) -> tuple:
        node = self._and()
        while self._peek().kind == "kw" and self._peek().text == "or":
            self._take()
            node = ("or", node, self._and())
        return node

    def _and(self) -> tuple:
        node = self._not()
        while self._peek().kind == "kw" and self._peek().text == "and":
            self._take()
            node = ("and", node, self._not())
        return node

    def _not(self) -> tuple:
        if self._peek().kind == "kw" and self._peek().text == "not":
            self._take()
            return ("not", self._not())
        return self._cmp()

    def _cmp(self) -> tuple:
        left = self._atom()
        if self._peek().kind == "op" and self._peek().text in _CMP:
            op = self._take().text
            return ("cmp", op, left, self._atom())
        return left

    def _atom(self) -> tuple:
        tok = self._peek()
        if tok.kind == "num":
            self._take()
            return ("num", float(tok.text))
        if tok.kind == "name":
            self._take()
            if tok.text not in self.names:
                raise ConfigError(
                    f"tier rule '{self.rule}': unknown name '{tok.text}'; valid names: {', '.join(self.names)}"
                )
            return ("name", tok.text)
        if tok.kind == "op" and tok.text == "(":
            self._take()
            node = self._or()
            if self._peek().text != ")":
                raise self._fail("')'")
            self._take()
            return node
        raise self._fail("a name, a number or '('")


def compile_rule(text: str, rule: str, names: Sequence[str]) -> tuple:
    """Parse one rule into a tree; unknown names and syntax errors raise :class:`ConfigError`
    naming the rule (and the name, with the valid names)."""
    if not text or not text.strip():
        raise ConfigError(f"tier rule '{rule}' is empty")
    return _Parser(text, rule, names).parse()


def _eval(node: tuple, values: Mapping[str, np.ndarray]):
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "name":
        return values[node[1]]
    if kind == "cmp":
        return _CMP[node[1]](_eval(node[2], values), _eval(node[3], values))
    if kind == "not":
        return ~_truth(_eval(node[1], values))
    left, right = _truth(_eval(node[1], values)), _truth(_eval(node[2], values))
    return (left | right) if kind == "or" else (left & right)


def _truth(v) -> np.ndarray:
    v = np.asarray(v)
    return v if v.dtype == bool else v != 0


def evaluate_rule(text: str, values: Mapping[str, np.ndarray], rule: str = "rule") -> np.ndarray:
    """Evaluate a rule over arrays of equal shape; returns a boolean array of that shape."""
    tree = compile_rule(text, rule, list(values))
    shape = np.shape(next(iter(values.values()))) if values else ()
    return np.broadcast_to(_truth(_eval(tree, values)), shape).copy()


def outcome_names(categories: Sequence[str]) -> list[str]:
    """The names usable in a tier rule for a taxonomy."""
    names = []
    for c in categories:
        names += [c, f"{c}_escalated", f"{c}_unresolved"]
    return [*names, "casualties", "events"]


def validate_tier_rules(tier_rules: TierRules, categories: Sequence[str]) -> None:
    """Raise :class:`ConfigError` if a rule does not parse or names an unknown outcome."""
    names = outcome_names(categories)
    for tier, _ in TIER_ORDER:
        compile_rule(getattr(tier_rules, tier), tier, names)


def window_outcomes(
    panel: Panel, as_of: Sequence[str], horizon_months: int, names: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """The totals of the outcome window (months t+1 … t+horizon) of every unit, per as-of t.

    Returns rule name → (n_as_of, n_units) int64 array (:func:`outcome_names`; only ``names`` if
    given). ``<c>_unresolved`` counts the window's events still open at the window's last day.
    Raises :class:`DataError` when an outcome window is not entirely inside the data.
    """
    t = as_of_offsets(panel, as_of)
    end = t + horizon_months
    if (end >= panel.n_months).any():
        bad = as_of[int(np.flatnonzero(end >= panel.n_months)[0])]
        raise DataError(
            f"the outcome window of as-of {bad} runs past the data's last month {panel.last_month}"
        )
    return _window_totals(panel, t, horizon_months, names)


def monthly_tiers(panel: Panel, tier_rules: TierRules) -> np.ndarray:
    """(M, U) int8: the tier each unit's own month met (a one-month window, judged at its end).

    Row m uses only events of month m and whether they were open at the end of m, so the history
    features built from it stay point in time. Cached on the panel per rules."""
    key = ("monthly_tiers", tier_rules.model_dump_json())
    if key not in panel._cache:
        t = np.arange(-1, panel.n_months - 1, dtype=np.int64)  # the window of as-of m-1 is month m
        used = rule_outcomes(tier_rules, list(panel.categories))
        outcomes = _window_totals(panel, t, 1, used, panel.total_dtype)
        panel._cache[key] = tiers_from_outcomes(outcomes, tier_rules)
    return panel._cache[key]


def _window_totals(
    panel: Panel,
    t: np.ndarray,
    horizon_months: int,
    names: Collection[str] | None = None,
    dtype: type = np.int64,
) -> dict[str, np.ndarray]:
    """Every outcome of :func:`outcome_names`, or only ``names`` (the rules name a few), as
    (n_as_of × units) ``dtype`` arrays (the labels of a frame of every month use the panel's
    ``total_dtype``: a rule compares them with numbers, the same in int32 as in int64)."""
    end = t + horizon_months
    out: dict[str, np.ndarray] = {}
    wanted = set(outcome_names(list(panel.categories)) if names is None else names)
    n_units = panel.n_units
    casualties = np.zeros((len(t), n_units), dtype=dtype) if "casualties" in wanted else None
    events = np.zeros((len(t), n_units), dtype=dtype) if "events" in wanted else None
    # Every category's open events when all are wanted (kept on the panel), else those named alone.
    unresolved = panel.open_within(horizon_months) if names is None else None
    for ci, c in enumerate(panel.categories):
        n = panel.channel("count", ci)
        count = n[end + 1].astype(dtype) - n[t + 1] if c in wanted or events is not None else None
        if c in wanted:
            out[c] = count
        if f"{c}_escalated" in wanted:
            e = panel.channel("escalated", ci)
            out[f"{c}_escalated"] = e[end + 1].astype(dtype) - e[t + 1]
        if f"{c}_unresolved" in wanted:
            still_open = unresolved[ci] if unresolved is not None else panel.open_within(horizon_months, ci)
            out[f"{c}_unresolved"] = still_open[end].astype(dtype)
        if casualties is not None:
            k = panel.channel("casualties", ci)
            casualties += k[end + 1].astype(dtype) - k[t + 1]
        if events is not None:
            events += count
    if casualties is not None:
        out["casualties"] = casualties
    if events is not None:
        out["events"] = events
    return {name: out[name] for name in outcome_names(list(panel.categories)) if name in out}


def tiers_from_outcomes(outcomes: Mapping[str, np.ndarray], tier_rules: TierRules) -> np.ndarray:
    """Tier per cell (int8: 0 blue, 1 yellow, 2 orange, 3 red): rules checked red → orange → yellow."""
    names = list(outcomes)
    shape = np.shape(next(iter(outcomes.values())))
    tiers = np.zeros(shape, dtype=np.int8)
    decided = np.zeros(shape, dtype=bool)
    for tier, level in TIER_ORDER:
        hit = _truth(_eval(compile_rule(getattr(tier_rules, tier), tier, names), outcomes))
        hit = np.broadcast_to(hit, shape) & ~decided
        tiers[hit] = level
        decided |= hit
    return tiers


def tiers_known_at(
    panel: Panel, as_of: Sequence[str], origin: str, horizon_months: int, tier_rules: TierRules
) -> np.ndarray:
    """(n_as_of, U) int8 tiers of the outcome windows of ``as_of`` as the records held them at the
    end of ``origin`` (late reports, escalations and corrections after it not yet seen). Every
    window must end by ``origin``; else :class:`DataError`."""
    known = panel.as_known(int(as_of_offsets(panel, [origin])[0]))
    return tiers_from_outcomes(window_outcomes(known, as_of, horizon_months), tier_rules)


class KnownLabels:
    """The training labels of a backtest origin as the records held them then: called with the
    training rows (``unit_id``, ``as_of``) and the origin ``'YYYY-MM'``, returns their label columns
    (:func:`label_columns`: ``tier`` and the window totals the rules name). The evaluation rows keep
    the final record's labels (docs/model.md)."""

    def __init__(self, panel: Panel, horizon_months: int, tier_rules: TierRules):
        self.panel, self.horizon, self.rules = panel, horizon_months, tier_rules
        self._last: tuple[str, Panel] | None = None  # a fold asks for its labels, then its lag

    def _known(self, origin: str) -> Panel:
        """The records as they stood at the end of ``origin`` (the latest one kept)."""
        if self._last is None or self._last[0] != origin:
            self._last = (origin, self.panel.as_known(int(as_of_offsets(self.panel, [origin])[0])))
        return self._last[1]

    def label_lag(self, origin: str) -> int:
        """``model.label_lag: auto`` at ``origin``: :func:`settled_lag` of the records as they stood
        then — how fast the data settle is learnt like everything else."""
        return settled_lag(unsettled_shares(self._known(origin), self.horizon, self.rules))

    def _outcomes(self) -> list[str]:
        return rule_outcomes(self.rules, list(self.panel.categories))

    def __call__(self, rows, origin: str) -> dict[str, np.ndarray]:
        as_of = rows["as_of"].astype(str).to_numpy()
        dates, d = np.unique(as_of, return_inverse=True)
        u = self.panel.unit_ids.get_indexer(rows["unit_id"].astype(str).to_numpy(dtype=object))
        if (u < 0).any():
            raise DataError("training rows name units outside the panel")
        labels = _labels(
            window_outcomes(self._known(origin), list(dates), self.horizon, self._outcomes()),
            self.rules,
            self.panel.categories,
        )
        out = {name: values[d, u].astype(np.float32) for name, values in labels.items()}
        out[LABEL] = labels[LABEL][d, u].astype(np.int64)
        return out


def _labels(window: Mapping[str, np.ndarray], tier_rules: TierRules, categories) -> dict[str, np.ndarray]:
    """The label arrays of outcome-window totals: ``tier`` and ``OUTCOME_PREFIX + name`` of every
    outcome the rules name (same shapes as the totals)."""
    out = {LABEL: tiers_from_outcomes(window, tier_rules)}
    for name in rule_outcomes(tier_rules, list(categories)):
        out[OUTCOME_PREFIX + name] = window[name]
    return out


def _nodes(tree: tuple):
    """Every node of a compiled rule, the tree's root first."""
    yield tree
    for child in tree[1:]:
        if isinstance(child, tuple):
            yield from _nodes(child)


def rule_outcomes(tier_rules: TierRules, categories: Sequence[str]) -> list[str]:
    """The outcomes the tier rules name (in :func:`outcome_names` order)."""
    names = outcome_names(categories)
    used = {
        node[1]
        for tier, _ in TIER_ORDER
        for node in _nodes(compile_rule(getattr(tier_rules, tier), tier, names))
        if node[0] == "name"
    }
    return [n for n in names if n in used]


def rule_thresholds(tier_rules: TierRules) -> dict[str, list[int]]:
    """For each outcome a rule compares with a number, the counts k at which the rule's truth can
    change — the k of "N ≥ k" (``dispute_unresolved >= 2`` → 2; ``x > 150`` → 151; ``x == 3`` → 3, 4).
    The rules were validated before (names and syntax)."""
    out: dict[str, set[int]] = {}
    for tier, _ in TIER_ORDER:
        text = getattr(tier_rules, tier)
        for node in _nodes(
            compile_rule(text, tier, [t.text for t in _tokenize(text, tier) if t.kind == "name"])
        ):
            if node[0] != "cmp" or {node[2][0], node[3][0]} != {"name", "num"}:
                continue
            op, left, right = node[1:]
            if left[0] == "num":  # 150 <= x  ⇔  x >= 150
                op, left, right = _MIRROR.get(op, op), right, left
            low, high = math.floor(right[1]) + 1, math.ceil(right[1])
            ks = {">=": {high}, "<": {high}, ">": {low}, "<=": {low}}.get(op, {high, low, high + 1})
            out.setdefault(left[1], set()).update(k for k in ks if k >= 1)
    return {name: sorted(ks) for name, ks in out.items()}


_MIRROR = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def label_columns(
    panel: Panel, as_of: Sequence[str], horizon_months: int, tier_rules: TierRules, rows: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The label columns of the rows of ``as_of`` × units (``rows``: a subset of the units), as
    ``build_frame`` lays them out: ``tier`` (int8, −1 where the outcome window is not entirely in the
    data) and, for every outcome the rules name, its window total ``OUTCOME_PREFIX + name``
    (float32, NaN there) — the targets of the count-structured model (models/count_levels.py)."""
    t = as_of_offsets(panel, as_of)
    n_units = panel.n_units if rows is None else len(rows)
    used = rule_outcomes(tier_rules, list(panel.categories))
    names = [OUTCOME_PREFIX + n for n in used]
    out = {LABEL: np.full((len(t), n_units), -1, dtype=np.int8)}
    out.update({n: np.full((len(t), n_units), np.nan, dtype=np.float32) for n in names})
    complete = t + horizon_months <= panel.n_months - 1
    if complete.any():
        pick = slice(None) if rows is None else rows
        window = _window_totals(panel, t[complete], horizon_months, used, panel.total_dtype)
        for name, values in _labels(window, tier_rules, panel.categories).items():
            out[name][complete] = values[:, pick]
    return {name: values.reshape(-1) for name, values in out.items()}


# How many tier labels may still change for a month to count as settled (label_lag "auto").
SETTLED_SHARE = 0.01


def unsettled_shares(
    panel: Panel, horizon_months: int, tier_rules: TierRules, *, max_lag: int = 6, n_origins: int = 3
) -> np.ndarray | None:
    """How the records settle: element ``L`` is the share of unit windows whose tier, as the records
    held it ``L`` months after the window ended, differs from the tier the records hold now.

    Read from the data itself at ``n_origins`` past months whose windows have had ``max_lag`` more
    months since (so "now" is close to final for them). ``None`` when nothing was recorded late or
    the data are too short to tell."""
    if panel.knowledge is None:
        return None
    last = panel.n_months - 1 - max_lag  # the latest origin whose windows had max_lag months more
    origins = [o for o in range(last - n_origins + 1, last + 1) if o - max_lag - horizon_months >= 0]
    if not origins:
        return None
    changed = np.zeros(max_lag + 1)
    for o in origins:
        as_of = [month_label(panel.first_month + o - lag - horizon_months) for lag in range(max_lag + 1)]
        then = tiers_known_at(panel, as_of, month_label(panel.first_month + o), horizon_months, tier_rules)
        final = tiers_from_outcomes(window_outcomes(panel, as_of, horizon_months), tier_rules)
        changed += (then != final).mean(axis=1)
    return changed / len(origins)


def settled_lag(shares: np.ndarray | None, tolerance: float = SETTLED_SHARE) -> int:
    """The fewest months after a window ends by which at most ``tolerance`` of its tier labels still
    change (0 when the records hold nothing late; the longest lag measured when none is enough)."""
    if shares is None:
        return 0
    ok = np.flatnonzero(np.asarray(shares) <= tolerance)
    return int(ok[0]) if len(ok) else len(shares) - 1


def label_lag(setting: int | str, panel: Panel, horizon_months: int, tier_rules: TierRules) -> int:
    """``model.label_lag`` resolved: an int as configured; ``"auto"`` the records' own
    :func:`settled_lag`."""
    if setting != "auto":
        return int(setting)
    return settled_lag(unsettled_shares(panel, horizon_months, tier_rules))
