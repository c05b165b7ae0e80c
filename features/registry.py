"""Every feature, declared once.

:func:`feature_registry` generates the declarations from the configured categories × families ×
windows; that one list drives the computation (:mod:`features.build` dispatches on ``kind``), the
documentation (``python -m sanling.features.docs``) and the reason texts (``template_zh``, filled by the
explainer with ``{value}`` — the unit's value — and ``{peer}`` — its peers' average).

Nothing here identifies a unit: no id, name, code or raw coordinates is ever a feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sanling.core.config import FeatureParams
from sanling.core.errors import DataError
from sanling.features.declaration import FAMILIES as FAMILIES  # re-exported: the registry's public names
from sanling.features.declaration import (
    GROUP_ZH_FIXED,
    INTEGER_KINDS,
    PER_CAPITA_COLUMNS,
    STATIC_ZH,
    YEAR_WINDOW,
    Feature,
)
from sanling.features.declaration import LONG_WINDOW as LONG_WINDOW
from sanling.features.declaration import MONTHS_SINCE_CAP as MONTHS_SINCE_CAP
from sanling.features.declaration import NON_FEATURE_UNIT_COLUMNS as NON_FEATURE_UNIT_COLUMNS
from sanling.features.declaration import REGISTRY_VERSION as REGISTRY_VERSION
from sanling.features.families import category_features, history_features, overall_features, season_features


def peer_bases(categories: Mapping[str, str]) -> list[str]:
    """The indicators whose peer averages become features: 12-month counts per category, backlog."""
    return [f"{c}_count_{YEAR_WINDOW}m" for c in categories] + ["unresolved_backlog_total"]


def _base_zh(base: str, categories: Mapping[str, str]) -> str:
    for c, zh in categories.items():
        if base == f"{c}_count_{YEAR_WINDOW}m":
            return f"近12个月{zh}"
    return "未化解事件"


def _peer_features(categories: Mapping[str, str], params: FeatureParams) -> list[Feature]:
    g, gz = "peers", GROUP_ZH_FIXED["peers"]
    scopes = (
        ("township", "同乡镇其他单位", "the other units of the same township (all types)"),
        ("county", "同县同类单位", "the other units of the same county and unit type"),
        (
            "knn",
            f"距离最近的{params.knn_k}个单位",
            f"the {params.knn_k} nearest units by location (NaN without lat/lon)",
        ),
    )
    out = []
    for scope, scope_zh, scope_en in scopes:
        for base in peer_bases(categories):
            zh = _base_zh(base, categories)
            out.append(
                Feature(
                    f"peer_{scope}_{base}",
                    f"{scope_zh}平均{zh}",
                    f"{scope_zh}{zh}平均{{value}}起",
                    f"peer_{scope}",
                    g,
                    gz,
                    None,
                    YEAR_WINDOW if base.endswith("_12m") else None,
                    f"mean of {base} over {scope_en}, excluding the unit itself; NaN when there is none",
                    1,
                    f"peer_{scope}",
                    base=base,
                )
            )
    return out


def _per_capita_features(categories: Mapping[str, str], static_columns: Mapping[str, str]) -> list[Feature]:
    if not any(static_columns.get(c) == "numeric" for c in PER_CAPITA_COLUMNS):
        return []
    denom = "/".join(c for c in PER_CAPITA_COLUMNS if static_columns.get(c) == "numeric")
    out = [
        Feature(
            f"{c}_per_1k_{YEAR_WINDOW}m",
            f"近12个月每千人{zh}",
            "近12个月每千人" + zh + "{value}起，同县同类单位平均{peer}起",
            "per_capita",
            c,
            zh,
            c,
            YEAR_WINDOW,
            f"{c}_count_12m per 1,000 people ({denom}); NaN if unknown",
            1,
            "per_capita",
            base=f"{c}_count_{YEAR_WINDOW}m",
        )
        for c, zh in categories.items()
    ]
    out.append(
        Feature(
            f"events_per_1k_{YEAR_WINDOW}m",
            "近12个月每千人各类事件",
            "近12个月每千人各类事件{value}起，同县同类单位平均{peer}起",
            "per_capita",
            "overall",
            GROUP_ZH_FIXED["overall"],
            None,
            YEAR_WINDOW,
            f"events_count_12m per 1,000 people ({denom}); NaN if unknown",
            1,
            "per_capita",
            base=f"events_count_{YEAR_WINDOW}m",
        )
    )
    return out


def _static_features(static_columns: Mapping[str, str]) -> list[Feature]:
    g, gz = "registry", GROUP_ZH_FIXED["registry"]
    out = []
    for col, kind in static_columns.items():
        if col == "unit_type":
            continue
        zh = STATIC_ZH.get(col, col)
        dtype = "float32" if kind == "numeric" else "category"
        out.append(
            Feature(
                col,
                zh,
                f"{zh}为{{value}}（同县同类单位平均{{peer}}）" if dtype == "float32" else f"{zh}为{{value}}",
                "static",
                g,
                gz,
                None,
                None,
                f"static registry attribute '{col}' ({'numeric' if dtype == 'float32' else 'categorical'})",
                0,
                "static",
                dtype=dtype,
            )
        )
    return out


def feature_registry(
    categories: Mapping[str, str], params: FeatureParams, static_columns: Mapping[str, str] | None = None
) -> list[Feature]:
    """All features for a taxonomy, in their stable order.

    ``categories``: canonical name → Chinese name (``Config.categories``); ``params``: windows,
    half-lives, k of the neighbour features; ``static_columns``: registry attribute → ``'numeric'`` or
    ``'category'`` (:func:`features.panel.static_columns_of`). Returns a list of :class:`Feature`.
    Raises :class:`DataError` when a static column's name collides with a generated feature.
    """
    static_columns = dict(static_columns or {})
    # unit_type leads: it is also the frame's third identity column, so frame order = registry order.
    feats: list[Feature] = [
        Feature(
            "unit_type",
            "单位类型",
            "单位类型为{value}",
            "static",
            "registry",
            GROUP_ZH_FIXED["registry"],
            None,
            None,
            "village / community / enterprise (categorical, categories sorted)",
            0,
            "static",
            dtype="category",
        )
    ]
    for c, zh in categories.items():
        feats += category_features(c, zh, params)
    feats += overall_features(params)
    feats += history_features(categories)
    feats += season_features()
    feats += _per_capita_features(categories, static_columns)
    feats += _peer_features(categories, params)
    generated = {f.name for f in feats}
    clash = sorted(set(static_columns) & (generated | {"as_of", "tier"}))
    if clash:
        raise DataError(
            f"units: attribute column(s) {', '.join(clash)} clash with generated feature names; rename them"
        )
    feats += _static_features(static_columns)
    return [replace(f, dtype="int16") if f.kind in INTEGER_KINDS else f for f in feats]
