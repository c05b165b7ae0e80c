"""The human backtest report: PNG plots and one self-contained ``report.html`` beside them.

:func:`write_report` is the only function that writes files; the figure builders take arrays and
return matplotlib figures, the numbers come from :mod:`models.metrics`. Figures are drawn on
``matplotlib.figure.Figure`` objects directly (no pyplot), so no global backend or state is
touched and the report can be written from any thread. Labels are Chinese when a CJK font is
installed (Debian: ``fonts-noto-cjk``), English otherwise. ``docs/metrics.md`` explains every number.
"""

from __future__ import annotations

import functools
import html
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.figure import Figure

from models import metrics as m
from pipeline.contract import TIER_ZH, TIERS

MAIN_MODEL = "lightgbm"
BASELINES: tuple[str, ...] = ("persistence", "historical_rate", "logistic")
ORACLE = "oracle"
CAPACITIES: tuple[float, ...] = (0.05, 0.10, 0.20)
TOP_FEATURES = 20
RELIABILITY_MIN_ROWS = 20
META_COLUMNS: tuple[str, ...] = ("unit_id", "as_of", "township")

MODEL_STYLE: dict[str, dict] = {
    "lightgbm": {"color": "#1f5fa8", "lw": 2.4, "ls": "-", "marker": "o"},
    "persistence": {"color": "#8c8c8c", "lw": 1.5, "ls": "-", "marker": "s"},
    "historical_rate": {"color": "#b5853a", "lw": 1.5, "ls": "-", "marker": "^"},
    "logistic": {"color": "#3a9a5b", "lw": 1.5, "ls": "-", "marker": "D"},
    "oracle": {"color": "#222222", "lw": 1.5, "ls": "--", "marker": "x"},
}
_EXTRA_COLORS = ("#9467bd", "#e377c2", "#17becf", "#bcbd22")
TIER_COLORS: dict[str, str] = {"blue": "#3b6fb6", "yellow": "#e6c229", "orange": "#f28e2b", "red": "#d62728"}
_CJK_PREFERRED = (
    "Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "Noto Sans CJK JP", "Noto Serif CJK SC",
)
_DPI = 110


# ---------------------------------------------------------------- fonts and labels


