"""Reports people would rather look at than read: the backtest report (:func:`write_report`:
``report.html`` + PNGs) and the drift report's text (:func:`drift_markdown`) with their figures.
Layout lives in Jinja templates (``templates/``), numbers in :mod:`.tables`, figures in
:mod:`.figures` (backtest) and :mod:`.plots` (drift and notebooks), the one look in :mod:`.style`.
"""

from sanling.models.reporting.backtest import write_report
from sanling.models.reporting.drift import drift_markdown
from sanling.models.reporting.figures import fig_confusion, fig_reliability
from sanling.models.reporting.style import Labels
from sanling.models.reporting.tables import metrics_frame, skill_table

__all__ = [
    "Labels",
    "drift_markdown",
    "fig_confusion",
    "fig_reliability",
    "metrics_frame",
    "skill_table",
    "write_report",
]
