"""Jinja rendering for the reports: one environment over ``templates/`` (HTML autoescaped), and the
cell formatting every table shares. Tables are passed to templates as plain data
(:class:`Table`), never as pre-built markup."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)


def render(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return _ENV.get_template(template).render(**context)


def fmt(v: object, digits: int = 4) -> str:
    """A number with ``digits`` decimals, ``–`` for missing; anything else as text."""
    if isinstance(v, float | np.floating):
        return "–" if not np.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    return str(v)


def pct(v: object) -> str:
    return "–" if not np.isfinite(v) else f"{v:.1%}"


@dataclass
class Table:
    """A table as the templates draw it: header, rows of (text, best?) cells, a CSS class per row."""

    columns: list[str]
    rows: list[list[tuple[str, bool]]]
    row_classes: list[str] = field(default_factory=list)


def table(
    frame: pd.DataFrame,
    formats: dict[str, Callable[[object], str]] | None = None,
    bold: dict[str, set[int]] | None = None,
    row_class: dict[int, str] | None = None,
) -> Table:
    """``frame`` → :class:`Table`; ``formats`` per column (default :func:`fmt`), ``bold`` marks the
    best cells (column → row positions), ``row_class`` a CSS class per row position."""
    formats, bold, row_class = formats or {}, bold or {}, row_class or {}
    rows = [
        [
            (formats.get(col, fmt)(v), i in bold.get(col, set()))
            for col, v in zip(frame.columns, row, strict=True)
        ]
        for i, row in enumerate(frame.itertuples(index=False))
    ]
    return Table([str(c) for c in frame.columns], rows, [row_class.get(i, "") for i in range(len(rows))])
