"""The figures of the backtest report: each takes arrays or tables and returns a matplotlib
``Figure`` (no pyplot, no global state); :func:`sanling.models.reporting.style.save` writes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sanling.core.vocabulary import TIER_COLOURS, TIERS
from sanling.models import metrics as m
from sanling.models.reporting.style import Labels, model_style, new_figure
from sanling.models.reporting.tables import MAIN_MODEL

TOP_FEATURES = 20
RELIABILITY_MIN_ROWS = 20


def fig_class_balance(y: np.ndarray, as_of: np.ndarray, labels: Labels) -> Figure:
    """Bar chart of tier shares overall and a stacked area of the shares per as-of month."""
    fig = new_figure(figsize=(11, 4))
    ax_bar, ax_time = fig.subplots(1, 2, width_ratios=[1, 2.2])
    counts = np.bincount(y, minlength=len(TIERS))
    shares = counts / counts.sum()
    bars = ax_bar.bar([labels.tier(t) for t in TIERS], shares, color=[TIER_COLOURS[t] for t in TIERS])
    for bar, share, count in zip(bars, shares, counts, strict=True):
        ax_bar.annotate(
            f"{share:.1%}\n(n={count:,})",
            (bar.get_x() + bar.get_width() / 2, share),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax_bar.set_ylim(0, min(1.0, shares.max() * 1.3 + 0.02))
    ax_bar.set_ylabel(labels.t("占比", "share of rows"))
    ax_bar.set_title(labels.t("观测等级分布", "Observed tiers, all test rows"))

    months, month_idx = np.unique(as_of, return_inverse=True)
    per_month = np.zeros((len(months), len(TIERS)))
    np.add.at(per_month, (month_idx, y), 1)
    per_month /= per_month.sum(axis=1, keepdims=True)
    x = np.arange(len(months))
    ax_time.stackplot(
        x,
        per_month.T,
        labels=[labels.tier(t) for t in TIERS],
        colors=[TIER_COLOURS[t] for t in TIERS],
        alpha=0.85,
    )
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
    fig = new_figure(figsize=(12, 6.5))
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
            st = model_style(model, i)
            ax.plot(
                table["mean_predicted"][shown],
                table["observed_rate"][shown],
                color=st["color"],
                lw=st["lw"],
                ls=st["ls"],
                marker=st["marker"],
                ms=4,
                label=f"{model} (ECE {ece:.3f})",
            )
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
    fig = new_figure(figsize=(11, 4.6))
    tick = [labels.tier(t) for t in TIERS]
    for ax, values, title, fmt in zip(
        fig.subplots(1, 2),
        (counts, shares),
        (labels.t("计数", "counts"), labels.t("按观测等级归一化", "row-normalised (recall per tier)")),
        ("{:,.0f}", "{:.1%}"),
        strict=True,
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
    fig = new_figure(figsize=(7, 5.5))
    ax = fig.subplots()
    red = (y == m.RED).astype(np.int8)
    for i, (model, proba) in enumerate(preds.items()):
        precision, recall = m.precision_recall_curve(red, proba[:, m.RED])
        if precision.size == 0:
            continue
        ap = m.average_precision(red, proba[:, m.RED])
        st = model_style(model, i)
        ax.step(
            np.r_[0, recall],
            np.r_[precision[0], precision],
            where="post",
            color=st["color"],
            lw=st["lw"],
            ls=st["ls"],
            label=f"{model} (AP {ap:.3f})",
        )
    ax.axhline(
        red.mean(),
        color="#bbbbbb",
        ls=":",
        lw=1,
        label=labels.t(f"随机 {red.mean():.3f}", f"random = prevalence {red.mean():.3f}"),
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(labels.t("召回率", "recall (share of red units found)"))
    ax.set_ylabel(labels.t("精确率", "precision (share of flagged that were red)"))
    ax.set_title(labels.title("红色等级 精确率–召回率曲线", "Precision–recall for red, by P(red)"))
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def fig_rps_by_month(table: pd.DataFrame, labels: Labels) -> Figure:
    """Line chart of the mean RPS of each model per as-of month."""
    fig = new_figure(figsize=(11, 4.5))
    ax = fig.subplots()
    x = np.arange(len(table))
    for i, model in enumerate(table.columns):
        st = model_style(model, i)
        ax.plot(
            x,
            table[model].to_numpy(),
            color=st["color"],
            lw=st["lw"],
            ls=st["ls"],
            marker=st["marker"],
            ms=3.5,
            label=model,
        )
    _month_ticks(ax, table.index.to_numpy())
    ax.set_xlabel(labels.t("预测基准月", "as-of month"))
    ax.set_ylabel(labels.t("平均 RPS（越低越好）", "mean RPS (lower is better)"))
    ax.set_title(labels.t("各基准月 RPS", "Ranked probability score by as-of month"))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _bar_values(ax, y_pos: np.ndarray, values: np.ndarray, fmt: str) -> None:
    # inside a positive bar in white; beside the zero line in black when the bar points left
    for pos, v in zip(y_pos, values, strict=True):
        if np.isfinite(v):
            ax.annotate(
                fmt.format(v),
                (0, pos),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
                fontweight="bold",
                color="white" if v > 0 else "black",
            )


def fig_skill(table: pd.DataFrame, main: str, labels: Labels) -> Figure:
    """Bars of the main model's skill against each reference (and its oracle share), ±1.96 SE."""
    has_oracle = "oracle_share" in table and table["oracle_share"].notna().any()
    fig = new_figure(figsize=(12 if has_oracle else 6.5, 4.6))
    axes = fig.subplots(1, 2 if has_oracle else 1, squeeze=False)[0]
    y_pos = np.arange(len(table))
    refs = table["reference"].tolist()
    color = model_style(main, 0)["color"]
    ax = axes[0]
    ax.barh(
        y_pos,
        table["skill"],
        xerr=1.96 * table["skill_se"].fillna(0),
        color=color,
        capsize=4,
        label=labels.t(f"{main} 技巧", f"{main} skill"),
    )
    if "oracle_skill" in table:
        ax.scatter(
            table["oracle_skill"],
            y_pos,
            marker="|",
            s=500,
            linewidths=2.5,
            color="black",
            zorder=3,
            label=labels.t("oracle 技巧（上限）", "oracle skill (ceiling)"),
        )
    _bar_values(ax, y_pos, table["skill"].to_numpy(), "{:.1%}")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y_pos, refs)
    ax.invert_yaxis()
    ax.set_xlabel(labels.t("RPS 技巧 = 1 − RPS模型/RPS参照", "RPS skill = 1 − RPS_model / RPS_reference"))
    ax.set_title(
        labels.title(
            f"{main} 相对各参照的技巧（±1.96 SE）", f"Skill of {main} against each reference (±1.96 SE)"
        )
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    if has_oracle:
        ax2 = axes[1]
        ax2.barh(
            y_pos,
            table["oracle_share"],
            xerr=1.96 * table["oracle_share_se"].fillna(0),
            color=color,
            capsize=4,
        )
        _bar_values(ax2, y_pos, table["oracle_share"].to_numpy(), "{:.0%}")
        ax2.axvline(0, color="black", lw=0.8)
        ax2.axvline(1, color="black", lw=0.8, ls="--")
        ax2.set_yticks(y_pos, refs)
        ax2.invert_yaxis()
        ax2.set_xlabel(labels.t("捕获的 oracle 改进份额", "share of the oracle's improvement captured"))
        ax2.set_title(
            labels.title(
                "oracle 份额（±1.96 SE；1 = 真实概率）", "Oracle share (±1.96 SE; 1 = true probabilities)"
            )
        )
        ax2.grid(axis="x", alpha=0.3)
    return fig


def fig_capacity(table: pd.DataFrame, labels: Labels) -> Figure:
    """Grouped bars of hit rate and PAI per capacity, one bar per model."""
    fig = new_figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    models = list(dict.fromkeys(table["model"]))
    caps = sorted(table["capacity"].unique())
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(caps))
    for col, (ax, metric, title) in enumerate(
        zip(
            axes,
            ("hit_rate", "pai"),
            (
                labels.title("命中率（被标记的红色单位占比）", "Hit rate: share of red units flagged"),
                labels.title("PAI = 命中率 / 标记比例", "PAI = hit rate / share flagged"),
            ),
            strict=True,
        )
    ):
        for i, model in enumerate(models):
            sub = table[table["model"] == model].set_index("capacity").reindex(caps)
            ax.bar(
                x + (i - (len(models) - 1) / 2) * width,
                sub[metric].to_numpy(),
                width,
                color=model_style(model, i)["color"],
                label=model if col == 0 else None,
            )
        ax.set_xticks(x, [f"{c:.0%}" for c in caps])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel(labels.t("命中率", "hit rate"))
    axes[1].axhline(1, color="black", lw=0.8, ls=":")
    axes[1].set_ylabel("PAI")
    fig.supxlabel(
        labels.t(
            "跟进能力：每个乡镇每期可跟进的单位比例", "capacity: share of units per township followed up"
        ),
        fontsize=10,
    )
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return fig


