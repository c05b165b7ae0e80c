"""Figures for the drift report and the analysts' notebooks (the backtest report's own figures live
in :mod:`sanling.models.reporting.figures`).

Every function takes tables or arrays and returns a ``matplotlib.figure.Figure`` drawn without
pyplot, so nothing global is touched; :func:`save` writes one with the CJK font set around
``savefig``. Labels are Chinese + English when a CJK font is installed, English otherwise.
Notebooks display a figure by leaving it as a cell's last expression (Jupyter renders ``Figure``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from sanling.core.vocabulary import CATEGORIES_ZH, TIER_COLOURS, TIER_ZH, TIERS
from sanling.models.drift import PSI_WARN, PSI_WATCH, TOWNSHIP_RATIO
from sanling.models.reporting.style import Labels, new_figure
from sanling.models.reporting.style import save as save  # re-exported: one import for the notebooks
from sanling.models.reporting.style import use_cjk as use_cjk

LEVEL_COLORS = {"warn": "#d62728", "watch": "#f2a02b", "ok": "#7f9fbf"}


# ---------------------------------------------------------------- drift


def fig_psi_top(features: pd.DataFrame, labels: Labels, top: int = 20) -> Figure:
    """Horizontal bars of the ``top`` largest PSI values of a :func:`models.drift.feature_drift`
    table, coloured by level, with the 0.10 and 0.25 thresholds."""
    t = features.head(top).iloc[::-1]
    fig = new_figure(figsize=(9, 0.32 * max(len(t), 3) + 1.4))
    ax = fig.subplots()
    names = [f"{z} ({f})" if labels.zh else f for z, f in zip(t["label_zh"], t["feature"], strict=True)]
    ax.barh(np.arange(len(t)), t["psi"], color=[LEVEL_COLORS[v] for v in t["level"]])
    ax.set_yticks(np.arange(len(t)), names, fontsize=8)
    ax.axvline(
        PSI_WATCH, color=LEVEL_COLORS["watch"], ls="--", lw=1, label=labels.t("关注 0.10", "watch 0.10")
    )
    ax.axvline(PSI_WARN, color=LEVEL_COLORS["warn"], ls="--", lw=1, label=labels.t("预警 0.25", "warn 0.25"))
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_xlabel(labels.t("群体稳定性指数 PSI", "population stability index"))
    ax.set_title(labels.t(f"特征漂移（前{len(t)}）", f"Feature drift, top {len(t)} by PSI"))
    ax.set_xlim(0, max(float(t["psi"].max()) * 1.1 if len(t) else 0.3, PSI_WARN * 1.3))
    ax.grid(axis="x", alpha=0.3)
    return fig


def fig_volume_by_category(
    monthly: pd.DataFrame, expected: pd.DataFrame, labels: Labels, categories: dict[str, str] | None = None
) -> Figure:
    """Small multiples, one per category: monthly counts over the reference window and the current
    month (last column of ``monthly``, a months × categories table), the reference mean and the
    seasonally adjusted expectation for the current month; the current month is red when it is
    below its 0.1 % tail or above ratio 1.8.

    ``expected``: :func:`models.drift.volume_drift` by category (columns category, expected,
    ref_mean, observed, p_low, p_high, ratio)."""
    cats = dict(CATEGORIES_ZH, **(categories or {}))
    cols = list(monthly.columns)
    n = len(cols)
    ncols = 4 if n > 4 else n
    nrows = int(np.ceil(n / ncols))
    fig = new_figure(figsize=(3.4 * ncols, 2.5 * nrows + 0.6))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    x = np.arange(len(monthly))
    e = expected.set_index("category")
    for ax, c in zip(axes, cols, strict=False):
        y = monthly[c].to_numpy(dtype=float)
        ax.plot(x[:-1], y[:-1], color="#1f5fa8", lw=1.2)
        row = e.loc[c] if c in e.index else None
        if row is not None:
            ax.axhline(row["ref_mean"], color="#888888", lw=0.8, ls=":")
            ax.plot([x[-1]], [row["expected"]], marker="_", ms=16, mew=2, color="#333333")
            bad = (
                (row["observed"] == 0 and row["expected"] >= 5)
                or row["p_low"] < 1e-3
                or (row["ratio"] >= TOWNSHIP_RATIO and row["p_high"] < 1e-3)
            )
            ax.plot([x[-1]], [y[-1]], marker="o", ms=7, color="#d62728" if bad else "#1f5fa8")
        ax.set_title(labels.name(cats.get(c, c), c) + ("" if not labels.zh else f" {c}"), fontsize=9)
        ax.set_ylim(bottom=0)
        step = max(1, len(x) // 4)
        ax.set_xticks(x[::step], [str(m) for m in monthly.index[::step]], fontsize=7, rotation=30)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(
        labels.t(
            "各类事件月度数量：点 = 本月，横线 = 预期，虚线 = 训练期月均",
            "Monthly events: dot = current month, dash = expected, dotted = reference mean",
        ),
        fontsize=10,
    )
    return fig


def fig_volume_by_township(by_township: pd.DataFrame, labels: Labels, top: int = 25) -> Figure:
    """Observed / expected event volume of the ``top`` townships furthest from expectation
    (smallest tail probability), log scale, with the 1.8× thresholds; flagged townships in red."""
    t = by_township[~by_township["new"]].sort_values("p").head(top).iloc[::-1]
    fig = new_figure(figsize=(8.5, 0.3 * max(len(t), 3) + 1.5))
    ax = fig.subplots()
    flagged = ((t["ratio"] >= TOWNSHIP_RATIO) & (t["p_high"] < 1e-3)) | (
        (t["ratio"] <= 1 / TOWNSHIP_RATIO) & (t["p_low"] < 1e-3)
    )
    ratio = t["ratio"].clip(lower=0.05).to_numpy(dtype=float)
    y = np.arange(len(t))
    ax.hlines(y, 1.0, ratio, color=np.where(flagged, "#d62728", "#7f9fbf"), lw=3)
    ax.plot(ratio, y, "o", color="#333333", ms=3)
    ax.set_yticks(
        y,
        [
            f"{s} ({o:.0f}/{e:.1f})"
            for s, o, e in zip(t["township"], t["observed"], t["expected"], strict=True)
        ],
        fontsize=8,
    )
    ax.set_xscale("log")
    lo, hi = min(float(ratio.min()), 0.45), max(float(ratio.max()), 2.2)
    ax.set_xlim(lo * 0.9, hi * 1.1)
    ticks = [
        v
        for v in (0.1, 0.25, 1 / TOWNSHIP_RATIO, 1.0, TOWNSHIP_RATIO, 3.0, 5.0, 10.0)
        if lo * 0.9 <= v <= hi * 1.1
    ]
    ax.set_xticks(ticks, [f"{v:.2g}" for v in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    for v in (1 / TOWNSHIP_RATIO, TOWNSHIP_RATIO):
        ax.axvline(v, color="#555555", ls="--", lw=0.8)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xlabel(labels.t("本月事件量 / 预期（对数轴）", "observed / expected events (log scale)"))
    ax.set_title(
        labels.t("乡镇事件量偏离（括号内：本月/预期）", "Township volume vs expected (observed/expected)")
    )
    ax.grid(axis="x", alpha=0.3, which="both")
    return fig


# ---------------------------------------------------------------- notebooks


def fig_monthly_by_category(
    monthly: pd.DataFrame,
    labels: Labels,
    categories: dict[str, str] | None = None,
    title: tuple[str, str] = ("各类事件月度数量", "Events per month by category"),
) -> Figure:
    """Stacked areas of a months × categories count table."""
    cats = dict(CATEGORIES_ZH, **(categories or {}))
    fig = new_figure(figsize=(11, 4))
    ax = fig.subplots()
    x = np.arange(len(monthly))
    ax.stackplot(
        x,
        monthly.to_numpy(dtype=float).T,
        labels=[labels.name(cats.get(c, c), c) for c in monthly.columns],
        alpha=0.85,
    )
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], [str(m) for m in monthly.index[::step]], rotation=45, ha="right", fontsize=8)
    ax.set_xlim(0, len(x) - 1)
    ax.set_ylabel(labels.t("事件数", "events"))
    ax.set_title(labels.t(*title))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def fig_heat_table(
    table: pd.DataFrame, labels: Labels, title: tuple[str, str], fmt: str = "{:.1f}", cmap: str = "OrRd"
) -> Figure:
    """A heat map of a rows × columns table with the values written in the cells."""
    values = table.to_numpy(dtype=float)
    fig = new_figure(figsize=(1.0 + 0.85 * table.shape[1], 0.9 + 0.32 * table.shape[0]))
    ax = fig.subplots()
    im = ax.imshow(values, aspect="auto", cmap=cmap)
    ax.set_xticks(
        np.arange(table.shape[1]), [str(c) for c in table.columns], rotation=30, ha="right", fontsize=8
    )
    ax.set_yticks(np.arange(table.shape[0]), [str(i) for i in table.index], fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            r, g, b, _ = im.cmap(im.norm(v))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on dark cells only
            ax.text(
                j, i, fmt.format(v), ha="center", va="center", fontsize=7, color="white" if dark else "black"
            )
    ax.set_title(labels.t(*title), fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.7)
    return fig


def fig_township_capacity(table: pd.DataFrame, labels: Labels, capacity: float = 0.10) -> Figure:
    """Per-township hit rate (share of the red units that were among those followed up) and PAI at
    one follow-up capacity, from a :func:`sanling.models.capacity.capacity_by_township` table, sorted by PAI;
    the tick marks the hit rate of random choice (the share followed up)."""
    t = table.sort_values("pai", kind="stable")
    fig = new_figure(figsize=(10, 0.3 * len(t) + 1.6))
    ax_hit, ax_pai = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(t))
    ax_hit.barh(y, t["hit_rate"], color="#d62728", alpha=0.8)
    ax_hit.plot(t["share_flagged"], y, "|", color="black", ms=10, mew=2, label=labels.t("随机", "random"))
    ax_hit.legend(fontsize=8, frameon=False, loc="lower right")
    ax_hit.set_yticks(y, t["township"].astype(str), fontsize=8)
    ax_hit.set_xlabel(labels.t("红色单位被覆盖比例", "hit rate: share of red units caught"))
    ax_hit.set_xlim(0, 1)
    ax_pai.barh(y, t["pai"], color="#1f5fa8")
    ax_pai.axvline(1.0, color="black", lw=0.8)
    ax_pai.set_xlabel(labels.t("PAI（1 = 随机）", "PAI (1 = random)"))
    fig.suptitle(
        labels.t(
            f"各乡镇跟进前{capacity:.0%}单位的命中率与 PAI",
            f"Per township, following up the top {capacity:.0%} by P(red)",
        ),
        fontsize=10,
    )
    for ax in (ax_hit, ax_pai):
        ax.grid(axis="x", alpha=0.3)
    return fig


def fig_waterfall(
    reasons: Sequence[dict], protective: Sequence[dict], base: float, total: float, labels: Labels, title: str
) -> Figure:
    """A waterfall of one unit's grouped contributions to the log-odds of P(≥ orange): from the base
    value, each reason group up, each protective group down, the rest as one bar, to the total."""
    steps = [
        (r.get("group_zh", r["group"]) if labels.zh else r["group"], float(r["contribution"]))
        for r in list(reasons) + list(protective)
    ]
    rest = total - base - sum(v for _, v in steps)
    steps.append((labels.name("其他", "other"), rest))
    fig = new_figure(figsize=(8.5, 0.42 * len(steps) + 1.8))
    ax = fig.subplots()
    start = base
    for i, (_, v) in enumerate(steps):
        ax.barh(i, v, left=start, color="#d62728" if v > 0 else "#3b6fb6", height=0.6)
        ax.annotate(
            f"{v:+.2f}",
            (start + v if v > 0 else start, i),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
        start += v
    ax.set_yticks(np.arange(len(steps)), [s for s, _ in steps], fontsize=9)
    ax.invert_yaxis()
    ax.axvline(base, color="#888888", ls=":", lw=0.9)
    ax.axvline(total, color="black", lw=0.9)
    p = 1 / (1 + np.exp(-total))
    ax.set_xlabel(
        labels.t(
            f"P(≥橙) 的对数几率：基准 {base:.2f} → {total:.2f}（P={p:.0%}）",
            f"log-odds of P(≥ orange): base {base:.2f} → {total:.2f} (P = {p:.0%})",
        )
    )
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def fig_tier_mix(tiers: pd.DataFrame, labels: Labels, title: tuple[str, str]) -> Figure:
    """Stacked bars of tier shares, one bar per row of a rows × tiers share table."""
    fig = new_figure(figsize=(9, 0.35 * len(tiers) + 1.5))
    ax = fig.subplots()
    left = np.zeros(len(tiers))
    y = np.arange(len(tiers))
    for t in TIERS:
        v = tiers[t].to_numpy(dtype=float)
        ax.barh(y, v, left=left, color=TIER_COLOURS[t], label=labels.name(TIER_ZH[t], t))
        left += v
    ax.set_yticks(y, [str(i) for i in tiers.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(ncols=4, fontsize=8, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.set_title(labels.t(*title), fontsize=10, pad=22)
    return fig


def fig_score_scatter(
    a: pd.DataFrame, b: pd.DataFrame, labels: Labels, names: tuple[str, str] = ("champion", "challenger")
) -> Figure:
    """Risk scores of the same units under two models (frames indexed by unit_id with ``risk_score``
    and ``tier``), coloured by the first model's tier, with the diagonal."""
    b = b.reindex(a.index)
    fig = new_figure(figsize=(5.8, 5.4))
    ax = fig.subplots()
    for t in TIERS:
        m = (a["tier"] == t).to_numpy()
        ax.scatter(
            a["risk_score"][m],
            b["risk_score"][m],
            s=10,
            alpha=0.7,
            color=TIER_COLOURS[t],
            label=labels.name(TIER_ZH[t], t) + f" ({names[0]})",
            lw=0,
        )
    ax.plot([0, 100], [0, 100], color="black", lw=0.8, ls="--")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel(labels.t(f"风险分（{names[0]}）", f"risk score, {names[0]}"))
    ax.set_ylabel(labels.t(f"风险分（{names[1]}）", f"risk score, {names[1]}"))
    ax.set_title(labels.t("同一批单位的风险分", "Risk scores of the same units"), fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.grid(alpha=0.3)
    return fig
