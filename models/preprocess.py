"""Fitted preprocessing: feature frame → float32 matrix. Saved inside the model so that serving
never re-codes what training learned (category codes, column order)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class FrameEncoder:
    """Turns the feature columns of a frame into a float32 matrix.

    Numeric columns are cast to float32 (missing stays NaN, which LightGBM routes natively).
    Categorical (or string) columns become integer codes of the categories seen in ``fit``; a
    category unseen in training becomes NaN.

    Parameters
    ----------
    feature_names : the model's input columns, in order.

    Examples
    --------
    >>> enc = FrameEncoder(["a", "t"]).fit(pd.DataFrame({"a": [1, 2], "t": ["x", "y"]}))
    >>> enc.transform(pd.DataFrame({"a": [3], "t": ["y"]})).tolist()
    [[3.0, 1.0]]
    """

    def __init__(self, feature_names: Sequence[str]):
        self.feature_names = list(feature_names)

    def fit(self, frame: pd.DataFrame) -> FrameEncoder:
        missing = [c for c in self.feature_names if c not in frame.columns]
        if missing:
            raise ValueError(f"feature frame lacks columns: {missing[:5]}")
        self.categories_: dict[str, list[str]] = {}
        for c in self.feature_names:
            col = frame[c]
            if isinstance(col.dtype, pd.CategoricalDtype):
                self.categories_[c] = [str(v) for v in col.cat.categories]
            elif not pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                self.categories_[c] = sorted({str(v) for v in col.dropna().unique()})
        self.categorical_indices_ = [i for i, c in enumerate(self.feature_names) if c in self.categories_]
        return self

    def transform(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """The (n, F) float32 matrix of ``frame`` — or of its positional ``rows`` only, gathered
        column by column so that no copy of the whole frame is made (province frames are GBs)."""
        n = len(frame) if rows is None else len(rows)
        out = np.empty((n, len(self.feature_names)), dtype=np.float32)
        for i, c in enumerate(self.feature_names):
            col = frame[c]
            if c in self.categories_:
                cats = pd.Index(self.categories_[c])
                values = col.astype("string").to_numpy(dtype=object, na_value=None)
                codes = cats.get_indexer(values if rows is None else values[rows])
                out[:, i] = np.where(codes < 0, np.nan, codes)
            else:
                values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float32, na_value=np.nan)
                out[:, i] = values if rows is None else values[rows]
        return out
