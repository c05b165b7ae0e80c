"""Calibration within groups: a model can be calibrated overall and off within one unit type or
county (its villages over-warned, its enterprises under-warned). ``summary.calibration_by_group``
of the backtest (CONTRACT §4) holds the ECE of P(tier ≥ orange) per group; this module reads it and
says where a group's ECE is more than :data:`WARN_FACTOR` times the overall one — in the report, in
``sanling drift`` and in ``GET /v1/model``. Pure: dicts in, sentences out."""

from __future__ import annotations

import math

WARN_FACTOR = 2.0
GROUP_ZH: dict[str, str] = {"unit_type": "单位类型", "county": "县区"}


def calibration_warnings(
    by_group: dict | None, overall_ece: float | None, *, factor: float = WARN_FACTOR
) -> list[str]:
    """One sentence per group whose ECE exceeds ``factor`` × ``overall_ece``; [] when either is unknown.

    ``by_group``: ``{"unit_type": {"village": ece, …}, "county": {…}}`` (values may also be dicts
    with an ``ece`` key)."""
    if not by_group or overall_ece is None or not math.isfinite(float(overall_ece)) or overall_ece <= 0:
        return []
    out = []
    for kind, groups in by_group.items():
        for name, value in (groups or {}).items():
            ece = value.get("ece") if isinstance(value, dict) else value
            if ece is None or not math.isfinite(float(ece)):
                continue
            if float(ece) > factor * float(overall_ece):
                out.append(
                    f"calibration: {GROUP_ZH.get(kind, kind)} {name} ECE {float(ece):.3f} is more than "
                    f"{factor:g}× the overall {float(overall_ece):.3f} — its probabilities are off; "
                    "read its tiers with care and check the reliability plot"
                )
    return out
