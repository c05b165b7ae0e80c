"""The drift report ``drift.md``: warnings first, then the volume, township, feature and outcome
tables with their figures, rendered from ``templates/drift.md``. Takes the drift result of
``sanling.pipeline.drift_job`` (any object with its attributes: ``cur_month``, ``reference.note``,
``feature_months``, ``warnings``, ``notes``, ``by_category``, ``by_township``, ``features``,
``labels``); pure — the job writes the file."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sanling.models.reporting.render import render

_VOLUME = {
    "expected": "{:.1f}",
    "ref_mean": "{:.1f}",
    "season_factor": "{:.2f}",
    "observed": "{:.0f}",
    "ratio": "{:.2f}",
    "p": "{:.2g}",
}
_FEATURES = {
    "psi": "{:.3f}",
    "mean_ref": "{:.3g}",
    "mean_cur": "{:.3g}",
    "zero_ref": "{:.0%}",
    "zero_cur": "{:.0%}",
    "missing_cur": "{:.0%}",
}
_FEATURE_COLUMNS = [
    "feature",
    "label_zh",
    "psi",
    "level",
    "mean_ref",
    "mean_cur",
    "zero_ref",
    "zero_cur",
    "missing_cur",
]


def md_table(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    """A Markdown table of ``frame``; numbers formatted per column, ``–`` for missing."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        cells = []
        for c, v in zip(cols, row, strict=True):
            fmt = formats.get(c)
            if fmt and isinstance(v, int | float | np.number) and pd.notna(v):
                cells.append(fmt.format(v))
            else:
                cells.append("–" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def drift_markdown(result, images: dict[str, str]) -> str:
    """The text of ``drift.md`` for a drift result and the file names of its three figures."""
    r = result
    features = None
    if r.features is not None:
        features = {
            "n_warn": int((r.features["level"] == "warn").sum()),
            "n_watch": int((r.features["level"] == "watch").sum()),
            "n": len(r.features),
            "table": md_table(r.features.head(20)[_FEATURE_COLUMNS], _FEATURES),
        }
    return render(
        "drift.md",
        r=r,
        images=images,
        category_table=md_table(
            r.by_category[["category", "expected", "ref_mean", "season_factor", "observed", "ratio", "p"]],
            _VOLUME,
        ),
        township_table=md_table(
            r.by_township[["township", "expected", "observed", "ratio", "p", "new"]].head(15), _VOLUME
        ),
        features=features,
        lab=r.labels,
    )
