"""MLflow with a real SQLite backend store: log, register, alias, load whole, and the promotion gate."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_frames import FEATURES, make_frame

from sanling.core.config import Config, ModelParams, Settings
from sanling.core.errors import ModelError
from sanling.models.bundle import ModelBundle
from sanling.models.explain import ReasonSpec
from sanling.models.tier_model import TierModel
from sanling.pipeline import jobs

FAST = ModelParams(n_estimators=40, learning_rate=0.2, num_leaves=7, min_child_samples=20)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    frame = make_frame(n_units=80, n_months=8)
    model = TierModel(FEATURES, FAST).fit(frame, frame["tier"].to_numpy(int), frame["as_of"].to_numpy())
    specs = [ReasonSpec(n, n, n + "为{value}，同类平均{peer}", n, n) for n in FEATURES]
    bundle = ModelBundle(model, specs, "test", Config(model=FAST), model.train_window_, {"backtest": {}})
    reg = jobs.registry(settings)
    versions = []
    for rps in ("0.100000", "0.120000", None):
        tags = {"data_fingerprint": "abc"} | ({"backtest_rps": rps} if rps else {})
        versions.append(
            reg.log_model(
                "sanling/test",
                bundle,
                params={"p": "1"},
                metrics={"n": 1.0},
                tags=tags,
                input_example=frame[FEATURES],
            )
        )
    return settings, reg, frame, bundle, versions


def test_logged_bundle_loads_whole_and_predicts_the_same(setup):
    _settings, reg, frame, bundle, versions = setup
    assert versions == ["1", "2", "3"]
    loaded = reg.load_bundle("1")
    np.testing.assert_array_equal(loaded.model.predict_proba(frame), bundle.model.predict_proba(frame))
    assert loaded.feature_names == FEATURES and loaded.specs == bundle.specs


def test_pyfunc_flavour_predicts_probabilities(setup):
    settings, _reg, frame, _bundle, _versions = setup
    import mlflow.pyfunc

    m = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/1")
    out = m.predict(frame[FEATURES].head(7).astype({"kind": str}))
    assert list(out.columns) == ["p_blue", "p_yellow", "p_orange", "p_red"]
    np.testing.assert_allclose(out.to_numpy().sum(1), 1.0, atol=1e-6)


def test_promotion_gate(setup, capsys):
    settings, reg, *_ = setup
    jobs.promote("1", settings=settings)
    assert reg.alias_version("champion") == "1"
    with pytest.raises(ModelError, match="worse than the champion"):
        jobs.promote("2", settings=settings)  # RPS 0.12 > 0.10
    with pytest.raises(ModelError, match="no backtest RPS"):
        jobs.promote("3", settings=settings)
    jobs.promote("2", alias="challenger", settings=settings)  # challengers are not gated
    assert reg.alias_version("challenger") == "2"
    jobs.promote("2", force=True, settings=settings)
    assert reg.alias_version("champion") == "2" and reg.alias_version("previous_champion") == "1"
    with pytest.raises(ModelError, match="no version 99"):
        jobs.promote("99", settings=settings)


def test_a_registry_does_not_redirect_later_settings(setup, tmp_path):
    """MLflow writes its URI into the environment; a second home in the same process keeps its own."""
    other = Settings(home=tmp_path / "other")
    assert other.tracking_uri.endswith(str((tmp_path / "other" / "mlflow.db").resolve()))
    jobs.registry(other)
    assert Settings(home=tmp_path / "third").tracking_uri.endswith("third/mlflow.db")


def test_a_bundle_pickled_by_the_layout_before_sanling_still_loads_and_predicts_the_same():
    """tests/fixtures/bundle_pre_sanling.pkl was written at commit 2e1e18a, when the modules were
    imported as ``models.*`` / ``pipeline.*``: a registered version of that time must keep serving."""
    import json
    import pickle

    from sanling.models.bundle import ModelBundle
    from sanling.models.registry import read_bundle

    fixtures = Path(__file__).parents[1] / "fixtures"
    raw = (fixtures / "bundle_pre_sanling.pkl").read_bytes()
    assert b"models.tier_model" in raw and b"sanling.models" not in raw  # really the old names
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(raw)  # a plain unpickler cannot find them any more
    with open(fixtures / "bundle_pre_sanling.pkl", "rb") as fh:
        bundle = read_bundle(fh)
    assert isinstance(bundle, ModelBundle)
    rows = pd.read_parquet(fixtures / "bundle_pre_sanling_rows.parquet")
    expected = json.loads((fixtures / "bundle_pre_sanling_expected.json").read_text())["probabilities"]
    np.testing.assert_allclose(bundle.model.predict_proba(rows), expected, rtol=0, atol=1e-9)
    from sanling.models.explain import peer_means

    explained = bundle.explained(rows, peer_means(rows, bundle.feature_names))
    assert len(explained) == len(rows) and {e["tier"] for e in explained} <= {
        "blue",
        "yellow",
        "orange",
        "red",
    }
