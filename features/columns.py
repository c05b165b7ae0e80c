"""The frame's text columns, gathered from the unit registry: ids and areas as str columns, the
registry's text attributes (and ``unit_type``) as categoricals — a text attribute with a
``unit_history`` at its value valid at each row's as-of month (:func:`sanling.features.known.dated_attributes`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sanling.core.vocabulary import UNIT_TYPES
from sanling.features.panel import Panel


def string_column(panel: Panel, column: str, take: np.ndarray) -> pd.Series:
    """A str column of the units' ``column`` at rows ``take``, gathered in Arrow (cheap for millions)."""
    source = panel._memo(
        ("arrow", column),
        lambda: pa.array(panel.units[column].to_numpy(dtype=object).astype(str), type=pa.large_string()),
    )
    return pd.Series(source.take(pa.array(take)), dtype="str")


def category_column(
    panel: Panel, column: str, take: np.ndarray, month_take: np.ndarray | None = None
) -> pd.Categorical:
    """The units' ``column`` at rows ``take`` as a categorical with sorted categories; for a text
    attribute with a history, its value valid at the month offsets ``month_take`` (one per row)."""
    if column in panel.dated_categories and month_take is not None:
        codes = panel.dated[column][month_take, take]
        codes = np.where(np.isnan(codes), -1, codes).astype(np.int32)
        return pd.Categorical.from_codes(codes, categories=panel.dated_categories[column])

    def make() -> tuple[np.ndarray, list[str]]:
        values = panel.units[column]
        raw = values.astype("str").where(values.notna(), None)
        if column in panel.dated_categories:
            cats = panel.dated_categories[column]
        elif column == "unit_type":
            cats = sorted(UNIT_TYPES)
        else:
            cats = sorted(raw.dropna().unique().tolist())
        return pd.Categorical(raw, categories=cats).codes, cats

    codes, cats = panel._memo(("codes", column), make)
    return pd.Categorical.from_codes(codes[take], categories=cats)
