"""The application context every job shares: the data directory prepared once (ingest + panel), the
labelled feature frame, fingerprints that tie MLflow runs to their data and configuration, the
registry of a deployment, progress and atomic writes. Jobs (:mod:`sanling.pipeline.jobs`), the drift
check (:mod:`sanling.pipeline.drift_job`) and the live scorer (:mod:`sanling.pipeline.live_scorer`)
import it; it imports none of them."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pandas as pd

from sanling.core.config import Config, Settings
from sanling.core.errors import SanlingError


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def progress(desc: str):
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc=desc, unit="fold", file=sys.stderr, dynamic_ncols=True)


# -- data ---------------------------------------------------------------------------------------
def prepare(data_dir: Path, config: Config, settings: Settings):
    """Ingest (cached) and build the units × months panel."""
    from sanling.features.panel import build_panel
    from sanling.pipeline.ingest import load_dataset

    t0 = time.perf_counter()
    ds = load_dataset(data_dir, categories=config.categories, home=settings.home)
    panel = build_panel(ds.units, ds.events, config.categories, updates=ds.updates, history=ds.history)
    say(
        f"data: {len(ds.units):,} units, {len(ds.events):,} events, "
        f"{panel.first_label} … {panel.last_month} ({time.perf_counter() - t0:.1f} s)"
    )
    return ds, panel


def labelled_frame(panel, config: Config) -> pd.DataFrame:
    from sanling.features.build import build_frame
    from sanling.features.grid import labelled_as_of

    dates = labelled_as_of(panel, config.horizon_months, config.cadence_months)
    if not dates:
        raise SanlingError(f"the data is shorter than one outcome window of {config.horizon_months} months")
    t0 = time.perf_counter()
    frame = build_frame(
        panel, dates, tier_rules=config.tiers, horizon_months=config.horizon_months, params=config.features
    )
    say(
        f"features: {len(frame):,} rows × {frame.shape[1]} columns for {len(dates)} as-of dates "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return frame


def fingerprint(ds) -> str:
    own = getattr(ds, "data_fingerprint", None)  # a data set ingested on Dask workers hashes its inputs
    if own is not None:
        return own
    h = hashlib.sha1()
    names = ["units.parquet", "events.parquet"]
    optional = (
        ("event_updates", getattr(ds, "updates", None)),
        ("unit_history", getattr(ds, "history", None)),
    )
    names += [f"{n}.parquet" for n, frame in optional if frame is not None]
    for name in names:
        h.update((Path(ds.workdir) / name).read_bytes())
    return h.hexdigest()[:12]


def config_hash(config: Config) -> str:
    return hashlib.sha1(config.model_dump_json().encode()).hexdigest()[:12]


def experiment_name(ds) -> str:
    return f"sanling/{Path(ds.workdir).name}"


def registry(settings: Settings):
    from sanling.models.registry import Registry

    return Registry(settings.tracking_uri, settings.artifact_root, settings.model_name)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
