"""The jobs behind the CLI: each wires a data directory, the configuration and the stores to the
pure stages in ``features/`` and ``models/``. This is the one place that knows paths and order."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sanling.core.config import Config, Settings, load_config
from sanling.core.errors import ModelError, SanlingError
from sanling.pipeline.admin import token_create
from sanling.pipeline.context import (
    atomic_write,
    config_hash,
    experiment_name,
    fingerprint,
    labelled_frame,
    prepare,
    progress,
    registry,
    say,
)


# -- backtest -----------------------------------------------------------------------------------
def summarise(result, config: Config) -> dict:
    """The ``summary`` block of metrics.json (docs/metrics.md) from a :class:`BacktestResult`: skill
    against each baseline, the best baseline, the share of the best-baseline→oracle gap the model
    recovers and the share of the persistence→oracle gap (each ± a standard error clustered by unit
    and by month), ECE by unit type and county, and the workload each compared policy buys."""
    from sanling.models import skill as sk
    from sanling.models.metrics import calibration_by_group, red_recall_precision

    m = result.metrics["models"]
    p = {k: v[0] for k, v in result.predictions.items()}
    units, months = result.meta["unit_id"].to_numpy(), result.meta["as_of"].to_numpy()
    best = sk.best_baseline(m)
    out = {
        "formulation": f"{config.model.formulation}/{config.model.calibration}"
        + ("+counts" if config.model.count_model and config.model.calibration == "stacked" else "")
        + f"/{config.model.n_seeds} seeds",
        "policy": config.policy.kind,
        "skill_vs": {k: sk.skill(m["lightgbm"]["rps"], v["rps"]) for k, v in m.items() if k != "lightgbm"},
        "best_baseline": best,
        "calibration_by_group": calibration_by_group(result.meta, result.y, p["lightgbm"]),
    }
    if "oracle" in p:
        d, se = sk.paired_rps_difference(result.y, p["lightgbm"], p["oracle"], units, months)
        out["rps_gap_to_oracle"] = {"mean": d, "se": se}
        for key, ref in (("oracle_gap_share", best), ("oracle_share", "persistence")):
            share, share_se = sk.oracle_share_with_se(
                result.y, p[ref], p["lightgbm"], p["oracle"], units, months
            )
            out[key], out[f"{key}_se"] = share, share_se
    towns = result.meta.groupby(["as_of", "county", "township"], observed=True).ngroups
    out["policies"] = {}
    for kind, decided in result.policy_decisions.items():
        recall, precision = red_recall_precision(result.y, decided)
        out["policies"][kind] = {
            "red_share": float(np.mean(decided == 3)),
            "red_recall": recall,
            "red_precision": precision,
            "red_per_township_month": float(np.sum(decided == 3) / max(towns, 1)),
        }
    return out


def backtest(data_dir: Path, out: Path, config: Config, settings: Settings | None = None) -> dict:
    from sanling.features.build import feature_names
    from sanling.features.labels import KnownLabels
    from sanling.models.evaluate import rolling_origin, tier_history
    from sanling.models.reporting import write_report
    from sanling.pipeline.forecast_audit import audit_summary

    settings = settings or Settings()
    t0 = time.perf_counter()
    ds, panel, frame = _labelled(data_dir, config, settings)
    names = feature_names(frame)
    history = tier_history(panel, config)
    truth_path = Path(data_dir) / "truth.parquet"
    truth = pd.read_parquet(truth_path) if truth_path.exists() else None
    # Late records: each origin trains on the labels its records held (docs/model.md).
    known = KnownLabels(panel, config.horizon_months, config.tiers) if panel.knowledge is not None else None
    result = rolling_origin(
        frame, names, history, config, truth=truth, progress=progress("backtest"), train_labels=known
    )
    metrics = result.metrics
    metrics["summary"] = summarise(result, config)
    metrics["summary"]["training_labels"] = "known_at_origin" if known is not None else "final_record"
    metrics["summary"]["label_lag"] = [f["label_lag"] for f in result.folds]  # months left out per fold
    if known is not None and config.backtest.naive_labels:
        naive = rolling_origin(frame, names, history, config, progress=progress("backtest, naive labels"))
        metrics["summary"]["naive_labels"] = label_timing_difference(metrics, naive.metrics)
    metrics["summary"].update(audit_summary(result, config, ds))
    metrics["summary"]["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2))
    report = write_report(
        out,
        meta=result.meta,
        y=result.y,
        predictions=result.predictions,
        metrics=metrics,
        shap=_shap_labels(result.shap, config, panel),
    )
    tags = {"data_fingerprint": fingerprint(ds), "config_hash": config_hash(config)}
    try:
        registry(settings).log_backtest(
            experiment_name(ds), params=_params(config), metrics=metrics, tags=tags, artifacts_dir=out
        )
    except Exception as e:  # the backtest's own files are written; a tracking failure is reported
        say(f"warning: could not log the backtest to MLflow ({type(e).__name__}: {e})")
    _print_metrics(metrics)
    if "naive_labels" in metrics["summary"]:
        d = metrics["summary"]["naive_labels"]["lightgbm"]["difference"]
        print(
            f"training labels as known at each origin; against training on the final record: "
            f"RPS {d['rps']:+.4f}, red recall {d['red_recall']:+.3f}, ECE {d['ece']:+.4f}"
        )
    say(f"backtest written to {out}/metrics.json and {report} ({metrics['summary']['seconds']} s)")
    return metrics


def _shap_labels(shap, config, panel):
    if shap is None:
        return None
    contrib, values, names = shap
    from sanling.features.registry import feature_registry

    labels = {
        f.name: f.label_zh
        for f in feature_registry(config.categories, config.features, static_columns=panel.static_columns)
    }
    return contrib, values, [labels.get(n, n) for n in names]


def _params(config: Config) -> dict:
    flat = {
        "horizon_months": config.horizon_months,
        "cadence_months": config.cadence_months,
        "test_periods": config.test_periods,
    }
    flat.update({f"model.{k}": v for k, v in config.model.model_dump().items()})
    flat.update({f"policy.{k}": v for k, v in config.policy.model_dump().items()})
    return {k: str(v)[:250] for k, v in flat.items()}


def _print_metrics(metrics: dict) -> None:
    cols = ["rps", "log_loss", "red_recall", "red_precision", "red_pr_auc", "ece", "ece_yellow", "ece_red"]
    rows = [[name] + [f"{vals[c]:.4f}" for c in cols] for name, vals in metrics["models"].items()]
    widths = [max(len(r[i]) for r in [["model", *cols], *rows]) for i in range(len(cols) + 1)]
    for r in [["model", *cols], *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))
    s = metrics.get("summary", {})
    for key, what in (
        ("oracle_gap_share", f"vs {s.get('best_baseline')}"),
        ("oracle_share", "vs persistence"),
    ):
        if s.get(key) is not None:
            se = s.get(f"{key}_se")
            print(f"{key} ({what}): {s[key]:.3f}" + (f" ± {se:.3f} (1 SE)" if se == se and se else ""))
    from sanling.pipeline.forecast_audit import coverage_line

    line = coverage_line(s)
    if line:
        print(line)


# -- train / promote ----------------------------------------------------------------------------
def _specs(config: Config, panel, names):
    from sanling.features.registry import feature_registry
    from sanling.models.explain import ReasonSpec

    reg = {
        f.name: f
        for f in feature_registry(config.categories, config.features, static_columns=panel.static_columns)
    }
    return [ReasonSpec(n, reg[n].label_zh, reg[n].template_zh, reg[n].group, reg[n].group_zh) for n in names]


def label_timing_difference(honest: dict, naive: dict) -> dict:
    """The metrics of a backtest whose training rows carried the final record's labels, and the
    difference honest − naive, per model (both scored against the final record)."""
    keys = ("rps", "log_loss", "qwk", "red_recall", "red_precision", "red_pr_auc", "ece")
    out = {}
    for name, m in naive["models"].items():
        if name in honest["models"] and name != "oracle":
            out[name] = {k: m[k] for k in keys if k in m}
            out[name]["difference"] = {k: honest["models"][name][k] - m[k] for k in keys if k in m}
    return out


def _labelled(data_dir: Path, config: Config, settings: Settings):
    """(data set, panel, labelled frame): in this process, or with ``settings.dask`` the features
    from a Dask cluster (pipeline/distributed) and a panel of the units fitted on."""
    if settings.dask:
        from sanling.pipeline.distributed.jobs import prepare_labelled

        return prepare_labelled(data_dir, config, settings, settings.dask)
    ds, panel = prepare(data_dir, config, settings)
    return ds, panel, labelled_frame(panel, config)


def train(data_dir: Path, config: Config, settings: Settings | None = None) -> str:
    from sanling.features.build import feature_names
    from sanling.features.labels import label_lag
    from sanling.features.registry import REGISTRY_VERSION
    from sanling.models.bundle import ModelBundle
    from sanling.models.tier_model import TierModel
    from sanling.pipeline.forecast_audit import audit_rows, model_audit_info

    settings = settings or Settings()
    ds, panel, labelled = _labelled(data_dir, config, settings)  # only labelled as-of dates
    names = feature_names(labelled)
    lag = label_lag(config.model.label_lag, panel, config.horizon_months, config.tiers)
    # what the rest needs of the panel and the data set (GBs at province size), before releasing them
    last_month, specs = panel.last_month, _specs(config, panel, names)
    experiment, data_fingerprint = experiment_name(ds), fingerprint(ds)
    del ds, panel
    t0 = time.perf_counter()
    say(f"training on {len(labelled):,} rows …")
    model = TierModel(names, config.model, config.policy, config.tiers).fit(
        labelled,
        labelled["tier"].to_numpy(dtype=np.int64),
        labelled["as_of"].to_numpy(),
        horizon_months=config.horizon_months,
        label_lag=lag,
    )
    say(f"trained in {time.perf_counter() - t0:.1f} s; best iterations {model.best_iterations_}")
    tags = {
        "data_fingerprint": data_fingerprint,
        "config_hash": config_hash(config),
        "registry_version": REGISTRY_VERSION,
        "train_window": f"{model.train_window_[0]}..{model.train_window_[1]}",
        "data_dir": str(Path(data_dir).resolve()),
        # Training uses the labels the records hold now, less the latest months still settling.
        "training_labels": f"records as of {last_month}, label_lag {lag}",
    }
    left_out = f"the latest {lag} labelled months left out as still settling" if lag else "every month"
    say(f"training labels: the records as they stand at the end of {last_month}; {left_out}")
    reg = registry(settings)
    bt = reg.latest_backtest(experiment, {k: tags[k] for k in ("data_fingerprint", "config_hash")})
    info = {
        "train_window": list(model.train_window_),
        "n_train_rows": model.n_train_rows_,
        "registry_version": REGISTRY_VERSION,
        "data_fingerprint": tags["data_fingerprint"],
        "backtest": {k: v for k, v in (bt or {}).get("metrics", {}).items()},
        "horizon_months": config.horizon_months,
    }
    info.update(model_audit_info(model, audit_rows(labelled, model, config), config, reg, bt))
    if bt and bt["rps"] is not None:
        tags["backtest_rps"] = f"{bt['rps']:.6f}"
        tags["backtest_run"] = bt["run_id"]
    bundle = ModelBundle(model, specs, REGISTRY_VERSION, config, model.train_window_, info)
    version = reg.log_model(
        experiment,
        bundle,
        params=_params(config),
        metrics={"n_train_rows": len(labelled)},
        tags=tags,
        # the stack reads the as-of month, the count model the unit and its township too
        input_example=labelled[
            [c for c in ("unit_id", "as_of", "county", "township") if c in labelled] + names
        ].head(5),
    )
    rps = tags.get("backtest_rps", "none on record — run `sanling backtest` with the same data and config")
    print(
        f"registered {settings.model_name} version {version} (training window "
        f"{tags['train_window']}, backtest RPS {rps})"
    )
    return version


def promote(
    version: str, *, alias: str = "champion", force: bool = False, settings: Settings | None = None
) -> None:
    settings = settings or Settings()
    reg = registry(settings)
    try:
        tags = reg.version_tags(version)
    except Exception:  # MLflow raises a generic RestException for an unknown version
        raise ModelError(f"model {settings.model_name} has no version {version}") from None
    current = reg.alias_version(alias)
    if alias == "champion" and current not in (None, version) and not force:
        champ = reg.version_tags(current)
        mine, theirs = tags.get("backtest_rps"), champ.get("backtest_rps")
        if mine is None:
            raise ModelError(
                f"version {version} has no backtest RPS on record; run `sanling backtest` "
                "on the same data and config before training, or promote with --force"
            )
        if (
            theirs is not None
            and champ.get("data_fingerprint") == tags.get("data_fingerprint")
            and float(mine) > float(theirs)
        ):
            raise ModelError(
                f"refused: version {version} backtest RPS {float(mine):.5f} is worse than the "
                f"champion's (version {current}, {float(theirs):.5f}); use --force to override"
            )
    if alias == "champion" and current not in (None, version):
        reg.set_alias("previous_champion", current)
    reg.set_alias(alias, version)
    print(f"{settings.model_name}@{alias} → version {version}" + (f" (was {current})" if current else ""))


# -- score ---------------------------------------------------------------------------------------
HISTORY_MONTHS = 24  # earlier months of forecast vs outcome on the unit pages


def score(data_dir: Path, *, as_of: str | None = None, settings: Settings | None = None) -> dict:
    from sanling.core.months import months_back
    from sanling.pipeline.scoring import backfill_scores, explained_scores, history_tables, observed_tiers
    from sanling.serving.store import db
    from sanling.serving.store import history as store_history
    from sanling.serving.store import outcomes as store_outcomes
    from sanling.serving.store import scores as store_scores
    from sanling.serving.store import units as store_units

    settings = settings or Settings()
    if settings.dask:
        from sanling.pipeline.distributed.jobs import score as distributed_score

        return distributed_score(
            data_dir, as_of=as_of, settings=settings, address=settings.dask, history_months=HISTORY_MONTHS
        )
    version, bundle = registry(settings).load_alias("champion")
    config = bundle.config
    ds, panel = prepare(data_dir, config, settings)
    as_of = as_of or panel.last_month
    t0 = time.perf_counter()
    rows = explained_scores(bundle, ds, panel, as_of, model_version=version)
    say(f"scored {len(rows):,} units as of {as_of} with version {version} ({time.perf_counter() - t0:.1f} s)")
    event_months, open_events = history_tables(ds.events, as_of)
    from sanling.pipeline.drift_job import drift_warnings_for_score

    warnings = drift_warnings_for_score(bundle, ds, panel, as_of)
    for w in warnings:
        say(f"drift: {w}")
    engine = db.init_db(settings.db_url)
    # One store, several data folders: everything below replaces only this folder's units (its
    # registry's dropped units turn inactive), in one transaction — a crash leaves the old run whole.
    source = str(Path(data_dir).resolve())
    # The forecast history: earlier months never scored (all 24 on the first run) are scored once
    # with this model; months scored before are kept as they were forecast then.
    earlier = [m for m in months_back(as_of, HISTORY_MONTHS + 1)[:-1] if m >= panel.first_label]
    with db.session_scope(engine) as session:
        scored = set(store_scores.scored_months(session, data_dir=source))
    todo = [m for m in earlier if m not in scored]
    outcomes = observed_tiers(panel, config, [*earlier, as_of])
    with db.session_scope(engine) as session:
        store_units.upsert_units(session, ds.units, source=source)
        for month, month_rows in backfill_scores(bundle, ds, panel, todo, model_version=version):
            store_scores.save_scores(
                session,
                {
                    "as_of": month,
                    "model_version": version,
                    "data_dir": source,
                    "n_units": len(month_rows),
                    "backfilled": True,
                },
                month_rows,
            )
        if todo:
            say(
                f"forecast history: scored {len(todo)} earlier month(s) {todo[0]} … {todo[-1]} with version {version}"
            )
        store_outcomes.replace_observed_tiers(session, outcomes, source=source)
        store_scores.save_scores(
            session,
            {
                "as_of": as_of,
                "model_version": version,
                "data_dir": source,
                "n_units": len(rows),
                "drift_warnings": warnings,
            },
            rows,
        )
        store_history.replace_event_history(session, event_months, open_events, source=source)
        db.refresh_statistics(session)
    counts = pd.Series([r["tier_zh"] for r in rows]).value_counts()
    print(f"as of {as_of}: " + "  ".join(f"{t} {counts.get(t, 0)}" for t in ("红", "橙", "黄", "蓝")))
    return {"as_of": as_of, "model_version": version, "n_units": len(rows)}


# -- serve / tokens / drift / demo ---------------------------------------------------------------
def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    data_dir: Path | None = None,
    settings: Settings | None = None,
) -> None:
    from sanling.serving.app import run

    settings = settings or Settings()
    data_dir = data_dir or settings.data_dir or _last_scored_dir(settings)
    scorer = None
    if data_dir is None:
        say(
            "warning: no data directory (--data-dir, SANLING_DATA_DIR or a previous `sanling score`): "
            "stored scores are served; POST /v1/score and GET /v1/model answer 503"
        )
    else:
        from sanling.pipeline.live_scorer import ChampionScorer

        try:
            scorer = ChampionScorer(settings, Path(data_dir))
        except ModelError as e:
            say(f"warning: {e}; stored scores are served, POST /v1/score answers 503")
    run(host=host, port=port, settings=settings, scorer=scorer)


def _last_scored_dir(settings: Settings) -> Path | None:
    from sanling.serving.store import db
    from sanling.serving.store.scores import latest_run

    engine = db.init_db(settings.db_url)
    with db.session_scope(engine) as session:
        run = latest_run(session)
    engine.dispose()
    return Path(run["data_dir"]) if run and run.get("data_dir") and Path(run["data_dir"]).exists() else None


def drift(data_dir: Path, *, out: Path | None = None, settings: Settings | None = None) -> dict:
    from sanling.pipeline.drift_job import run_drift

    return run_drift(data_dir, out=out, settings=settings or Settings())


def demo(workdir: Path, *, serve_after: bool = True, port: int = 8000) -> None:
    from sanling.pipeline.ingest import validate_dir
    from sanling.pipeline.simulate import simulate_world

    workdir = Path(workdir)
    settings = Settings(home=workdir / "home")
    os.environ["SANLING_HOME"] = str(settings.home)
    world = workdir / "world"
    steps = ["simulate", "validate", "backtest", "train", "promote", "score", "serve"]
    say(f"demo in {workdir}/: " + " → ".join(steps))
    say("[1/7] simulate")
    print(simulate_world(world, preset="county", seed=0))
    say("[2/7] validate")
    print(validate_dir(world, home=settings.home).summary())
    config = load_config(None)
    say("[3/7] backtest")
    backtest(world, workdir / "backtest", config, settings)
    say("[4/7] train")
    version = train(world, config, settings)
    say("[5/7] promote")
    promote(version, alias="champion", force=True, settings=settings)
    say("[6/7] score")
    score(world, settings=settings)
    analyst = token_create("analyst", name="demo analyst", settings=settings)
    from sanling.serving.store import db
    from sanling.serving.store.units import list_townships

    engine = db.init_db(settings.db_url)
    with db.session_scope(engine) as session:
        first = list_townships(session)[0]
    clerk = token_create(
        "township", township=first["township"], county=first["county"], name="demo clerk", settings=settings
    )
    print(f"\nanalyst token:  {analyst}\ntownship token ({first['county']}/{first['township']}): {clerk}")
    print(f"report: {workdir / 'backtest' / 'report.html'}")
    if serve_after:
        print(f"serving on http://127.0.0.1:{port}/ (sign in at /login with a token; Ctrl-C stops)")
        serve(host="127.0.0.1", port=port, data_dir=world, settings=settings)


def followups_export(out: Path, *, settings: Settings | None = None) -> str:
    """``sanling followups export DIR``: the store's 双排查 records as ``DIR/followups.csv`` in the data
    folder's form (CONTRACT §1: unit_id, visited_at, status, measures), written atomically; records
    without a screening date (待排查: not visited yet) are left out. Returns a one-line summary."""
    from sanling.pipeline.ingest.followups import export_frame
    from sanling.serving.store import db
    from sanling.serving.store.followups import list_followups

    settings = settings or Settings()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SanlingError(f"{out} exists and is not a directory")
    engine = db.init_db(settings.db_url)
    with db.session_scope(engine) as session:
        records = list_followups(session, limit=None)
    engine.dispose()
    frame = export_frame(records)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "followups.csv", frame.to_csv(index=False))
    return f"wrote {len(frame):,} visits ({len(records) - len(frame):,} records not yet visited left out) to {out / 'followups.csv'}"