@functools.cache
def cjk_font() -> str | None:
    """Name of an installed font that can draw Chinese, or None (labels then fall back to English)."""

    def pick() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        for name in _CJK_PREFERRED:
            if name in names:
                return name
        return next((n for n in sorted(names) if "CJK" in n or "Hei" in n), None)

    found = pick()
    if found is None and shutil.which("fc-list"):
        # matplotlib's font cache predates a font installed afterwards: ask fontconfig for files
        try:
            out = subprocess.run(
                ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            path = line.split(":")[0].strip()
            if path:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = pick()
    return found


class Labels:
    """Chinese (with English) labels when a CJK font exists; plain English otherwise.

    ``font``: a font family name; default: the CJK font found on the machine, if any."""

    def __init__(self, font: str | None = None):
        self.font = font if font is not None else cjk_font()
        self.zh = self.font is not None

    def t(self, zh: str, en: str) -> str:
        return f"{zh}  {en}" if self.zh else en

    def title(self, zh: str, en: str) -> str:
        return f"{zh}\n{en}" if self.zh else en

    def tier(self, tier: str) -> str:
        return f"{TIER_ZH[tier]} {tier}" if self.zh else tier

    def name(self, zh: str, en: str) -> str:
        """A short name: the Chinese one when it can be drawn."""
        return zh if self.zh else en

    def rc(self) -> dict:
        fonts = [self.font, "DejaVu Sans"] if self.font else ["DejaVu Sans"]
        return {"font.family": "sans-serif", "font.sans-serif": fonts, "axes.unicode_minus": False}


def _style(name: str, i: int) -> dict:
    return MODEL_STYLE.get(name, {"color": _EXTRA_COLORS[i % len(_EXTRA_COLORS)], "lw": 1.5,
                                  "ls": "-", "marker": "o"})


def _figure(labels: Labels, **kwargs) -> Figure:
    # Fonts are looked up when the figure is drawn, so the CJK font is set around savefig (_save).
    return Figure(layout="constrained", **kwargs)


def _save(fig: Figure, path: Path, labels: Labels) -> str:
    with mpl.rc_context(labels.rc()):
        fig.savefig(path, dpi=_DPI)
    return path.name


# ---------------------------------------------------------------- figures


def fig_class_balance(y: np.ndarray, as_of: np.ndarray, labels: Labels) -> Figure:
    """Bar chart of tier shares overall and a stacked area of the shares per as-of month."""
    fig = _figure(labels, figsize=(11, 4))
    ax_bar, ax_time = fig.subplots(1, 2, width_ratios=[1, 2.2])
    counts = np.bincount(y, minlength=len(TIERS))
    shares = counts / counts.sum()
    bars = ax_bar.bar([labels.tier(t) for t in TIERS], shares, color=[TIER_COLORS[t] for t in TIERS])
    for bar, share, count in zip(bars, shares, counts, strict=True):
        ax_bar.annotate(f"{share:.1%}\n(n={count:,})", (bar.get_x() + bar.get_width() / 2, share),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax_bar.set_ylim(0, min(1.0, shares.max() * 1.3 + 0.02))
    ax_bar.set_ylabel(labels.t("占比", "share of rows"))
    ax_bar.set_title(labels.t("观测等级分布", "Observed tiers, all test rows"))

    months, month_idx = np.unique(as_of, return_inverse=True)
    per_month = np.zeros((len(months), len(TIERS)))
    np.add.at(per_month, (month_idx, y), 1)
    per_month /= per_month.sum(axis=1, keepdims=True)
    x = np.arange(len(months))
    ax_time.stackplot(x, per_month.T, labels=[labels.tier(t) for t in TIERS],
                      colors=[TIER_COLORS[t] for t in TIERS], alpha=0.85)
    _month_ticks(ax_time, months)
    ax_time.set_ylim(0, 1)
    ax_time.set_xlim(x[0], max(x[-1], x[0] + 1))
    ax_time.set_ylabel(labels.t("占比", "share of units"))
    ax_time.set_xlabel(labels.t("预测基准月", "as-of month"))
    ax_time.set_title(labels.t("各基准月等级构成", "Tier mix by as-of month"))
    ax_time.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return fig


def _month_ticks(ax, months: np.ndarray) -> None:
    step = max(1, int(np.ceil(len(months) / 12)))
    ticks = np.arange(0, len(months), step)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(months[i]) for i in ticks], rotation=45, ha="right", fontsize=8)


def fig_reliability(y: np.ndarray, preds: dict[str, np.ndarray], labels: Labels) -> Figure:
    """Reliability diagrams of P(≥ orange) and P(red) for every model, with bin counts beneath."""
    fig = _figure(labels, figsize=(12, 6.5))
    axes = fig.subplots(2, 2, height_ratios=[3, 1], sharex=True)
    targets = [(m.ORANGE, labels.t("P(≥橙)", "P(tier ≥ orange)")), (m.RED, labels.t("P(红)", "P(red)"))]
    edges = np.linspace(0, 1, 11)
    for col, (tier, name) in enumerate(targets):
        ax, ax_n = axes[0, col], axes[1, col]
        outcome = (y >= tier).astype(np.int8)
        ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=1, ls=":", label=labels.t("完美校准", "perfect"))
        for i, (model, proba) in enumerate(preds.items()):
            p = m.p_at_least(proba, tier)
            table = m.reliability_table(outcome, p, bins=10)
            # a bin of a handful of rows is noise, not miscalibration; the counts panel shows them all
            shown = table["n"].to_numpy() >= RELIABILITY_MIN_ROWS
            ece = m.expected_calibration_error(outcome, p)
            st = _style(model, i)
            ax.plot(table["mean_predicted"][shown], table["observed_rate"][shown], color=st["color"],
                    lw=st["lw"], ls=st["ls"], marker=st["marker"], ms=4, label=f"{model} (ECE {ece:.3f})")
            ax_n.stairs(table["n"].to_numpy(), edges, color=st["color"], lw=2 if model == MAIN_MODEL else 1.2)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel(labels.t("观测频率", "observed frequency"))
        ax.set_title(labels.t("可靠性图", "Reliability of") + f" {name}")
        ax.legend(fontsize=8, loc="upper left")
        ax.grid(alpha=0.3)
        ax_n.set_yscale("symlog", linthresh=10)
        ax_n.set_ylabel(labels.t("行数", "rows per bin"))
        ax_n.set_xlabel(labels.t("预测概率", "forecast") + f" {name}")
        ax_n.grid(alpha=0.3)
    return fig


