"""``sanling drift DIR``: the latest month against the reference — the champion's training window,
or, with no champion, every labelled as-of month but the last 12.

The feature frames come from the same feature code as training (:func:`features.build.build_frame`);
the statistics from :mod:`sanling.models.drift`; the figures and the report text from :mod:`sanling.models.reporting`. This module wires
them and is the only one here that writes files (``drift.json``, ``drift.md``, three PNGs).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.config import Config, Settings
from sanling.models import drift as d
from sanling.models.reporting import drift_markdown, plots
from sanling.pipeline.context import prepare, say
from sanling.pipeline.forecast_audit import model_audit_view

# The feature reference is a sample of as-of months (the frame of 60 months × 50,000 units would be
# large for what a PSI needs); these many, evenly spread over the reference window.
FEATURE_REFERENCE_MONTHS = 12
SCORE_REFERENCE_MONTHS = 4
# The fallback reference leaves out this many of the latest labelled as-of months.
FALLBACK_HOLDOUT = 12
# Not compared by PSI: calendar features differ between one month and a year of months by
# construction, and a peer-group average takes one value per group and month, so one month's few
# point masses against a year's always "drift"; the counts they average are compared unit by unit.
# The long-run history family (rates and tier shares since the first month) narrows by construction
# as the history grows, so a later month always looks different from the training months (PSI ~1 on
# untouched simulated data); the monthly counts it accumulates are compared instead.
SKIP_FAMILIES = frozenset({"season", "peer_township", "peer_county", "history"})


@dataclass
class Reference:
    """The months the latest one is compared with and where they come from."""

    months: list[str]
    source: str  # "champion" | "fallback"
    config: Config
    model_version: str | None = None
    feature_names: list[str] | None = None
    note: str = ""


@dataclass
class DriftResult:
    cur_month: str
    reference: Reference
    feature_months: list[str]
    features: pd.DataFrame | None
    by_category: pd.DataFrame
    by_county_category: pd.DataFrame
    by_township: pd.DataFrame
    labels: dict
    monthly: pd.DataFrame
    warnings: list[str]
    notes: list[str] = field(default_factory=list)


def _months(first: str, last: str) -> list[str]:
    return [str(p) for p in pd.period_range(first, last, freq="M")]


def fallback_reference(panel, config: Config) -> Reference:
    """Every labelled as-of month but the last :data:`FALLBACK_HOLDOUT` (all of them when fewer)."""
    from sanling.features.grid import labelled_as_of

    dates = labelled_as_of(panel, config.horizon_months, config.cadence_months)
    if not dates:
        from sanling.core.errors import DataError

        raise DataError(
            f"the data is shorter than one outcome window of {config.horizon_months} months; "
            "nothing to compare the latest month with"
        )
    keep = dates[:-FALLBACK_HOLDOUT] if len(dates) > FALLBACK_HOLDOUT else dates
    note = (
        f"no champion model: the reference is the labelled as-of months {keep[0]} … {keep[-1]} "
        f"(all but the last {FALLBACK_HOLDOUT})"
        if len(dates) > FALLBACK_HOLDOUT
        else f"no champion model and fewer than {FALLBACK_HOLDOUT + 1} labelled months: the reference is "
        f"every labelled as-of month {keep[0]} … {keep[-1]}"
    )
    return Reference(_months(keep[0], keep[-1]), "fallback", config, note=note)


def champion_reference(version: str, bundle) -> Reference:
    first, last = bundle.train_window
    return Reference(
        _months(first, last),
        "champion",
        bundle.config,
        model_version=str(version),
        feature_names=list(bundle.feature_names),
        note=f"the reference is the training window {first} … {last} of champion version {version}",
    )


def _load_champion(settings: Settings):
    """(version, bundle) of the champion, or None when no registry or no champion exists. A
    default SQLite registry that does not exist yet is not created just to find it empty."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    from sanling.core.errors import ModelError
    from sanling.models.registry import Registry

    reg = Registry(uri, settings.artifact_root, settings.model_name)
    if reg.alias_version("champion") is None:
        return None
    try:
        return reg.load_alias("champion")
    except ModelError:
        return None


