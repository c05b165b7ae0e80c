"""The human backtest report: PNG figures and one self-contained ``report.html`` beside them.

:func:`write_report` is the only function here that writes files: it computes the tables
(:mod:`.tables`), draws the figures (:mod:`.figures`) and renders ``templates/backtest.html``.
``docs/metrics.md`` explains every number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.vocabulary import TIERS
from sanling.models import metrics as m
from sanling.models.capacity import capacity_by_township
from sanling.models.reporting import figures as f
from sanling.models.reporting.audit import audit_sections
from sanling.models.reporting.render import fmt, pct, render, table
from sanling.models.reporting.style import Labels, save
from sanling.models.reporting.tables import (
    MAIN_MODEL,
    ORACLE,
    capacity_tables,
    metrics_frame,
    rps_by_month,
    shap_importance,
    skill_table,
)

META_COLUMNS: tuple[str, ...] = ("unit_id", "as_of", "township")
TITLE = "三零风险预警 回测报告 · sanling backtest report"


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


def _section(title: str, note: str, *blocks: dict) -> dict:
    return {"title": title, "note": note, "blocks": list(blocks)}


def _headline(summary: dict, main: str) -> list[dict]:
    """The sections the report leads with: the share of the best-baseline→oracle gap recovered (the
    metric of record), calibration by group, and the workload of each decision policy."""
    out = []
    share = summary.get("oracle_gap_share")
    if share is not None:
        rows = pd.DataFrame(
            [
                {
                    "measure": f"oracle_gap_share (vs best baseline: {summary.get('best_baseline')})",
                    "value": share,
                    "se": summary.get("oracle_gap_share_se"),
                },
                {
                    "measure": "oracle_share (vs persistence, the weakest baseline)",
                    "value": summary.get("oracle_share"),
                    "se": summary.get("oracle_share_se"),
                },
            ]
        )
        out.append(
            _section(
                "预测技巧 Forecast skill",
                f"oracle_gap_share = (RPS(best baseline) − RPS({main})) / (RPS(best baseline) − RPS(oracle)): "
                "the share of what the best simple method leaves to the true probabilities that the model "
                "recovers (0 = no better than it, 1 = as good as the truth). ± 1 SE clustered by unit and "
                "by month. oracle_share measures the same against persistence, the weakest baseline.",
                {"kind": "table", "table": table(rows, {"value": fmt, "se": fmt})},
            )
        )
    groups = summary.get("calibration_by_group") or {}
    if groups:
        rows = pd.DataFrame(
            [
                {"group": col, "value": name, "ece": ece}
                for col, d in groups.items()
                for name, ece in d.items()
            ]
        )
        out.append(
            _section(
                "分组校准 Calibration by group",
                f"ECE of {main}'s P(tier ≥ orange) within each unit type and county (groups under 200 rows "
                "pooled as other).",
                {"kind": "table", "table": table(rows, {"ece": fmt})},
            )
        )
    policies = summary.get("policies") or {}
    if policies:
        rows = pd.DataFrame([{"policy": k, **v} for k, v in policies.items()])
        formats = {c: pct for c in ("red_share", "red_recall", "red_precision")}
        formats["red_per_township_month"] = lambda v: fmt(v, 2)
        out.append(
            _section(
                "决策策略 Decision policies",
                f"{main}'s red list under each policy, each fitted on the calibration months of its fold: the "
                "share of units decided red, the share of next period's red units among them (recall), "
                "their precision, and how many red units a township gets per month. The configured policy "
                f"is {summary.get('policy')}.",
                {"kind": "table", "table": table(rows, formats)},
            )
        )
    return out


def write_report(
    out_dir: Path,
    *,
    meta: pd.DataFrame,
    y: np.ndarray,
    predictions: dict[str, tuple[np.ndarray, np.ndarray]],
    metrics: dict,
    shap: tuple[np.ndarray, pd.DataFrame, list[str]] | None = None,
    title: str = TITLE,
) -> Path:
    """Write the backtest report (PNGs and ``report.html``) into ``out_dir``; return the HTML path.

    Takes ``meta`` (columns unit_id, as_of, township, … aligned with ``y``), the observed tiers
    ``y`` (n,), ``predictions`` mapping a model name to ``(proba (n, 4), decided (n,))``, the
    ``metrics.json`` dict, optionally ``shap = (contributions (m, F), feature values (m, F),
    labels)`` for a sample, and a page title. The main model is ``lightgbm`` (else the first one);
    ``oracle``, when present, is drawn as the ceiling. Raises ValueError on inconsistent inputs.
    """
    y, probas, decideds = _validate(meta, y, predictions)
    frame, best, row_class = metrics_frame(metrics)
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

    def image(fig, name: str, alt: str) -> dict:
        return {"kind": "image", "src": save(fig, out_dir / name, labels).name, "alt": alt}

    sections = [
        *_headline(metrics.get("summary") or {}, main),
        _section(
            "指标总表 Metrics of all models",
            "Pooled over every fold. Green = best real model per column (oracle excluded: it is the "
            "ceiling, shown in italics). Lower is better for rps, log_loss, ece; higher for the rest. "
            "qwk, macro_f1 and red recall/precision judge the decided tier; the others the probabilities.",
            {"kind": "table", "table": table(frame, bold=best, row_class=row_class)},
        ),
    ]
    shares = np.bincount(y, minlength=len(TIERS)) / len(y)
    sections.append(
        _section(
            "等级分布 Class balance",
            " · ".join(f"{labels.tier(t)} {s:.1%}" for t, s in zip(TIERS, shares, strict=True)),
            image(f.fig_class_balance(y, as_of, labels), "class_balance.png", "class balance"),
        )
    )
    sk = skill_table(y, as_of, meta["unit_id"].astype(str).to_numpy(), ordered, main)
    if not sk.empty:
        formats = {c: pct for c in ("skill", "skill_se", "oracle_share", "oracle_share_se", "oracle_skill")}
        sections.append(
            _section(
                "技巧与 oracle 份额 Skill and oracle share",
                f"skill = 1 − RPS({main}) / RPS(reference); oracle_share = (RPS(reference) − RPS({main})) / "
                "(RPS(reference) − RPS(oracle)). Standard errors are clustered by unit and by as-of month; a share "
                "above 1 by more than ~2 SE signals a leak or a mis-aligned oracle, not a model better than "
                "the truth.",
                {"kind": "table", "table": table(sk, formats)},
                image(f.fig_skill(sk, main, labels), "skill.png", "skill"),
            )
        )
    sections.append(
        _section(
            "各月 RPS  RPS by as-of month",
            "Mean ranked probability score of each model per as-of month (lower is better).",
            image(
                f.fig_rps_by_month(rps_by_month(y, as_of, ordered), labels),
                "rps_by_month.png",
                "rps by month",
            ),
        )
    )
    sections.append(
        _section(
            "可靠性 Reliability",
            "Forecast probability against observed frequency in 10 equal-width bins; points on the diagonal "
            f"are calibrated. Bins with fewer than {f.RELIABILITY_MIN_ROWS} rows are not drawn (ECE still "
            "counts them); the lower panels count rows per bin (symlog scale).",
            image(f.fig_reliability(y, ordered, labels), "reliability.png", "reliability"),
        )
    )
    sections.append(
        _section(
            f"混淆矩阵 Confusion matrix ({main})",
            "Rows are observed tiers, columns the tiers the policy decided.",
            image(f.fig_confusion(y, decideds[main], main, labels), "confusion.png", "confusion"),
        )
    )
    sections.append(
        _section(
            "红色预警 精确率–召回率 Precision–recall for red",
            "Units ranked by P(red); AP = average precision (red_pr_auc). The dotted line is what random "
            "ranking achieves.",
            image(f.fig_pr_red(y, ordered, labels), "pr_red.png", "precision recall red"),
        )
    )
    cap = capacity_tables(meta, y, ordered)
    shown = [
        "model",
        "capacity",
        "n_flagged",
        "share_flagged",
        "n_red",
        "red_caught",
        "hit_rate",
        "precision",
        "pai",
    ]
    towns = capacity_by_township(meta, y, probas[main][:, m.RED], 0.10)
    cap_formats = {c: pct for c in ("capacity", "share_flagged", "hit_rate", "precision")}
    cap_formats["pai"] = lambda v: fmt(v, 2)
    sections.append(
        _section(
            "跟进能力 Hit rate and PAI at a follow-up capacity",
            "Each township follows up the top 5 / 10 / 20 % of its units by P(red) every as-of month. Hit rate "
            "= share of next period's red units among those flagged; PAI = hit rate / share flagged (1 = no "
            "better than random).",
            {"kind": "table", "table": table(cap[shown], cap_formats)},
            image(f.fig_capacity(cap, labels), "capacity.png", "capacity"),
            {
                "kind": "details",
                "summary": f"By township, {main} at 10 %",
                "table": table(towns, cap_formats),
            },
        )
    )
    if importance is not None:
        contrib, values, _ = shap
        contrib = np.asarray(contrib, dtype=np.float64)
        sections.append(
            _section(
                "特征贡献 SHAP summary",
                f"Mean |SHAP contribution| on a sample of {contrib.shape[0]:,} rows and the spread of per-unit "
                "contributions for the top features.",
                image(f.fig_shap(contrib, values, importance, labels), "shap_summary.png", "shap summary"),
            )
        )
    sections.extend(audit_sections(metrics))
    months = np.unique(as_of)
    page = render(
        "backtest.html",
        title=title,
        n_rows=len(y),
        months=list(months),
        horizon=metrics.get("horizon_months", "?"),
        n_units=meta["unit_id"].nunique(),
        n_townships=meta["township"].nunique(),
        main=main,
        sections=sections,
    )
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