def fig_confusion(y: np.ndarray, decided: np.ndarray, model: str, labels: Labels) -> Figure:
    """Confusion matrix of decided vs observed tiers: counts and row-normalised shares."""
    counts = m.confusion(y, decided)
    row_sums = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(row_sums > 0, counts / np.maximum(row_sums, 1), np.nan)
    fig = _figure(labels, figsize=(11, 4.6))
    tick = [labels.tier(t) for t in TIERS]
    for ax, values, title, fmt in zip(
        fig.subplots(1, 2), (counts, shares),
        (labels.t("计数", "counts"), labels.t("按观测等级归一化", "row-normalised (recall per tier)")),
        ("{:,.0f}", "{:.1%}"), strict=True,
    ):
        shown = np.log1p(values) if values is counts else np.nan_to_num(values)
        im = ax.imshow(shown, cmap="Blues", vmin=0)
        for (i, j), v in np.ndenumerate(values):
            text = "–" if np.isnan(v) else fmt.format(v)
            dark = shown[i, j] > 0.6 * np.nanmax(shown) if np.nanmax(shown) > 0 else False
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "black")
        ax.set_xticks(range(len(TIERS)), tick)
        ax.set_yticks(range(len(TIERS)), tick)
        ax.set_xlabel(labels.t("判定等级", "decided tier"))
        ax.set_ylabel(labels.t("观测等级", "observed tier"))
        ax.set_title(f"{model}: {title}")
        fig.colorbar(im, ax=ax, shrink=0.8).set_ticks([])
    return fig