def fig_shap(contrib: np.ndarray, values: pd.DataFrame, importance: pd.DataFrame, labels: Labels) -> Figure:
    """Mean |contribution| bars and a beeswarm-style strip of the top features (colour = feature value)."""
    top = importance.head(TOP_FEATURES)
    names = (top["label"] if labels.zh else top["feature"]).tolist()
    fig = new_figure(figsize=(13, 0.38 * len(top) + 1.8))
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
        sc = ax_swarm.scatter(
            c[known],
            pos + jitter[known],
            s=5,
            c=rank[known],
            cmap="coolwarm",
            vmin=0,
            vmax=1,
            alpha=0.7,
            lw=0,
        )
    ax_swarm.axvline(0, color="black", lw=0.8)
    ax_swarm.set_xlabel(labels.t("SHAP 贡献（正值 = 风险更高）", "SHAP contribution (positive = more risk)"))
    ax_swarm.set_title(
        labels.title(
            "逐单位贡献（颜色 = 特征值分位）", "Per-unit contributions (colour = feature value rank)"
        )
    )
    ax_swarm.grid(axis="x", alpha=0.3)
    if sc is not None:
        bar = fig.colorbar(sc, ax=ax_swarm, shrink=0.6)
        bar.set_ticks([0, 1], labels=[labels.t("低", "low"), labels.t("高", "high")])
    return fig
