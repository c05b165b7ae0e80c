"""The numeric part of a feature frame: one Fortran-ordered matrix per storage dtype of the
registry (float32, and int16 for the whole-number features), each becoming one pandas block without
a copy, the columns in registry order across them.

int16 halves the memory of a count against float32 and holds the same value; a feature with a value
outside int16 (a unit with more than 32,767 events in a window) is stored as float32 instead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from sanling.features.declaration import Feature
from sanling.features.late import LateView

STORAGE_DTYPES: tuple[str, ...] = ("float32", "int16")
_INT16 = np.iinfo(np.int16)


def numeric_blocks(numeric: list[Feature], n_rows: int) -> dict[str, np.ndarray]:
    """dtype → an empty (``n_rows`` × its features) Fortran-ordered matrix (pages are committed as
    columns are written)."""
    return {
        dtype: np.empty((n_rows, sum(f.dtype == dtype for f in numeric)), dtype=dtype, order="F")
        for dtype in STORAGE_DTYPES
    }


def fits_int16(values: np.ndarray) -> bool:
    """Whether every value fits int16 (NaN does not: such a feature goes to a float32 column)."""
    return values.size == 0 or bool(values.min() >= _INT16.min and values.max() <= _INT16.max)


# Kernels that read the panel's (category × month × unit) arrays beyond its cumulative sums
# (``Panel.backlog``, ``decayed``, ``last_event``, ``max_severity``, ``oldest_open``, ``open_within``,
# the monthly tiers), and those arrays' keys in the panel's cache.
MONTH_ARRAY_KINDS = frozenset(
    {
        "decay",
        "months_since",
        "recency_decay",
        "max_severity",
        "backlog",
        "backlog_age",
        "resolution_rate",
        "tier_share",
        "tier_months",
    }
)
_MONTH_ARRAY_CACHE = frozenset(
    {"backlog", "decay", "last_event", "max_severity", "latest_res", "oldest_open", "open_within"}
    | {"monthly_tiers", "tier_cum"}
)


def month_array_keys(cache: dict) -> list:
    """The keys of a panel's cache that hold (category ×) month × unit arrays."""
    return [k for k in cache if (k[0] if isinstance(k, tuple) else k) in _MONTH_ARRAY_CACHE]


def release_month_arrays(cache: dict, kept: set, late: LateView | None) -> None:
    """Drop the month arrays of a panel's ``cache`` that are not in ``kept``, and what the late
    correction kept for the kernels that read them."""
    for key in month_array_keys(cache):
        if key not in kept:
            del cache[key]
    if late is not None:
        late.drop_month_memos()


def fill_blocks(
    blocks: dict[str, np.ndarray],
    numeric: list[Feature],
    compute: Callable[[Feature], np.ndarray],
    n_as_of: int,
    n_rows: int,
    between: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """Write each feature's ``compute(f)`` — (n_as_of | 1, rows | 1), broadcast, flattened as-of
    major — into the column of ``blocks[f.dtype]`` that its order among that dtype's features gives.
    Returns the int16 features with a value outside int16, as float32 columns (their int16 columns
    are left unwritten).

    ``between``: the features of :data:`MONTH_ARRAY_KINDS` are computed first, then ``between()``
    is called (to let their arrays go) before the other features fill the blocks — a frame of every
    month would otherwise hold those arrays on top of itself (the values do not depend on the order).
    """
    overflow: dict[str, np.ndarray] = {}
    slot, column = {}, dict.fromkeys(blocks, 0)
    for f in numeric:
        slot[f.name] = column[f.dtype]
        column[f.dtype] += 1
    order = numeric
    if between is not None:
        order = sorted(numeric, key=lambda f: f.kind not in MONTH_ARRAY_KINDS)  # stable
    for i, f in enumerate(order):
        if (
            between is not None
            and i
            and order[i - 1].kind in MONTH_ARRAY_KINDS
            and f.kind not in MONTH_ARRAY_KINDS
        ):
            between()
        values = compute(f)
        if f.dtype == "int16" and not fits_int16(values):
            overflow[f.name] = np.empty(n_as_of * n_rows, dtype=np.float32)
            overflow[f.name].reshape(n_as_of, n_rows)[...] = values
            continue
        blocks[f.dtype][:, slot[f.name]].reshape(n_as_of, n_rows)[...] = values
    return overflow


def numeric_frame(
    blocks: dict[str, np.ndarray], numeric: list[Feature], overflow: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The numeric features in registry order over ``blocks`` (column j of ``blocks[dtype]`` is the
    j-th feature of that dtype), without copying them — a pandas block's columns may sit anywhere in
    the frame; the features in ``overflow`` (name → float32 column) replace their int16 column."""
    n_rows = next(iter(blocks.values())).shape[0]
    names = [f.name for f in numeric]
    try:  # pandas ≥ 3: the blocks placed directly (a serving call builds a one-row frame: 0.3 ms)
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:  # pandas 2: by concatenation and selection, still without a copy (3.7 ms)
        parts = [
            pd.DataFrame(block, columns=[f.name for f in numeric if f.dtype == dtype], copy=False)
            for dtype, block in blocks.items()
        ]
        frame = pd.concat(parts, axis=1)[names]
    else:
        dtypes = np.array([f.dtype for f in numeric])
        frame = create_dataframe_from_blocks(
            [(block.T, np.flatnonzero(dtypes == dtype)) for dtype, block in blocks.items() if block.shape[1]],
            index=pd.RangeIndex(n_rows),
            columns=pd.Index(names),
        )
    for name, values in overflow.items():
        frame[name] = values
    return frame
