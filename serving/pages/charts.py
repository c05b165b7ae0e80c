"""Server-side charts for the unit page (no JavaScript library, no CDN): the reason contributions
as diverging HTML bars, the 24-month tier strip as inline SVG, and the month × category event grid.

Each function takes plain rows and returns markup (or a small grid the template renders)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from sanling.core.vocabulary import CATEGORIES_ZH, TIER_COLOURS, TIER_ZH


def contribution_chart(reasons: list[dict], protective: list[dict]) -> Markup:
    """Diverging horizontal bars: reasons raising risk (red, right of the zero line) and factors
    lowering it (green, left), strongest first, each labelled with its Chinese text.

    Plain HTML + CSS rather than SVG so the Chinese labels keep their size on a phone (an SVG
    scales its text down with its width). Empty input → an empty string."""
    rows = [(r, 1) for r in reasons] + [(r, -1) for r in protective]
    if not rows:
        return Markup("")
    pos = max((abs(float(r.get("contribution") or 0.0)) for r, s in rows if s > 0), default=0.0)
    neg = max((abs(float(r.get("contribution") or 0.0)) for r, s in rows if s < 0), default=0.0)
    span = (pos + neg) or 1.0
    # Room for the value labels on both sides: the zero line sits at the share of negative space.
    zero = 8 + 76 * neg / span
    parts = [f'<div class="contrib" role="img" aria-label="风险因素贡献" style="--zero:{zero:.1f}%">']
    for r, sign in rows:
        c = abs(float(r.get("contribution") or 0.0))
        w = max(0.5, 76 * c / span)
        text = escape(str(r.get("text_zh") or r.get("feature") or ""))
        sym = "+" if sign > 0 else "−"
        kind = "up" if sign > 0 else "down"
        place = f"left:{zero:.1f}%" if sign > 0 else f"right:{100 - zero:.1f}%"
        parts.append(
            f'<div class="crow {kind}" title="{text}（{sym}{c:.2f}）"><div class="clabel">{text}</div>'
            f'<div class="cbar"><span class="zero"></span><span class="bar {kind}" style="{place};width:{w:.1f}%">'
            f"<em>{sym}{c:.2f}</em></span></div></div>"
        )
    parts.append("</div>")
    return Markup("".join(parts))


def tier_strip_svg(
    history: dict[str, str], months: list[str], observed: dict[str, str] | None = None
) -> Markup:
    """One coloured cell per month (grey when the unit was not scored) as an inline SVG stretched to
    the card's width, with the first month and each January labelled underneath in HTML (text
    inside a stretched SVG would shrink on a phone). ``history`` maps ``YYYY-MM`` → forecast tier.

    With ``observed`` (``YYYY-MM`` → the tier the following window then met) a second row under the
    forecasts shows what happened, so a clerk reads forecast against outcome month by month; a
    month whose window is still open stays grey with a dashed outline."""
    n = max(len(months), 1)
    rows = 1 if observed is None else 2
    height = 10 * rows + (rows - 1)
    parts = [
        f'<svg class="strip{" two" if rows == 2 else ""}" viewBox="0 0 {10 * n} {height}" '
        f'preserveAspectRatio="none" role="img" aria-label="近{n}个月预警等级" xmlns="http://www.w3.org/2000/svg">'
    ]
    labels = []
    for i, m in enumerate(months):
        t = history.get(m)
        fill = TIER_COLOURS.get(t, "#e3e7ed")
        label = f"{m}：预测{TIER_ZH[t]}色" if t in TIER_ZH else f"{m}：未评分"
        parts.append(
            f'<rect x="{10 * i + 0.5}" y="0" width="9" height="10" fill="{fill}" data-kind="forecast" '
            f'data-month="{m}" data-tier="{t or ""}"><title>{label}</title></rect>'
        )
        if observed is not None:
            o = observed.get(m)
            fill = TIER_COLOURS.get(o, "#ffffff" if t else "#e3e7ed")
            text = f"{m}评分后的一个月：实际{TIER_ZH[o]}色" if o in TIER_ZH else f"{m}：结果待观察"
            dash = "" if o in TIER_ZH else ' stroke="#9aa4b2" stroke-width="0.4" stroke-dasharray="1 1"'
            parts.append(
                f'<rect x="{10 * i + 0.5}" y="11" width="9" height="10" fill="{fill}"{dash} data-kind="observed" '
                f'data-month="{m}" data-tier="{o or ""}"><title>{text}</title></rect>'
            )
        if i == 0 or m.endswith("-01"):
            labels.append(f'<span style="left:{100 * i / n:.2f}%">{m}</span>')
    parts.append("</svg>")
    parts.append(f'<div class="strip-labels">{"".join(labels)}</div>')
    return Markup("".join(parts))


def event_grid(rows: list[dict], months: list[str], categories: dict[str, str] | None = None) -> dict:
    """Month × category counts for the heat table: ``{"months", "rows": [{"category",
    "category_zh", "cells": [{"month", "n", "level"}], "total"}]}`` with ``level`` 0–4 (0 = none)
    relative to the largest monthly count. Only categories with at least one event are listed,
    in taxonomy order; pseudo-categories outside the taxonomy are left out."""
    names = categories or CATEGORIES_ZH
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["category"], r["month"])
        counts[key] = counts.get(key, 0) + int(r["n"])
    top = max((v for (c, m), v in counts.items() if c in names and m in months), default=0)
    out = []
    for cat, zh in names.items():
        cells = [counts.get((cat, m), 0) for m in months]
        if not any(cells):
            continue
        out.append(
            {
                "category": cat,
                "category_zh": zh,
                "total": sum(cells),
                "cells": [
                    {"month": m, "n": v, "level": 0 if v == 0 else 1 + min(3, int(3 * v / top))}
                    for m, v in zip(months, cells, strict=True)
                ],
            }
        )
    return {"months": months, "rows": out}
