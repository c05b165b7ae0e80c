"""What ``sanling backtest`` adds for the analyst who audits the list (docs/metrics.md): the
conformal tier sets' coverage by unit type, each township's hit rate and PAI, the metrics apart for
visited and not-visited rows when the data directory holds ``followups``, and the groups whose
calibration is off. Wires the pure functions of ``sanling.models`` to the data directory."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.core.config import Config
from sanling.pipeline.context import say


def audit_summary(result, config: Config, ds) -> dict:
    """The ``summary`` keys this adds to ``metrics.json``: ``conformal``, ``townships``,
    ``residual_by_intensity`` (when the units carry a reporting intensity) and, with a followups
    table, ``acted_on`` (``result`` is the backtest's :class:`BacktestResult`, ``ds`` the dataset)."""
    from sanling.models.acted_on import acted_on_metrics, visited_in_window
    from sanling.models.conformal import DEFAULT_LEVEL, coverage_by_group
    from sanling.models.intensity import reporting_intensity, residual_by_decile
    from sanling.models.township_capacity import township_capacity
    from sanling.pipeline.ingest.followups import check_followups

    out: dict = {}
    main = result.predictions["lightgbm"][0]
    if result.tier_sets is not None:
        cov = coverage_by_group(result.tier_sets, result.y, result.meta["unit_type"].astype(str))
        out["conformal"] = {"level": DEFAULT_LEVEL, "calibrated_on": "validation months of each fold", **cov}
    out["townships"] = township_capacity(result.meta, result.y, main)
    found = reporting_intensity(ds.units, config.reporting_effort)
    if found is not None:
        values, label = found
        x = values.reindex(result.meta["unit_id"].astype(str)).to_numpy(dtype=np.float64)
        preds = {k: p for k, (p, _) in result.predictions.items()}
        out["residual_by_intensity"] = {"label_zh": label, "deciles": residual_by_decile(result.y, preds, x)}
    visits, line = check_followups(ds.source, ds.units, ds.workdir)
    if line:
        say(line)
    if visits is not None:
        visited = visited_in_window(result.meta, visits, config.horizon_months)
        out["acted_on"] = acted_on_metrics(result.y, result.predictions, visited)
        say(
            f"followups: {len(visits):,} visits; {int(visited.sum()):,} of {len(visited):,} backtest rows visited "
            "in their forecast window (summary.acted_on)"
        )
    return out


def coverage_line(summary: dict) -> str | None:
    """One printed line on the tier sets' coverage, or None without them."""
    c = summary.get("conformal")
    if not c:
        return None
    by = ", ".join(
        f"{k} {v['coverage']:.1%}" for k, v in c["by_unit_type"].items() if np.isfinite(v["coverage"])
    )
    return (
        f"tier sets at {c['level']:.0%}: coverage {c['overall']['coverage']:.1%} overall ({by}); "
        f"mean size {c['overall']['mean_size']:.2f} tiers"
    )


# What the served model carries from its backtest (GET /v1/model): only these summary keys.
BACKTEST_SUMMARY_KEYS = ("calibration_by_group", "townships", "conformal", "acted_on")


def model_audit_info(model, labelled, config: Config, reg, backtest: dict | None) -> dict:
    """The bundle ``info`` this adds at ``sanling train``: the conformal thresholds calibrated on the
    model's own validation months (``conformal``), and from the backtest of the same data and
    configuration its ``calibration_by_group``, per-township ``townships`` (hit rate, PAI),
    ``conformal_coverage`` and ``acted_on`` (``backtest_summary``)."""
    from sanling.models.conformal import calibrate_on_validation, fitted_rows

    labelled = fitted_rows(model, labelled)
    ct = calibrate_on_validation(
        model.predict_proba,
        labelled,
        labelled["tier"].to_numpy(dtype=np.int64),
        config.model.validation_periods,
    )
    summary = {}
    if backtest:
        try:
            summary = reg.backtest_summary(backtest["run_id"])
        except Exception as e:  # an older backtest run without metrics.json: the model still trains
            say(f"warning: could not read the backtest's metrics.json ({type(e).__name__}: {e})")
    return {
        "conformal": ct.to_dict(),
        "backtest_summary": {k: summary[k] for k in BACKTEST_SUMMARY_KEYS if k in summary},
    }


def audit_rows(labelled: pd.DataFrame, model, config: Config) -> pd.DataFrame:
    """The rows of ``labelled`` that :func:`model_audit_info` reads — its latest ``validation_periods``
    months up to the model's last training month — plus one month before them, so that it picks
    the same months as from the whole frame; a smaller frame to pass than a filtered copy of all of it
    (2.75 GB at province size)."""
    months = np.sort(labelled["as_of"].astype(str).unique())
    months = months[months <= model.train_window_[1]][-(config.model.validation_periods + 1) :]
    return labelled[labelled["as_of"].astype(str).isin(months)]


def model_audit_view(info: dict) -> dict:
    """What ``GET /v1/model`` shows of a bundle's ``info`` (older bundles have none of it):
    ``calibration_by_group``, ``calibration_warnings``, per-township ``townships`` (``hit_rate``,
    ``pai``), the tier sets' ``conformal`` level and backtest coverage, and ``acted_on``."""
    from sanling.models.group_calibration import calibration_warnings

    summary = (info or {}).get("backtest_summary") or {}
    overall = (info or {}).get("backtest", {}).get("lightgbm.ece")
    conformal = (info or {}).get("conformal")
    return {
        "calibration_by_group": summary.get("calibration_by_group"),
        "calibration_warnings": calibration_warnings(summary.get("calibration_by_group"), overall),
        "townships": summary.get("townships"),
        "conformal": None
        if not conformal
        else {"level": conformal["level"], "backtest_coverage": summary.get("conformal")},
        "acted_on": summary.get("acted_on"),
    }
