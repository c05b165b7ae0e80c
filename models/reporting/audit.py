"""The backtest report's sections for the analyst who audits the list (docs/metrics.md): the tier
sets' coverage by unit type, the metrics apart for visited and not-visited rows with how to read a
quiet month after a visit, and the groups whose calibration is off. Built from the ``summary`` of
``metrics.json`` only, so the report says exactly what the file holds."""

from __future__ import annotations

import pandas as pd

from sanling.models.group_calibration import WARN_FACTOR, calibration_warnings
from sanling.models.reporting.render import fmt, pct, table

ACTED_ON_NOTE = (
    "A unit visited (双排查) in its forecast window and quiet afterwards is not simply a false alarm: the "
    "visit may be what kept it quiet. Read the two rows apart. If red precision is much lower on visited "
    "rows than on the others while the model warned them as often, the warnings were probably acted on "
    "and some incidents prevented — the model is not worse there, the outcome was changed. If visited "
    "rows are as red as before, the visits did not change the outcome. The visits never enter the "
    "model (it would learn 'visited → safe'); they only split this evaluation."
)


def audit_sections(metrics: dict) -> list[dict]:
    """Report sections (``{"title", "note", "blocks"}``) for ``summary.conformal``, ``summary.acted_on``
    and ``summary.calibration_by_group`` — each only when the summary holds it."""
    s = metrics.get("summary", {}) if isinstance(metrics, dict) else {}
    out = []
    c = s.get("conformal")
    if c:
        rows = [{"unit type": "all", **c["overall"]}] + [
            {"unit type": k, **v} for k, v in c["by_unit_type"].items()
        ]
        frame = pd.DataFrame(rows, columns=["unit type", "coverage", "mean_size", "n"])
        out.append(
            _section(
                f"等级区间 Tier sets at {c['level']:.0%}",
                "Each unit's conformal set of tiers (e.g. {橙, 红}) should hold the observed tier in "
                f"{c['level']:.0%} of rows. Thresholds per unit type, calibrated on the validation months "
                "of each fold's model. Coverage far below the level means the sets are too narrow for "
                "that type; mean size says how much the forecast hedges.",
                {"kind": "table", "table": table(frame, {"coverage": pct, "mean_size": lambda v: fmt(v, 2)})},
            )
        )
    a = s.get("acted_on")
    if a:
        keys = ("rps", "ece", "red_recall", "red_precision")
        rows = []
        for part in ("visited", "not_visited"):
            m = a[part].get("models", {}).get("lightgbm", {})
            red = a[part].get("red_share")
            rows.append(
                {"rows": part, "n": a[part]["n_rows"], "red share": float("nan") if red is None else red}
                | {k: m.get(k, float("nan")) for k in keys}
            )
        frame = pd.DataFrame(rows)
        out.append(
            _section(
                "排查与结果 Visited and not-visited rows (lightgbm)",
                ACTED_ON_NOTE,
                {"kind": "table", "table": table(frame, {"red share": pct})},
            )
        )
    r = s.get("residual_by_intensity")
    if r and r.get("deciles"):
        frame = pd.DataFrame(r["deciles"])
        keep = ["decile", "n", "intensity_min", "intensity_max", "observed_ge_yellow", "observed_ge_orange"]
        keep += [
            c
            for c in frame.columns
            if c.startswith("residual_") and c.split(".", 1)[1] in ("lightgbm", "oracle")
        ]
        two = {c: (lambda v: fmt(v, 2)) for c in ("intensity_min", "intensity_max")}
        out.append(
            _section(
                f"上报力度 Residual by reporting intensity ({r['label_zh']})",
                "Rows cut into ten equal groups by the unit's reporting intensity. Residual = observed share "
                "− mean forecast of P(≥ yellow) and P(≥ orange); negative = over-warning. A model that reads "
                "recorded counts as risk over-warns the top deciles (units whose events are looked for "
                "hardest) while the oracle's residuals stay near 0; a flat row of residuals means the model's "
                "errors do not follow how hard events are recorded.",
                {
                    "kind": "table",
                    "table": table(
                        frame[keep], {**two, "observed_ge_yellow": pct, "observed_ge_orange": pct}
                    ),
                },
            )
        )
    # The per-group ECE table itself is the model section's; this says which groups to distrust.
    warnings = calibration_warnings(
        s.get("calibration_by_group"), metrics.get("models", {}).get("lightgbm", {}).get("ece")
    )
    if warnings:
        out.append(
            _section(
                "分组校准警示 Calibration warnings",
                f"Groups whose ECE of P(≥ orange) is more than {WARN_FACTOR:g}× the overall ECE: their "
                "probabilities are off; read their tiers with care (also printed by sanling drift and served "
                "by GET /v1/model).",
                {"kind": "list", "items": warnings},
            )
        )
    return out


def _section(title: str, note: str, *blocks: dict) -> dict:
    return {"title": title, "note": note, "blocks": list(blocks)}
