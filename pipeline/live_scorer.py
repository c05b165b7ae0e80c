"""The scorer behind ``POST /v1/score`` and ``GET /v1/model``: the champion from the registry,
fresh features from the data directory's events (re-ingested when its files change, so events added
mid-month count), the same feature, policy and explanation code as training and batch scoring.

The champion is loaded once at start-up and re-checked every ``poll_seconds``; a new version is
loaded completely in the background and then swapped in with one assignment, so a request sees
either the old model or the new one, never half of each. What a request would otherwise compute on
the first call after a swap — the month's peer tables, which predict every unit — is computed in the
poll thread before the swap, and the model reload and the data refresh hold different locks, so no
request waits for a model being loaded (docs/operations.md "The champion poll").

The explained scores of every unit for the latest month are computed together, in the batch path
(one frame, one pass of the model, TreeSHAP once per decision pattern: models/tree_shap.py), when a
model or the data is loaded — in the poll thread at start-up and before a swap, in a background
thread after the data changed — and a request for that month reads its units from them. Until
they are there (and for any other month) a request computes its units as before. Either way the
answer is the same function of (model, data, month): features as fresh as the data directory."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sanling.core.config import Settings
from sanling.core.errors import ModelError
from sanling.models.explain import peer_means
from sanling.pipeline.context import registry
from sanling.pipeline.forecast_audit import model_audit_view

log = logging.getLogger("sanling.scorer")


@dataclass
class _Month:
    """What every request of one (model version, as-of month) shares."""

    pos: pd.Series  # unit_id → row of the month's frame
    peers: pd.DataFrame  # peer means, one row per unit
    peer_risk: pd.DataFrame  # the peers' mean probabilities
    rows: dict | None = None  # unit_id → explained score of every unit, once computed
    encoded: dict = field(default_factory=dict)  # unit_id → its row as the API's JSON bytes, once asked


@dataclass
class _Data:
    stamp: tuple
    ds: object
    panel: object
    peers: dict = field(default_factory=dict)  # (version, as_of) → _Month
    known: frozenset = frozenset()  # the data's unit ids


@dataclass
class _Model:
    version: str
    bundle: object


def _stamp(data_dir: Path) -> tuple:
    return tuple(
        sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(data_dir).iterdir() if p.is_file()
        )
    )


class ChampionScorer:
    """Implements :class:`serving.scorer.Scorer`."""

    def __init__(self, settings: Settings, data_dir: Path, *, poll_seconds: float = 30.0):
        self.settings = settings
        self.data_dir = Path(data_dir)
        self._registry = registry(settings)
        self._model: _Model | None = None
        self._data: _Data | None = None
        self._model_lock = threading.Lock()  # serialises model reloads, never reading
        self._data_lock = threading.Lock()  # serialises data refreshes, never reading
        self._checked = 0.0
        self._fill_lock = threading.Lock()
        self._filling: set = set()
        self.reload_model()
        self._stop = threading.Event()
        if poll_seconds > 0:
            threading.Thread(
                target=self._poll, args=(poll_seconds,), daemon=True, name="champion-poll"
            ).start()

    # -- model -------------------------------------------------------------------------------
    def reload_model(self) -> bool:
        """Load the champion if it moved; True when a new version was swapped in."""
        with self._model_lock:
            version = self._registry.alias_version("champion")
            if version is None:
                raise ModelError("no champion model in the registry: train and promote one first")
            if self._model is not None and self._model.version == version:
                return False
            model = _Model(version, self._registry.load_bundle(version))
            data = self._data
            if data is not None:  # warm the new model's month for the latest month, off the request path
                key = (version, data.panel.last_month)
                data.peers[key] = self._month(model, data, data.panel.last_month, explain=True)
            self._model = model  # the swap: one reference assignment
            if data is not None:
                for key in [k for k in data.peers if k[0] != version]:
                    data.peers.pop(key, None)  # the old model's tables: memory only now
            log.info("serving model version %s", version)
            return True

    @staticmethod
    def _month(model: _Model, data: _Data, as_of: str, *, explain: bool) -> _Month:
        from sanling.pipeline.scoring import explained_month, frame_at, peer_risk_table

        bundle = model.bundle
        full = frame_at(bundle, data.panel, as_of)
        pos, peers = (
            pd.Series(range(len(full)), index=full["unit_id"]),
            peer_means(full, bundle.feature_names),
        )
        if not explain:  # relative risk compares with every unit of the month
            return _Month(pos, peers, peer_risk_table(bundle, full))
        rows, peer_risk = explained_month(
            bundle, data.ds, data.panel, as_of, model_version=model.version, frame=full, peers=peers
        )
        return _Month(pos, peers, peer_risk, {r["unit_id"]: r for r in rows})

    @staticmethod
    def _explain_month(model: _Model, data: _Data, as_of: str, full: pd.DataFrame, month: _Month) -> dict:
        """Every unit's explained score, for a month whose peer tables are already known."""
        from sanling.pipeline.scoring import explained_scores

        rows = explained_scores(
            model.bundle,
            data.ds,
            data.panel,
            as_of,
            model_version=model.version,
            frame=full,
            peers=month.peers,
            peer_risk=month.peer_risk,
        )
        return {r["unit_id"]: r for r in rows}

    def _fill(self, model: _Model, data: _Data, key: tuple) -> None:
        """Explain every unit of the month ``key`` in the background (one fill at a time)."""

        def run() -> None:
            try:
                from sanling.pipeline.scoring import frame_at

                month = data.peers.get(key)
                if month is not None and month.rows is None:
                    month.rows = self._explain_month(
                        model, data, key[1], frame_at(model.bundle, data.panel, key[1]), month
                    )
            except Exception:  # requests keep computing their units one by one
                log.exception("explaining the month %s failed", key[1])
            finally:
                self._filling.discard(key)

        with self._fill_lock:
            if key in self._filling:
                return
            self._filling.add(key)
        threading.Thread(target=run, daemon=True, name="month-scores").start()

    def warm(self) -> None:
        """Read the data and compute the latest month's peer tables and explained scores now rather
        than on the first ``POST /v1/score`` (the poll thread does this first)."""
        t0 = time.perf_counter()
        model, data = self._model, self._fresh_data()
        key = (model.version, data.panel.last_month)
        month = data.peers.get(key)
        if month is None:
            data.peers[key] = month = self._month(model, data, data.panel.last_month, explain=True)
        elif month.rows is None:
            from sanling.pipeline.scoring import frame_at

            month.rows = self._explain_month(
                model, data, key[1], frame_at(model.bundle, data.panel, key[1]), month
            )
        log.info(
            "ready: %d units of %s explained with version %s (%.1f s)",
            len(month.rows or ()),
            key[1],
            model.version,
            time.perf_counter() - t0,
        )

    def ready(self) -> bool:
        """True when the champion's latest month is explained for every unit, so that requests for it
        read stored rows (``GET /readyz``)."""
        model, data = self._model, self._data
        if model is None or data is None:
            return False
        month = data.peers.get((model.version, data.panel.last_month))
        return month is not None and month.rows is not None

    def _poll(self, every: float) -> None:
        try:
            self.warm()
        except Exception:  # a request will meet the same problem and answer it
            log.exception("warming the scorer failed")
        while not self._stop.wait(every):
            try:
                self.reload_model()
            except Exception:  # keep serving the current model; the next poll tries again
                log.exception("champion poll failed")

    def close(self) -> None:
        self._stop.set()

    # -- data --------------------------------------------------------------------------------
    def _fresh_data(self) -> _Data:
        now = time.monotonic()
        data = self._data
        if data is not None and now - self._checked < 1.0:
            return data
        stamp = _stamp(self.data_dir)
        self._checked = now
        if data is not None and data.stamp == stamp:
            return data
        with self._data_lock:
            if self._data is not None and self._data.stamp == stamp:
                return self._data
            from sanling.features.panel import build_panel
            from sanling.pipeline.ingest import load_dataset

            config = self._model.bundle.config
            ds = load_dataset(self.data_dir, categories=config.categories, home=self.settings.home)
            panel = build_panel(
                ds.units, ds.events, config.categories, updates=ds.updates, history=ds.history
            )
            self._data = _Data(stamp, ds, panel, known=frozenset(ds.units["unit_id"]))
            return self._data

    # -- the protocol ------------------------------------------------------------------------
    def score(self, unit_ids: list[str], as_of: str | None = None) -> list[dict]:
        from sanling.features.build import build_frame
        from sanling.pipeline.scoring import explained_scores

        model, data = self._model, self._fresh_data()
        bundle = model.bundle
        as_of = as_of or data.panel.last_month
        ids = [u for u in dict.fromkeys(unit_ids) if u in data.known]
        if not ids:
            return []
        key = (model.version, as_of)
        month = data.peers.get(key)
        if month is None:  # another month, or data refreshed since: computed once, here
            month = data.peers[key] = self._month(model, data, as_of, explain=False)
        if month.rows is not None:
            return [dict(month.rows[u]) for u in ids]  # in the order asked, as build_frame gives them
        if as_of == data.panel.last_month:
            self._fill(model, data, key)
        c = bundle.config
        frame = build_frame(
            data.panel,
            [as_of],
            tier_rules=c.tiers,
            horizon_months=c.horizon_months,
            params=c.features,
            unit_ids=ids,
            with_labels=False,
        )
        peer_rows = month.peers.iloc[month.pos.loc[frame["unit_id"]].to_numpy()]
        return explained_scores(
            bundle,
            data.ds,
            data.panel,
            as_of,
            model_version=model.version,
            frame=frame.reset_index(drop=True),
            peers=peer_rows.reset_index(drop=True),
            peer_risk=month.peer_risk,
        )

    def cached_json(self, unit_ids: list[str], as_of: str | None, encode) -> list[bytes] | None:
        """What :meth:`score` would return for ``unit_ids``, each row as ``encode(row)`` (the API's
        JSON bytes, kept per unit for the month), when it is already known: the month's explained
        scores are computed and the data directory was checked for changes within the last second.
        ``None`` otherwise — then :meth:`score` computes (and may re-read the data), which this
        never does: it does no I/O and no model work, so the API may call it on its event loop."""
        model, data = self._model, self._data
        if model is None or data is None or time.monotonic() - self._checked >= 1.0:
            return None
        month = data.peers.get((model.version, as_of or data.panel.last_month))
        rows = None if month is None else month.rows
        if rows is None:
            return None
        encoded = month.encoded
        out = []
        for u in dict.fromkeys(unit_ids):
            b = encoded.get(u)
            if b is None:
                row = rows.get(u)
                if row is None:  # not in the data: score() leaves it out; let it decide
                    return None
                b = encoded[u] = encode(dict(row))
            out.append(b)
        return out

    def model_info(self) -> dict:
        model = self._model
        b = model.bundle
        return {
            "name": self.settings.model_name,
            "version": model.version,
            "training_window": {"first_as_of": b.train_window[0], "last_as_of": b.train_window[1]},
            "horizon_months": b.config.horizon_months,
            "formulation": b.config.model.formulation,
            "feature_registry_version": b.registry_version,
            "n_features": len(b.feature_names),
            "policy": b.config.policy.model_dump(),
            "backtest_metrics": b.info.get("backtest", {}),
            "explained_quantity": "calibrated log-odds of P(tier >= orange)",
            **model_audit_view(b.info),
        }
