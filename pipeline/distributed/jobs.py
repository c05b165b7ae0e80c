"""``sanling score | train | backtest --dask …``: the jobs of :mod:`sanling.pipeline.jobs` with their
features, scores and explanations computed per partition on a Dask cluster.

- score: every partition's explained scores, forecast history, observed tiers and event history
  are computed on the workers and written by the client to the store in batches as they arrive, in
  one transaction (a crash leaves the previous run whole).
- train / backtest: the labelled features are computed on the workers and gathered on the client,
  which fits the usual :class:`~sanling.models.tier_model.TierModel` — whole when the rows fit
  (``SANLING_DASK_TRAINING_ROWS``, default 3 M), else on a seeded sample of whole units. The model is the one the single process fits on the same rows (docs/operations.md says
  why it is not ``lightgbm.dask``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from sanling.core.config import Config, Settings
from sanling.core.errors import SanlingError
from sanling.pipeline.context import say
from sanling.pipeline.distributed.cluster import dask_client
from sanling.pipeline.distributed.engine import MAX_TRAINING_ROWS, Layout
from sanling.pipeline.distributed.ingest import ingest_on_workers


def load(data_dir: Path, config: Config, settings: Settings, client=None):
    """The data set: ingested on ``client``'s workers when the directory's tables are split into
    file groups (:mod:`.ingest`), else normalised here (cached per data directory, as without Dask)."""
    from sanling.pipeline.ingest import load_dataset

    t0 = time.perf_counter()
    if client is not None:
        data = ingest_on_workers(client, data_dir, config.categories, settings.home)
        if data is not None:
            say(
                f"data: {len(data.units):,} units here, {data.n_events():,} events ingested on the workers "
                f"in {len(data.groups)} file groups ({time.perf_counter() - t0:.1f} s)"
            )
            return data
    ds = load_dataset(data_dir, categories=config.categories, home=settings.home)
    say(f"data: {len(ds.units):,} units, {len(ds.events):,} events ({time.perf_counter() - t0:.1f} s)")
    return ds


def labelled(layout: Layout, max_rows: int = MAX_TRAINING_ROWS):
    """(client panel, labelled frame) of every labelled as-of month: the features from the workers,
    for all units or a seeded sample of whole units when they exceed ``max_rows`` rows."""
    from sanling.features.grid import labelled_as_of

    config = layout.config
    dates = labelled_as_of(layout.shape.months, config.horizon_months, config.cadence_months)
    if not dates:
        raise SanlingError(f"the data is shorter than one outcome window of {config.horizon_months} months")
    keep = layout.sample(len(dates), max_rows)
    t0 = time.perf_counter()
    frame = layout.frame(dates, with_labels=True, keep=keep)
    what = "all units" if keep is None else f"a sample of {len(keep):,} of {layout.n_units:,} units"
    say(
        f"features on {len(layout.parts)} partitions (halo {layout.halo_share():.0%} of the units): "
        f"{len(frame):,} rows × {frame.shape[1]} columns for {len(dates)} as-of dates, {what} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return layout.client_panel(keep), frame


def prepare_labelled(data_dir: Path, config: Config, settings: Settings, address: str):
    """(data set, client panel, labelled frame) — what ``train`` and ``backtest`` fit on."""
    with dask_client(address) as client:
        ds = load(data_dir, config, settings, client)
        layout = Layout(client, ds, config)
        panel, frame = labelled(layout, settings.dask_training_rows)
    return ds, panel, frame


def score(
    data_dir: Path, *, as_of: str | None, settings: Settings, address: str, history_months: int
) -> dict:
    """``sanling score --dask``: the store ends as after :func:`sanling.pipeline.jobs.score`, except
    that the run's drift warnings are left to ``sanling drift`` (they need the whole panel)."""
    from sanling.core.months import months_back
    from sanling.pipeline.context import registry
    from sanling.serving.store import db
    from sanling.serving.store import history as store_history
    from sanling.serving.store import outcomes as store_outcomes
    from sanling.serving.store import scores as store_scores
    from sanling.serving.store import units as store_units

    version, bundle = registry(settings).load_alias("champion")
    config = bundle.config
    source = str(Path(data_dir).resolve())
    engine = db.init_db(settings.db_url)
    with dask_client(address) as client:
        ds = load(data_dir, config, settings, client)
        t0 = time.perf_counter()
        layout = Layout(client, ds, config)
        months = layout.shape.months
        as_of = as_of or months.last_month
        earlier = [m for m in months_back(as_of, history_months + 1)[:-1] if m >= months.first_label]
        with db.session_scope(engine) as session:
            scored = set(store_scores.scored_months(session, data_dir=source))
        todo = [m for m in earlier if m not in scored]
        say(
            f"scoring {layout.n_units:,} units on {len(layout.parts)} partitions "
            f"(halo {layout.halo_share():.0%} of the units), {len(todo)} earlier month(s) to backfill"
        )
        tiers = []
        w0 = time.perf_counter()  # the client's time writing to the store: what more workers cannot shorten
        with db.session_scope(engine) as session:
            store_units.upsert_units(session, ds.units, source=source)
            run = {"model_version": version, "data_dir": source}
            runs = {
                m: store_scores.save_scores(session, {**run, "as_of": m, "backfilled": True}, [])
                for m in todo
            }
            current = store_scores.save_scores(session, {**run, "as_of": as_of, "drift_warnings": []}, [])
            # Each partition's rows are written as they arrive; nothing of the whole registry is held here.
            store_outcomes.clear_observed_tiers(session, source=source)
            store_history.clear_event_history(session, source=source)
            writing = time.perf_counter() - w0
            for done, result in enumerate(layout.scores(bundle, as_of, todo, [*earlier, as_of], version), 1):
                w0 = time.perf_counter()
                store_scores.append_scores(session, current, result["rows"])
                for month, rows in result["backfill"]:
                    store_scores.append_scores(session, runs[month], rows)
                store_outcomes.append_observed_tiers(session, result["outcomes"])
                store_history.append_event_history(
                    session, result["event_months"], result["open_events"], source=source
                )
                tiers += [r["tier_zh"] for r in result["rows"]]
                writing += time.perf_counter() - w0
                say(f"  partition {done}/{len(layout.parts)}: {len(result['rows']):,} units written")
            w0 = time.perf_counter()
            db.refresh_statistics(session)
        writing += time.perf_counter() - w0
    say(
        f"scored {len(tiers):,} units as of {as_of} with version {version} ({time.perf_counter() - t0:.1f} s, "
        f"{writing:.1f} s of it writing to the store)"
    )
    say(
        "drift: not checked in a distributed run; `sanling drift DIR` compares the month with the training window"
    )
    counts = pd.Series(tiers).value_counts()
    print(f"as of {as_of}: " + "  ".join(f"{t} {counts.get(t, 0)}" for t in ("红", "橙", "黄", "蓝")))
    return {
        "as_of": as_of,
        "model_version": version,
        "n_units": len(tiers),
        "costs": layout.costs,
        "writing_s": round(writing, 1),
    }
