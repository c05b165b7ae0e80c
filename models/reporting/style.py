"""The one look of every report and figure: the CJK font (Chinese labels when one is installed,
English otherwise), the :class:`Labels` helper, each model's line style, and how a figure is made and
saved. Tier colours come from the vocabulary (``sanling.core.vocabulary.TIER_COLOURS``), the same
palette as the township pages and the Excel exports.

Figures are drawn on ``matplotlib.figure.Figure`` objects directly (no pyplot), so no global backend or
state is touched and a report can be written from any thread."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager
from matplotlib.figure import Figure

from sanling.core.vocabulary import TIER_ZH

MODEL_STYLE: dict[str, dict] = {
    "lightgbm": {"color": "#1f5fa8", "lw": 2.4, "ls": "-", "marker": "o"},
    "persistence": {"color": "#8c8c8c", "lw": 1.5, "ls": "-", "marker": "s"},
    "historical_rate": {"color": "#b5853a", "lw": 1.5, "ls": "-", "marker": "^"},
    "logistic": {"color": "#3a9a5b", "lw": 1.5, "ls": "-", "marker": "D"},
    "oracle": {"color": "#222222", "lw": 1.5, "ls": "--", "marker": "x"},
}
_EXTRA_COLORS = ("#9467bd", "#e377c2", "#17becf", "#bcbd22")
_CJK_PREFERRED = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "Noto Sans CJK JP",
    "Noto Serif CJK SC",
)
DPI = 110


# ---------------------------------------------------------------- fonts and labels


@functools.cache
def cjk_font() -> str | None:
    """Name of an installed font that can draw Chinese, or None (labels then fall back to English)."""

    def pick() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        for name in _CJK_PREFERRED:
            if name in names:
                return name
        return next((n for n in sorted(names) if "CJK" in n or "Hei" in n), None)

    found = pick()
    if found is None and shutil.which("fc-list"):
        # matplotlib's font cache predates a font installed afterwards: ask fontconfig for files
        try:
            out = subprocess.run(
                ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            path = line.split(":")[0].strip()
            if path:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        found = pick()
    return found


class Labels:
    """Chinese (with English) labels when a CJK font exists; plain English otherwise.

    ``font``: a font family name; default: the CJK font found on the machine, if any."""

    def __init__(self, font: str | None = None):
        self.font = font if font is not None else cjk_font()
        self.zh = self.font is not None

    def t(self, zh: str, en: str) -> str:
        return f"{zh}  {en}" if self.zh else en

    def title(self, zh: str, en: str) -> str:
        return f"{zh}\n{en}" if self.zh else en

    def tier(self, tier: str) -> str:
        return f"{TIER_ZH[tier]} {tier}" if self.zh else tier

    def name(self, zh: str, en: str) -> str:
        """A short name: the Chinese one when it can be drawn."""
        return zh if self.zh else en

    def rc(self) -> dict:
        fonts = [self.font, "DejaVu Sans"] if self.font else ["DejaVu Sans"]
        return {"font.family": "sans-serif", "font.sans-serif": fonts, "axes.unicode_minus": False}


def model_style(name: str, i: int) -> dict:
    """Line colour, width, style and marker of a model (other models cycle through extra colours)."""
    return MODEL_STYLE.get(
        name, {"color": _EXTRA_COLORS[i % len(_EXTRA_COLORS)], "lw": 1.5, "ls": "-", "marker": "o"}
    )


def new_figure(**kwargs) -> Figure:
    """A constrained-layout figure; fonts are looked up when it is drawn, so :func:`save` sets them."""
    return Figure(layout="constrained", **kwargs)


def save(fig: Figure, path: Path, labels: Labels | None = None) -> Path:
    """Write ``fig`` as a PNG at ``path`` with the CJK font set around ``savefig``; returns the path."""
    labels = labels or Labels()
    with mpl.rc_context(labels.rc()):
        fig.savefig(path, dpi=DPI)
    return Path(path)


def use_cjk() -> Labels:
    """Set matplotlib's global font to the CJK font (for notebooks and shap's pyplot figures);
    returns the :class:`Labels` to pass to the figure functions."""
    labels = Labels()
    mpl.rcParams.update(labels.rc())
    return labels