def sample_months(months: list[str], k: int) -> list[str]:
    """``k`` months evenly spread over ``months`` (all of them when there are at most ``k``), always
    including the last."""
    if len(months) <= k:
        return list(months)
    idx = np.unique(np.round(np.linspace(0, len(months) - 1, k)).astype(int))
    return [months[i] for i in idx]


def _full_history(panel, months: list[str]) -> list[str]:
    """The months with a full :data:`features.registry.LONG_WINDOW` of panel history before them, when
    there are at least three; else all. The first months of a panel see truncated windows (every
    24-month count, backlog age and recency is smaller), which is not what scoring will see."""
    from sanling.core.months import month_label
    from sanling.features.registry import LONG_WINDOW

    first_full = month_label(panel.first_month + LONG_WINDOW - 1)
    full = [m for m in months if m >= first_full]
    return full if len(full) >= 3 else months


def _feature_labels(panel, config: Config) -> tuple[dict[str, str], set[str]]:
    from sanling.features.registry import feature_registry

    reg = feature_registry(config.categories, config.features, static_columns=panel.static_columns)
    return {f.name: f.label_zh for f in reg}, {f.name for f in reg if f.family in SKIP_FAMILIES}


def events_with_units(events: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The events with the unit's township, county and unit type joined on."""
    cols = [c for c in ("township", "county", "unit_type") if c not in events.columns]
    return events.merge(units[["unit_id", *cols]], on="unit_id", how="left", validate="many_to_one")


def monthly_counts(events: pd.DataFrame, months: list[str], column: str = "category") -> pd.DataFrame:
    """months × values-of-``column`` table of event counts (sum of ``count``), zeros filled."""
    month = events["occurred_at"].dt.to_period("M").astype(str)
    keep = month.isin(months)
    t = (
        events.loc[keep, "count"]
        .groupby([month[keep], events.loc[keep, column].astype(str)])
        .sum()
        .unstack(fill_value=0)
    )
    return t.reindex(index=months, fill_value=0).fillna(0).astype(np.int64)


def _incomplete_month_note(events: pd.DataFrame, cur_month: str) -> str | None:
    """A note when the latest month's events stop well before its end (a partial extract)."""
    period = pd.Period(cur_month, freq="M")
    cur = events["occurred_at"][events["occurred_at"].dt.to_period("M") == period]
    if cur.empty:
        return f"no event at all in {cur_month}: is the extract complete?"
    last_day = int(cur.max().day)
    if last_day < period.days_in_month - 5:
        return (
            f"the latest event of {cur_month} is on day {last_day}: if the month is incomplete, its "
            "volumes will look low — rerun when the month is closed"
        )
    return None


def drift_check(
    ds,
    panel,
    reference: Reference,
    cur_month: str | None = None,
    *,
    feature_months: int = FEATURE_REFERENCE_MONTHS,
    with_features: bool = True,
    with_labels: bool = True,
) -> DriftResult:
    """All drift statistics of ``cur_month`` (default: the panel's last month) against ``reference``.

    Takes the loaded dataset (``ds.units``, ``ds.events``), its panel and a :class:`Reference`.
    Feature drift compares the frame of ``cur_month`` with the frames of up to ``feature_months``
    reference as-of months; volume drift the current month's events with the reference months'.
    """
    from sanling.features.build import build_frame, feature_names

    config = reference.config
    cur_month = cur_month or panel.last_month
    ref_months = [m for m in reference.months if m < cur_month]
    notes: list[str] = []
    if not ref_months:
        from sanling.core.errors import DataError

        raise DataError(
            f"the reference window ({reference.months[0]} … {reference.months[-1]}) has no month "
            f"before {cur_month}"
        )
    if len(ref_months) < len(reference.months):
        notes.append(f"reference months from {cur_month} on are left out of the comparison")

    features, sampled = None, []
    if with_features:
        labels_zh, skip = _feature_labels(panel, config)
        sampled = sample_months(_full_history(panel, ref_months), feature_months)
        frame = build_frame(
            panel,
            [*sampled, cur_month],
            tier_rules=config.tiers,
            horizon_months=config.horizon_months,
            params=config.features,
            with_labels=False,
        )
        names = reference.feature_names or feature_names(frame)
        names = [n for n in names if n not in skip and n in frame.columns]
        is_cur = (frame["as_of"] == cur_month).to_numpy()
        features = d.feature_drift(frame.loc[~is_cur], frame.loc[is_cur], names, labels=labels_zh)

    ev = events_with_units(ds.events, ds.units)
    by_category = d.volume_drift(ev, ref_months, cur_month, ("category",))
    by_county_category = d.volume_drift(ev, ref_months, cur_month, ("county", "category"))
    by_township = d.volume_drift(ev, ref_months, cur_month, ("township",))
    monthly = monthly_counts(ev, [*ref_months, cur_month])
    monthly = monthly.reindex(columns=[c for c in config.categories if c in monthly.columns])

    labels = _label_shift(panel, config, ref_months) if with_labels else d.label_shift([], [])
    warnings = d.drift_warnings(
        features, by_county_category, by_township, labels, categories=config.categories, cur_month=cur_month
    )
    note = _incomplete_month_note(ds.events, cur_month)
    if note:
        notes.append(note)
    return DriftResult(
        cur_month,
        reference,
        sampled,
        features,
        by_category,
        by_county_category,
        by_township,
        labels,
        monthly,
        warnings,
        notes,
    )


def _label_shift(panel, config: Config, ref_months: list[str]) -> dict:
    """Tiers of the reference as-of months' outcome windows against those of the labelled as-of
    months after the reference (empty until such outcomes exist)."""
    from sanling.models.evaluate import tier_history

    hist = tier_history(panel, config)
    h = config.horizon_months
    pos = {m: i for i, m in enumerate(hist.months)}
    ends = lambda months: [pos[m] + h for m in months if m in pos and pos[m] + h < len(hist.months)]  # noqa: E731
    after = [m for m in hist.months if m > ref_months[-1]]
    ref_t = hist.tiers[:, ends(ref_months)].ravel()
    cur_t = hist.tiers[:, ends(after)].ravel()
    out = d.label_shift(ref_t, cur_t)
    out["cur_as_of"] = [m for m in after if pos[m] + h < len(hist.months)]
    return out


# ---------------------------------------------------------------- outputs


def _records(frame: pd.DataFrame | None) -> list[dict]:
    if frame is None:
        return []
    return json.loads(frame.to_json(orient="records", force_ascii=False))


def result_dict(result: DriftResult, data_dir: Path | None = None) -> dict:
    """The JSON-ready summary of a :class:`DriftResult`."""
    ref = result.reference
    f = result.features
    return {
        "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
        "cur_month": result.cur_month,
        "reference": {
            "source": ref.source,
            "model_version": ref.model_version,
            "first": ref.months[0],
            "last": ref.months[-1],
            "n_months": len(ref.months),
            "note": ref.note,
            "feature_months": result.feature_months,
        },
        "thresholds": {
            "psi_warn": d.PSI_WARN,
            "psi_watch": d.PSI_WATCH,
            "stopped_min_expected": d.STOPPED_MIN_EXPECTED,
            "township_ratio": d.TOWNSHIP_RATIO,
            "township_p": d.TOWNSHIP_P,
        },
        "warnings": result.warnings,
        "notes": result.notes,
        "n_features": {
            "warn": int((f["level"] == "warn").sum()) if f is not None else 0,
            "watch": int((f["level"] == "watch").sum()) if f is not None else 0,
            "total": len(f) if f is not None else 0,
        },
        "features": _records(f),
        "volume": {
            "category": _records(result.by_category),
            "county_category": _records(result.by_county_category),
            "township": _records(result.by_township),
        },
        "labels": result.labels,
    }


def write_outputs(result: DriftResult, out: Path, data_dir: Path | None = None) -> dict:
    """Write ``drift.json``, ``drift.md`` and the three PNGs into ``out``; returns the JSON dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = plots.Labels()
    images = {
        "psi": "psi_top20.png",
        "category": "volume_by_category.png",
        "township": "volume_by_township.png",
    }
    if result.features is not None:
        plots.save(plots.fig_psi_top(result.features, labels), out / images["psi"], labels)
    plots.save(
        plots.fig_volume_by_category(
            result.monthly, result.by_category, labels, result.reference.config.categories
        ),
        out / images["category"],
        labels,
    )
    plots.save(plots.fig_volume_by_township(result.by_township, labels), out / images["township"], labels)
    summary = result_dict(result, data_dir)
    (out / "drift.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    (out / "drift.md").write_text(drift_markdown(result, images), encoding="utf-8")
    return summary


def _print(result: DriftResult) -> None:
    print(f"drift of {result.cur_month}: {result.reference.note}")
    if result.warnings:
        print(f"{len(result.warnings)} warning(s):")
        for w in result.warnings:
            print(f"  ! {w}")
    else:
        print("no warning")
    for n in result.notes:
        print(f"  note: {n}")
    t = result.by_category
    print(f"\n{'category':<16} {'expected':>9} {'observed':>9} {'ratio':>6} {'p':>8}")
    for r in t.itertuples(index=False):
        print(f"{r.category:<16} {r.expected:>9.1f} {r.observed:>9.0f} {r.ratio:>6.2f} {r.p:>8.2g}")
    if result.features is not None:
        f = result.features
        print(
            f"\nfeatures: {(f['level'] == 'warn').sum()} warn, {(f['level'] == 'watch').sum()} watch of {len(f)}; "
            "largest PSI:"
        )
        for r in f.head(5).itertuples(index=False):
            print(f"  {r.feature:<40} {r.psi:.3f}  {r.level}")


def run_drift(data_dir: Path, *, out: Path | None = None, settings: Settings | None = None) -> dict:
    """``sanling drift``: compare the data's latest month with the champion's training window (or the
    fallback reference), print the warnings and a short table, write ``drift.json``, ``drift.md`` and
    plots into ``out`` (default ``<home>/drift/<latest month>``); returns the JSON dict."""

    settings = settings or Settings()
    t0 = time.perf_counter()
    champion = _load_champion(settings)
    config = champion[1].config if champion else Config()
    ds, panel = prepare(data_dir, config, settings)
    reference = champion_reference(*champion) if champion else fallback_reference(panel, config)
    result = drift_check(ds, panel, reference)
    if champion:  # the backtest's groups whose ECE is more than twice the overall one
        result.warnings.extend(model_audit_view(champion[1].info)["calibration_warnings"])
    out = Path(out) if out is not None else settings.home / "drift" / result.cur_month
    summary = write_outputs(result, out, data_dir)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    _print(result)
    say(f"drift report written to {out}/drift.md ({summary['seconds']} s)")
    return summary


def drift_warnings_for_score(bundle, ds, panel, as_of: str) -> list[str]:
    """The drift warnings ``sanling score`` stores with a scoring run (shown by ``GET /v1/model``):
    ``as_of`` against the bundle's training window, with a smaller feature reference
    (:data:`SCORE_REFERENCE_MONTHS` as-of months) so that it costs seconds."""
    reference = champion_reference("serving", bundle)
    result = drift_check(
        ds, panel, reference, as_of, feature_months=SCORE_REFERENCE_MONTHS, with_labels=False
    )
    return result.warnings
