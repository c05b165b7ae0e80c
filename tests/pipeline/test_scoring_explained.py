"""Batch scoring's one pass — probabilities and contributions together (``TierModel.
proba_and_contributions``), the peers' risk from the same probabilities, the batch TreeSHAP and the
vectorised choice of reasons — against the straightforward computation on a simulated county:
``predict_proba`` for the scores and the peers, ``contributions`` with LightGBM's own
``pred_contrib``, reasons chosen row by row. The same probabilities, tiers, risk scores, relative
risks and reasons."""

from __future__ import annotations

import numpy as np
import pytest
from reference_reasons import explain_rows_row_by_row

from sanling.core.config import Config, ModelParams, Settings
from sanling.core.vocabulary import TIERS
from sanling.features.build import feature_names
from sanling.models import tier_model, tree_shap
from sanling.models.bundle import ModelBundle
from sanling.models.explain import peer_means
from sanling.models.policy import decide, risk_score
from sanling.models.tier_model import TierModel
from sanling.pipeline.context import labelled_frame, prepare
from sanling.pipeline.jobs import _specs
from sanling.pipeline.scoring import explained_scores, forecast_context, frame_at, peer_risk_from
from sanling.pipeline.simulate.world import simulate_world

CONFIG = Config(model=ModelParams(n_estimators=60, num_leaves=7, min_child_samples=50, n_seeds=2))


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    root = tmp_path_factory.mktemp("explained")
    simulate_world(root / "w", n_units=300, months=36, seed=5, progress=False)
    ds, panel = prepare(root / "w", CONFIG, Settings(home=root / "home"))
    frame = labelled_frame(panel, CONFIG)
    frame = frame[frame["tier"].notna()].reset_index(drop=True)
    names = feature_names(frame)
    model = TierModel(names, CONFIG.model, CONFIG.policy, CONFIG.tiers).fit(
        frame, frame["tier"].to_numpy(int), frame["as_of"].to_numpy()
    )
    assert model.count_ is not None and model.history_ is not None and model.linear_ is not None
    assert all(w[3] != 0.0 and w[1] != 0.0 for w in model.stack_[1:2])  # every term is explained
    bundle = ModelBundle(model, _specs(CONFIG, panel, names), "test", CONFIG, model.train_window_, {})
    return bundle, ds, panel


def test_one_pass_gives_the_probabilities_and_contributions_of_two(county):
    bundle, _, panel = county
    frame = frame_at(bundle, panel, panel.last_month)
    m = bundle.model
    proba, contrib, base = m.proba_and_contributions(frame)
    assert np.array_equal(proba, m.predict_proba(frame))  # to the last bit
    c2, b2 = m.contributions(frame)
    assert np.array_equal(contrib, c2) and np.array_equal(base, b2)
    # threads do not change the batch TreeSHAP either
    bag = m.members_[tier_model.CUMULATIVE_LEVELS.index(tier_model.EXPLAINED_LEVEL)]
    X, its = m._matrix(frame), [b.best_iteration for b in bag]
    one, two = (
        tree_shap.contributions(bag, X, its, threads=1),
        tree_shap.contributions(bag, X, its, threads=2),
    )
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_batch_scores_equal_the_straightforward_computation(county, monkeypatch):
    bundle, ds, panel = county
    as_of, names, m = panel.last_month, bundle.feature_names, bundle.model
    called = []
    fast = tree_shap.contributions
    monkeypatch.setattr(tree_shap, "contributions", lambda *a, **k: called.append(1) or fast(*a, **k))
    monkeypatch.setattr(tier_model, "BATCH_SHAP_ROWS", 1)  # the county's 300 rows take the batch path
    rows = explained_scores(bundle, ds, panel, as_of, model_version="9")
    assert called and len(rows) == len(ds.units)

    monkeypatch.setattr(tier_model, "BATCH_SHAP_ROWS", 10**12)  # LightGBM's pred_contrib, row by row
    frame = frame_at(bundle, panel, as_of)
    proba = m.predict_proba(frame)
    contrib, _ = m.contributions(frame)
    assert len(called) == 1
    reasons, protective = explain_rows_row_by_row(
        contrib,
        frame[names].reset_index(drop=True),
        peer_means(frame, names)[names].reset_index(drop=True),
        bundle.specs,
    )
    tiers = decide(proba, CONFIG.policy, m.decision_thresholds_)
    scores = risk_score(proba)
    shown = np.array([[r["probabilities"][t] for t in TIERS] for r in rows])
    context = forecast_context(bundle, frame, shown, peer_risk_from(frame, m.predict_proba(frame)))
    assert [r["unit_id"] for r in rows] == frame["unit_id"].astype(str).tolist()
    worst = 0.0
    for i, r in enumerate(rows):
        assert r["probabilities"] == {t: round(float(proba[i, k]), 4) for k, t in enumerate(TIERS)}
        assert r["risk_score"] == float(scores[i]) and r["tier"] == TIERS[int(tiers[i])]
        assert r["relative_risk"] == context[i]["relative_risk"]
        for got, want in ((r["reasons"], reasons[i]), (r["protective"], protective[i])):
            assert [{**x, "contribution": 0} for x in got] == [{**x, "contribution": 0} for x in want]
            worst = max(
                [worst, *(abs(x["contribution"] - y["contribution"]) for x, y in zip(got, want, strict=True))]
            )
    assert worst <= 1e-6  # TreeSHAP against pred_contrib: equal to 1e-10 before rounding to 3 decimals
    assert sum(len(r["reasons"]) for r in rows) > len(rows)  # reasons were really compared
