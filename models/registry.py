"""The few functions that talk to MLflow: experiments, runs, the model registry and its aliases.

The tracking and registry store is a SQLite file under the project's home unless
``MLFLOW_TRACKING_URI`` says otherwise (``pipeline.config.Settings``). Models are logged as a
pyfunc whose artifact is the whole :class:`models.bundle.ModelBundle`; serving unwraps the bundle
and predicts with the native boosters (pyfunc schema enforcement costs ~80× per row)."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

import pandas as pd

from sanling.core.errors import ModelError

BUNDLE_FILE = "bundle.pkl"

# Bundles registered before the package had one import name were pickled under the bare folder names
# (``models.tier_model.TierModel``, ``pipeline.config.Config``, …); the ground floor moved to
# ``sanling.core``. Loading maps the old names onto the new ones, so registered versions keep serving.
_RENAMED_MODULES = {
    "pipeline.config": "sanling.core.config",
    "pipeline.contract": "sanling.core.vocabulary",
    "pipeline.errors": "sanling.core.errors",
}
_OLD_TOP_LEVEL = ("pipeline", "features", "models", "serving")


class _RenamingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in _RENAMED_MODULES:
            module = _RENAMED_MODULES[module]
        elif module.split(".", 1)[0] in _OLD_TOP_LEVEL:
            module = f"sanling.{module}"
        return super().find_class(module, name)


def read_bundle(fh):
    """Unpickle a :class:`~sanling.models.bundle.ModelBundle` from a binary file object, whichever
    layout wrote it."""
    return _RenamingUnpickler(fh).load()


def _mlflow(tracking_uri: str, artifact_root: Path):
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow

    # MLflow also writes these URIs into os.environ, where the next Settings() of this process would
    # read them as MLFLOW_TRACKING_URI and point another home at this store: keep the environment.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return mlflow


class TierPyfunc:
    """pyfunc wrapper: ``predict`` returns the four calibrated probabilities per row."""

    def load_context(self, context):
        with open(context.artifacts["bundle"], "rb") as fh:
            self.bundle = read_bundle(fh)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        proba = self.bundle.model.predict_proba(model_input)
        return pd.DataFrame(proba, columns=["p_blue", "p_yellow", "p_orange", "p_red"])


def _pyfunc_class():
    import mlflow.pyfunc

    return type("SanlingTierModel", (TierPyfunc, mlflow.pyfunc.PythonModel), {"__module__": __name__})


class Registry:
    """MLflow tracking + model registry for one deployment (one home)."""

    def __init__(self, tracking_uri: str, artifact_root: Path, model_name: str = "sanling-tier"):
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self.model_name = model_name
        self.mlflow = _mlflow(tracking_uri, artifact_root)
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        loc = (self.artifact_root / name.replace("/", "_")).resolve()
        loc.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(name, artifact_location=loc.as_uri())

    def log_backtest(
        self, experiment: str, *, params: dict, metrics: dict, tags: dict, artifacts_dir: Path
    ) -> str:
        mlflow = self.mlflow
        with mlflow.start_run(experiment_id=self.experiment(experiment), run_name="backtest") as run:
            mlflow.set_tags({"sanling.kind": "backtest", **tags})
            mlflow.log_params(params)
            for model, vals in metrics["models"].items():
                # nested values (decided_share) are logged one key each: lightgbm.decided_share.red
                flat = {
                    f"{model}.{k}.{t}" if isinstance(v, dict) else f"{model}.{k}": w
                    for k, v in vals.items()
                    for t, w in (v.items() if isinstance(v, dict) else [(None, v)])
                }
                mlflow.log_metrics({k: float(v) for k, v in flat.items() if v == v})
            mlflow.log_artifacts(str(artifacts_dir), artifact_path="backtest")
            return run.info.run_id

    def latest_backtest(self, experiment: str, tags: dict) -> dict | None:
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        flt = " and ".join(
            ["tags.`sanling.kind` = 'backtest'"] + [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        )
        runs = self.client.search_runs(
            [exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"], max_results=1
        )
        if not runs:
            return None
        r = runs[0]
        return {"run_id": r.info.run_id, "rps": r.data.metrics.get("lightgbm.rps"), "metrics": r.data.metrics}

    def backtest_summary(self, run_id: str) -> dict:
        """The ``summary`` of a backtest run's ``metrics.json`` artifact ({} when it has none)."""
        with tempfile.TemporaryDirectory() as tmp:
            local = self.mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="backtest/metrics.json", dst_path=tmp
            )
            return json.loads(Path(local).read_text(encoding="utf-8")).get("summary", {})

    def log_model(
        self, experiment: str, bundle, *, params: dict, metrics: dict, tags: dict, input_example: pd.DataFrame
    ) -> str:
        """Log the bundle as a pyfunc model, register it; returns the new version."""
        mlflow = self.mlflow
        from mlflow.models import infer_signature

        with (
            tempfile.TemporaryDirectory() as tmp,
            mlflow.start_run(experiment_id=self.experiment(experiment), run_name="train") as run,
        ):
            mlflow.set_tags({"sanling.kind": "train", **tags})
            mlflow.log_params(params)
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
            path = Path(tmp) / BUNDLE_FILE
            with open(path, "wb") as fh:
                pickle.dump(bundle, fh, protocol=pickle.HIGHEST_PROTOCOL)
            example = input_example.head(5).copy()
            for c in example.columns:  # MLflow schemas know strings, not pandas categories
                if isinstance(example[c].dtype, pd.CategoricalDtype):
                    example[c] = example[c].astype(str)
            out = bundle.model.predict_proba(example)
            signature = infer_signature(
                example, pd.DataFrame(out, columns=["p_blue", "p_yellow", "p_orange", "p_red"])
            )
            mlflow.pyfunc.log_model(
                name="model",
                python_model=_pyfunc_class()(),
                artifacts={"bundle": str(path)},
                signature=signature,
                input_example=example,
            )
            mlflow.log_dict(bundle.info, "model_info.json")
            mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", self.model_name, tags=tags)
        return str(mv.version)

    def alias_version(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except Exception:  # MLflow raises a generic RestException when the alias is unset
            return None

    def version_tags(self, version: str) -> dict:
        return dict(self.client.get_model_version(self.model_name, version).tags)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, version)

    def load_bundle(self, version: str):
        """Download a version's artifact and unpickle the bundle (no pyfunc wrapper)."""
        try:
            self.client.get_model_version(self.model_name, version)
        except Exception:
            raise ModelError(f"model {self.model_name} has no version {version}") from None
        with tempfile.TemporaryDirectory() as tmp:
            local = self.mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.model_name}/{version}", dst_path=tmp
            )
            with open(Path(local) / "artifacts" / BUNDLE_FILE, "rb") as fh:
                return read_bundle(fh)

    def load_alias(self, alias: str = "champion"):
        version = self.alias_version(alias)
        if version is None:
            raise ModelError(
                f"no '{alias}' model in the registry yet: run `sanling train DIR` then `sanling promote VERSION`"
            )
        return version, self.load_bundle(version)