def fig_pr_red(y: np.ndarray, preds: dict[str, np.ndarray], labels: Labels) -> Figure:
    """Precision–recall curves of P(red) for every model, with the prevalence as the chance line."""
    fig = _figure(labels, figsize=(7, 5.5))
    ax = fig.subplots()
    red = (y == m.RED).astype(np.int8)
    for i, (model, proba) in enumerate(preds.items()):
        precision, recall = m.precision_recall_curve(red, proba[:, m.RED])
        if precision.size == 0:
            continue
        ap = m.average_precision(red, proba[:, m.RED])
        st = _style(model, i)
        ax.step(np.r_[0, recall], np.r_[precision[0], precision], where="post", color=st["color"],
                lw=st["lw"], ls=st["ls"], label=f"{model} (AP {ap:.3f})")
    ax.axhline(red.mean(), color="#bbbbbb", ls=":", lw=1,
               label=labels.t(f"随机 {red.mean():.3f}", f"random = prevalence {red.mean():.3f}"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(labels.t("召回率", "recall (share of red units found)"))
    ax.set_ylabel(labels.t("精确率", "precision (share of flagged that were red)"))
    ax.set_title(labels.title("红色等级 精确率–召回率曲线", "Precision–recall for red, by P(red)"))
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def rps_by_month(y: np.ndarray, as_of: np.ndarray, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean RPS per as-of month (rows, sorted) and model (columns)."""
    months, idx = np.unique(as_of, return_inverse=True)
    n = np.bincount(idx, minlength=len(months))
    data = {model: np.bincount(idx, weights=m.rps_per_row(y, proba), minlength=len(months)) / n
            for model, proba in preds.items()}
    return pd.DataFrame(data, index=pd.Index(months, name="as_of"))


def fig_rps_by_month(table: pd.DataFrame, labels: Labels) -> Figure:
    """Line chart of the mean RPS of each model per as-of month."""
    fig = _figure(labels, figsize=(11, 4.5))
    ax = fig.subplots()
    x = np.arange(len(table))
    for i, model in enumerate(table.columns):
        st = _style(model, i)
        ax.plot(x, table[model].to_numpy(), color=st["color"], lw=st["lw"], ls=st["ls"],
                marker=st["marker"], ms=3.5, label=model)
    _month_ticks(ax, table.index.to_numpy())
    ax.set_xlabel(labels.t("预测基准月", "as-of month"))
    ax.set_ylabel(labels.t("平均 RPS（越低越好）", "mean RPS (lower is better)"))
    ax.set_title(labels.t("各基准月 RPS", "Ranked probability score by as-of month"))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    return fig


def skill_table(y: np.ndarray, as_of: np.ndarray, preds: dict[str, np.ndarray], main: str) -> pd.DataFrame:
    """The main model's RPS skill against each other non-oracle model and its share of the oracle's
    improvement over that reference, each with a block (as-of month) standard error.

    Columns: ``reference, rps_reference, rps_diff, rps_diff_se, skill, skill_se, oracle_share,
    oracle_share_se`` (the oracle columns NaN without an oracle).
    """
    rows = []
    oracle = preds.get(ORACLE)
    for ref, proba_ref in preds.items():
        if ref in (main, ORACLE):
            continue
        diff, diff_se = m.paired_rps_difference(y, preds[main], proba_ref, as_of)
        sk, sk_se = m.skill_with_se(y, preds[main], proba_ref, as_of)
        share, share_se = (
            m.oracle_share_with_se(y, proba_ref, preds[main], oracle, as_of)
            if oracle is not None else (float("nan"), float("nan"))
        )
        rows.append({"reference": ref, "rps_reference": m.rps(y, proba_ref), "rps_diff": diff,
                     "rps_diff_se": diff_se, "skill": sk, "skill_se": sk_se,
                     "oracle_share": share, "oracle_share_se": share_se})
    if oracle is not None and main != ORACLE:
        # the ceiling: how much skill the true probabilities have over the same references
        for row in rows:
            row["oracle_skill"] = m.skill_with_se(y, oracle, preds[row["reference"]], as_of)[0]
    return pd.DataFrame(rows)


def _bar_values(ax, y_pos: np.ndarray, values: np.ndarray, fmt: str) -> None:
    # inside a positive bar in white; beside the zero line in black when the bar points left
    for pos, v in zip(y_pos, values, strict=True):
        if np.isfinite(v):
            ax.annotate(fmt.format(v), (0, pos), xytext=(4, 0), textcoords="offset points", va="center",
                        fontsize=8, fontweight="bold", color="white" if v > 0 else "black")


def fig_skill(table: pd.DataFrame, main: str, labels: Labels) -> Figure:
    """Bars of the main model's skill against each reference (and its oracle share), ±1.96 SE."""
    has_oracle = "oracle_share" in table and table["oracle_share"].notna().any()
    fig = _figure(labels, figsize=(12 if has_oracle else 6.5, 4.6))
    axes = fig.subplots(1, 2 if has_oracle else 1, squeeze=False)[0]
    y_pos = np.arange(len(table))
    refs = table["reference"].tolist()
    color = _style(main, 0)["color"]
    ax = axes[0]
    ax.barh(y_pos, table["skill"], xerr=1.96 * table["skill_se"].fillna(0), color=color, capsize=4,
            label=labels.t(f"{main} 技巧", f"{main} skill"))
    if "oracle_skill" in table:
        ax.scatter(table["oracle_skill"], y_pos, marker="|", s=500, linewidths=2.5, color="black", zorder=3,
                   label=labels.t("oracle 技巧（上限）", "oracle skill (ceiling)"))
    _bar_values(ax, y_pos, table["skill"].to_numpy(), "{:.1%}")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y_pos, refs)
    ax.invert_yaxis()
    ax.set_xlabel(labels.t("RPS 技巧 = 1 − RPS模型/RPS参照", "RPS skill = 1 − RPS_model / RPS_reference"))
    ax.set_title(labels.title(f"{main} 相对各参照的技巧（±1.96 SE）", f"Skill of {main} against each reference (±1.96 SE)"))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    if has_oracle:
        ax2 = axes[1]
        ax2.barh(y_pos, table["oracle_share"], xerr=1.96 * table["oracle_share_se"].fillna(0),
                 color=color, capsize=4)
        _bar_values(ax2, y_pos, table["oracle_share"].to_numpy(), "{:.0%}")
        ax2.axvline(0, color="black", lw=0.8)
        ax2.axvline(1, color="black", lw=0.8, ls="--")
        ax2.set_yticks(y_pos, refs)
        ax2.invert_yaxis()
        ax2.set_xlabel(labels.t("捕获的 oracle 改进份额", "share of the oracle's improvement captured"))
        ax2.set_title(labels.title("oracle 份额（±1.96 SE；1 = 真实概率）", "Oracle share (±1.96 SE; 1 = true probabilities)"))
        ax2.grid(axis="x", alpha=0.3)
    return fig


def capacity_tables(meta: pd.DataFrame, y: np.ndarray, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """:func:`models.metrics.capacity_table` for every model, ranking units by P(red)."""
    frames = [m.capacity_table(meta, y, proba[:, m.RED], CAPACITIES).assign(model=model)
              for model, proba in preds.items()]
    return pd.concat(frames, ignore_index=True)


def fig_capacity(table: pd.DataFrame, labels: Labels) -> Figure:
    """Grouped bars of hit rate and PAI per capacity, one bar per model."""
    fig = _figure(labels, figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    models = list(dict.fromkeys(table["model"]))
    caps = sorted(table["capacity"].unique())
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(caps))
    for col, (ax, metric, title) in enumerate(zip(
        axes, ("hit_rate", "pai"),
        (labels.title("命中率（被标记的红色单位占比）", "Hit rate: share of red units flagged"),
         labels.title("PAI = 命中率 / 标记比例", "PAI = hit rate / share flagged")), strict=True,
    )):
        for i, model in enumerate(models):
            sub = table[table["model"] == model].set_index("capacity").reindex(caps)
            ax.bar(x + (i - (len(models) - 1) / 2) * width, sub[metric].to_numpy(), width,
                   color=_style(model, i)["color"], label=model if col == 0 else None)
        ax.set_xticks(x, [f"{c:.0%}" for c in caps])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel(labels.t("命中率", "hit rate"))
    axes[1].axhline(1, color="black", lw=0.8, ls=":")
    axes[1].set_ylabel("PAI")
    fig.supxlabel(labels.t("跟进能力：每个乡镇每期可跟进的单位比例", "capacity: share of units per township followed up"),
                  fontsize=10)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return fig


def shap_importance(contrib: np.ndarray, values: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Mean |SHAP contribution| per feature, strongest first, with the feature name and label.

    Takes the contribution matrix (m, F), the feature values (m, F) and F display labels.
    """
    contrib = np.asarray(contrib, dtype=np.float64)
    if contrib.ndim != 2:
        raise ValueError(f"shap contributions must be a 2-D (m, F) matrix, got shape {contrib.shape}")
    if not isinstance(values, pd.DataFrame) or values.shape != contrib.shape:
        raise ValueError(f"shap feature values must be a DataFrame of shape {contrib.shape}, "
                         f"got {getattr(values, 'shape', type(values).__name__)}")
    if len(names) != contrib.shape[1]:
        raise ValueError(f"shap labels: {len(names)} given for {contrib.shape[1]} features")
    return (pd.DataFrame({"feature": [str(c) for c in values.columns], "label": [str(n) for n in names],
                          "mean_abs": np.nanmean(np.abs(contrib), axis=0), "column": np.arange(contrib.shape[1])})
            .sort_values("mean_abs", ascending=False, kind="stable").reset_index(drop=True))


def fig_shap(contrib: np.ndarray, values: pd.DataFrame, importance: pd.DataFrame, labels: Labels) -> Figure:
    """Mean |contribution| bars and a beeswarm-style strip of the top features (colour = feature value)."""
    top = importance.head(TOP_FEATURES)
    names = (top["label"] if labels.zh else top["feature"]).tolist()
    fig = _figure(labels, figsize=(13, 0.38 * len(top) + 1.8))
    ax_bar, ax_swarm = fig.subplots(1, 2, sharey=True, width_ratios=[1, 1.6])
    y_pos = np.arange(len(top))
    ax_bar.barh(y_pos, top["mean_abs"], color="#1f5fa8")
    ax_bar.set_yticks(y_pos, names, fontsize=9)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel(labels.t("平均 |贡献|", "mean |SHAP contribution|"))
    ax_bar.set_title(labels.t(f"特征重要性（前 {len(top)}）", f"Top {len(top)} features"))
    ax_bar.grid(axis="x", alpha=0.3)

    rng = np.random.default_rng(0)  # fixed jitter: the same data draws the same picture
    rows = np.arange(contrib.shape[0])
    if rows.size > 2000:
        rows = np.sort(rng.choice(rows, 2000, replace=False))
    sc = None
    for pos, col in zip(y_pos, top["column"], strict=True):
        c = np.asarray(contrib[rows, col], dtype=np.float64)
        v = pd.to_numeric(values.iloc[rows, col], errors="coerce").to_numpy(dtype=np.float64)
        # percentile rank of the value, so skewed counts still spread over the colour scale
        rank = pd.Series(v).rank(pct=True).to_numpy()
        jitter = rng.uniform(-0.3, 0.3, rows.size)
        known = ~np.isnan(rank)
        ax_swarm.scatter(c[~known], pos + jitter[~known], s=5, color="#bbbbbb", alpha=0.6, lw=0)
        sc = ax_swarm.scatter(c[known], pos + jitter[known], s=5, c=rank[known], cmap="coolwarm",
                              vmin=0, vmax=1, alpha=0.7, lw=0)
    ax_swarm.axvline(0, color="black", lw=0.8)
    ax_swarm.set_xlabel(labels.t("SHAP 贡献（正值 = 风险更高）", "SHAP contribution (positive = more risk)"))
    ax_swarm.set_title(labels.title("逐单位贡献（颜色 = 特征值分位）", "Per-unit contributions (colour = feature value rank)"))
    ax_swarm.grid(axis="x", alpha=0.3)
    if sc is not None:
        bar = fig.colorbar(sc, ax=ax_swarm, shrink=0.6)
        bar.set_ticks([0, 1], labels=[labels.t("低", "low"), labels.t("高", "high")])
    return fig


# ---------------------------------------------------------------- HTML


def _fmt(v: object, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float | np.floating):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _html_table(frame: pd.DataFrame, formats: dict[str, Callable[[object], str]] | None = None,
                bold: dict[str, set[int]] | None = None, row_class: dict[int, str] | None = None) -> str:
    formats, bold, row_class = formats or {}, bold or {}, row_class or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for col, v in zip(frame.columns, row, strict=True):
            text = formats.get(col, _fmt)(v)
            cls = ' class="best"' if i in bold.get(col, set()) else ""
            cells.append(f"<td{cls}>{text}</td>")
        rc = f' class="{row_class[i]}"' if i in row_class else ""
        body.append(f"<tr{rc}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def metrics_frame(metrics: dict) -> tuple[pd.DataFrame, dict[str, set[int]], dict[int, str]]:
    """The models × metrics table of ``metrics.json`` with the best non-oracle value per column."""
    models = metrics.get("models") if isinstance(metrics, dict) else None
    if not isinstance(models, dict) or not models:
        raise ValueError("metrics must be the metrics.json dict with a non-empty 'models' mapping")
    rows = []
    for name, values in models.items():
        missing = [k for k in m.TIER_METRIC_KEYS if k not in values]
        if missing:
            raise ValueError(f"metrics['models']['{name}'] lacks {', '.join(missing)}")
        rows.append({"model": name, **{k: float(values[k]) for k in m.TIER_METRIC_KEYS}})
    # main model first, the oracle last, the baselines in between in their given order
    rows.sort(key=lambda r: (r["model"] == ORACLE, r["model"] != MAIN_MODEL))
    frame = pd.DataFrame(rows)
    # the oracle is the ceiling, not a competitor: the best mark goes to the best real model
    contenders = frame.index[frame["model"] != ORACLE]
    best: dict[str, set[int]] = {}
    for k in m.TIER_METRIC_KEYS:
        vals = frame.loc[contenders, k]
        if vals.notna().any():
            target = vals.max() if m.HIGHER_IS_BETTER[k] else vals.min()
            best[k] = set(vals.index[np.isclose(vals, target, rtol=0, atol=1e-12)])
    row_class = {int(i): "oracle" for i in frame.index[frame["model"] == ORACLE]}
    return frame, best, row_class


_CSS = """
body{font-family:"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei",system-ui,sans-serif;
margin:2rem auto;max-width:1200px;color:#222;line-height:1.5;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
.meta{color:#555}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}th{background:#f3f5f8}
td:first-child,th:first-child{text-align:left}td.best{background:#dff0d8;font-weight:bold}
tr.oracle td{font-style:italic;color:#555}img{max-width:100%;border:1px solid #eee;margin:.4rem 0}
.note{color:#555;font-size:.9rem}details{margin:.5rem 0}
"""


def _pct(v: object) -> str:
    return "–" if not np.isfinite(v) else f"{v:.1%}"


def _section(title: str, note: str, *parts: str) -> str:
    return f"<h2>{html.escape(title)}</h2><p class='note'>{note}</p>{''.join(parts)}"


def _img(name: str, alt: str) -> str:
    return f'<img src="{html.escape(name)}" alt="{html.escape(alt)}">'


def _validate(meta: pd.DataFrame, y: np.ndarray, predictions: dict) -> tuple[np.ndarray, dict, dict]:
    if not isinstance(meta, pd.DataFrame):
        raise ValueError(f"meta must be a DataFrame, got {type(meta).__name__}")
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"meta lacks column(s) {', '.join(missing)}")
    y = m.check_tiers(y, "y", len(meta))
    if len(y) == 0:
        raise ValueError("no rows to report on")
    if not isinstance(predictions, dict) or not predictions:
        raise ValueError("predictions must map at least one model name to (proba, decided)")
    probas, decideds = {}, {}
    for name, pair in predictions.items():
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise ValueError(f"predictions['{name}'] must be a (proba, decided) pair")
        try:
            probas[name] = m.check_proba(pair[0], len(y), f"predictions['{name}'] proba")
            decideds[name] = m.check_tiers(pair[1], f"predictions['{name}'] decided", len(y))
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    return y, probas, decideds


def write_report(
    out_dir: Path,
    *,
    meta: pd.DataFrame,
    y: np.ndarray,
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    metrics: dict,
    shap: tuple[np.ndarray, pd.DataFrame, list[str]] | None = None,
    title: str = "三零风险预警 回测报告 · sanling backtest report",
) -> Path:
    """Write the backtest report (PNGs and ``report.html``) into ``out_dir``; return the HTML path.

    Takes ``meta`` (columns unit_id, as_of, township, … aligned with ``y``), the observed tiers
    ``y`` (n,), ``predictions`` mapping a model name to ``(proba (n, 4), decided (n,))``, the
    ``metrics.json`` dict, optionally ``shap = (contributions (m, F), feature values (m, F),
    labels)`` for a sample, and a page title. The main model is ``lightgbm`` (else the first one);
    ``oracle``, when present, is drawn as the ceiling. Raises ValueError on inconsistent inputs.
    """
    y, probas, decideds = _validate(meta, y, predictions)
    table, best, row_class = metrics_frame(metrics)
    importance = None
    if shap is not None:  # checked before any drawing, so bad input costs no time
        if not isinstance(shap, tuple | list) or len(shap) != 3:
            raise ValueError("shap must be (contributions, feature values, labels)")
        importance = shap_importance(shap[0], shap[1], list(shap[2]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = Labels()
    main = MAIN_MODEL if MAIN_MODEL in probas else next(iter(probas))
    as_of = meta["as_of"].astype(str).to_numpy()
    ordered = dict(sorted(probas.items(), key=lambda kv: (kv[0] == ORACLE, kv[0] != main)))

    sections = []
    months = np.unique(as_of)
    header = (f"<h1>{html.escape(title)}</h1><p class='meta'>{len(y):,} out-of-sample rows · "
              f"{len(months)} as-of months ({html.escape(months[0])} – {html.escape(months[-1])}) · "
              f"horizon {html.escape(str(metrics.get('horizon_months', '?')))} month(s) · "
              f"{meta['unit_id'].nunique():,} units · {meta['township'].nunique():,} townships · "
              f"main model <b>{html.escape(main)}</b>. How to read it: docs/metrics.md.</p>")

    sections.append(_section(
        "指标总表 Metrics of all models",
        "Pooled over every fold. Green = best real model per column (oracle excluded: it is the "
        "ceiling, shown in italics). Lower is better for rps, log_loss, ece; higher for the rest. "
        "qwk, macro_f1 and red recall/precision judge the decided tier; the others the probabilities.",
        _html_table(table, bold=best, row_class=row_class)))

    balance = fig_class_balance(y, as_of, labels)
    shares = np.bincount(y, minlength=len(TIERS)) / len(y)
    balance_note = " · ".join(f"{labels.tier(t) if labels.zh else t} {s:.1%}" for t, s in zip(TIERS, shares, strict=True))
    sections.append(_section("等级分布 Class balance", html.escape(balance_note),
                             _img(_save(balance, out_dir / "class_balance.png", labels), "class balance")))

    sk = skill_table(y, as_of, ordered, main)
    if not sk.empty:
        formats = {c: (lambda v: _fmt(v, 4)) for c in sk.columns}
        formats.update({c: _pct for c in ("skill", "skill_se", "oracle_share", "oracle_share_se", "oracle_skill")})
        parts = [_html_table(sk, formats)]
        parts.append(_img(_save(fig_skill(sk, main, labels), out_dir / "skill.png", labels), "skill"))
        sections.append(_section(
            "技巧与 oracle 份额 Skill and oracle share",
            f"skill = 1 − RPS({html.escape(main)}) / RPS(reference); oracle_share = (RPS(reference) − "
            f"RPS({html.escape(main)})) / (RPS(reference) − RPS(oracle)). Standard errors treat each "
            "as-of month as one block; a share above 1 by more than ~2 SE signals a leak or a "
            "mis-aligned oracle, not a model better than the truth.", *parts))

    rps_table = rps_by_month(y, as_of, ordered)
    sections.append(_section(
        "各月 RPS  RPS by as-of month", "Mean ranked probability score of each model per as-of month (lower is better).",
        _img(_save(fig_rps_by_month(rps_table, labels), out_dir / "rps_by_month.png", labels), "rps by month")))

    sections.append(_section(
        "可靠性 Reliability", "Forecast probability against observed frequency in 10 equal-width bins; "
        f"points on the diagonal are calibrated. Bins with fewer than {RELIABILITY_MIN_ROWS} rows are not "
        "drawn (ECE still counts them); the lower panels count rows per bin (symlog scale).",
        _img(_save(fig_reliability(y, ordered, labels), out_dir / "reliability.png", labels), "reliability")))

    sections.append(_section(
        f"混淆矩阵 Confusion matrix ({main})", "Rows are observed tiers, columns the tiers the policy decided.",
        _img(_save(fig_confusion(y, decideds[main], main, labels), out_dir / "confusion.png", labels), "confusion")))

    sections.append(_section(
        "红色预警 精确率–召回率 Precision–recall for red", "Units ranked by P(red); AP = average precision "
        "(red_pr_auc). The dotted line is what random ranking achieves.",
        _img(_save(fig_pr_red(y, ordered, labels), out_dir / "pr_red.png", labels), "precision recall red")))

    cap = capacity_tables(meta, y, ordered)
    cap_show = cap[["model", "capacity", "n_flagged", "share_flagged", "n_red", "red_caught", "hit_rate",
                    "precision", "pai"]]
    towns = m.capacity_by_township(meta, y, probas[main][:, m.RED], 0.10)
    pct_cols = {c: _pct for c in ("capacity", "share_flagged", "hit_rate", "precision")}
    sections.append(_section(
        "跟进能力 Hit rate and PAI at a follow-up capacity",
        "Each township follows up the top 5 / 10 / 20 % of its units by P(red) every as-of month. "
        "Hit rate = share of next period's red units among those flagged; PAI = hit rate / share "
        "flagged (1 = no better than random).",
        _html_table(cap_show, {**pct_cols, "pai": lambda v: _fmt(v, 2)}),
        _img(_save(fig_capacity(cap, labels), out_dir / "capacity.png", labels), "capacity"),
        f"<details><summary>By township, {html.escape(main)} at 10 %</summary>",
        _html_table(towns, {**pct_cols, "pai": lambda v: _fmt(v, 2)}), "</details>"))

    if importance is not None:
        contrib, values, _ = shap
        sections.append(_section(
            "特征贡献 SHAP summary", f"Mean |SHAP contribution| on a sample of {np.asarray(contrib).shape[0]:,} "
            "rows and the spread of per-unit contributions for the top features.",
            _img(_save(fig_shap(np.asarray(contrib, dtype=np.float64), values, importance, labels),
                       out_dir / "shap_summary.png", labels), "shap summary")))

    page = (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{header}{''.join(sections)}</body></html>")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
