"""Smoke tests of the backtest report on random data: files, links, table highlighting, validation."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sanling.models import metrics as m
from sanling.models import reporting as report
from sanling.models import skill as sk


def _world(n_units: int = 60, n_months: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_units * n_months
    meta = pd.DataFrame(
        {
            "unit_id": np.tile([f"14010{i:07d}" for i in range(n_units)], n_months),
            "as_of": np.repeat([f"2022-{k:02d}" for k in range(1, n_months + 1)], n_units),
            "township": np.tile([f"镇{i % 4}" for i in range(n_units)], n_months),
            "county": "阳曲县",
            "unit_type": "village",
        }
    )
    oracle = rng.dirichlet([3, 2, 1, 0.6], n)
    y = (oracle.cumsum(axis=1) < rng.uniform(size=(n, 1))).sum(axis=1)
    noisy = np.exp(np.log(oracle) + rng.normal(0, 0.5, oracle.shape))
    probas = {
        "lightgbm": noisy / noisy.sum(axis=1, keepdims=True),
        "persistence": np.tile(np.bincount(y, minlength=4) / n, (n, 1)),
        "oracle": oracle,
    }
    predictions = {k: (p, p.argmax(axis=1)) for k, p in probas.items()}
    metrics = {
        "horizon_months": 1,
        "models": {k: m.tier_metrics(y, p, d) for k, (p, d) in predictions.items()},
    }
    return meta, y, predictions, metrics


def _shap(rng_seed: int = 1, m_rows: int = 80, n_features: int = 25):
    rng = np.random.default_rng(rng_seed)
    values = pd.DataFrame(
        rng.poisson(2, (m_rows, n_features)).astype(float),
        columns=[f"feature_{i}" for i in range(n_features)],
    )
    values.iloc[0, 0] = np.nan  # a missing feature value must not break the colouring
    contrib = rng.normal(0, 1, (m_rows, n_features)) * np.linspace(1, 0.1, n_features)
    return contrib, values, [f"特征{i}" for i in range(n_features)]


def test_report_writes_every_plot_and_the_html_links_each_one(tmp_path):
    meta, y, predictions, metrics = _world()
    path = report.write_report(
        tmp_path / "out", meta=meta, y=y, predictions=predictions, metrics=metrics, shap=_shap()
    )
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    pngs = {p.name for p in path.parent.glob("*.png")}
    expected = {
        "class_balance.png",
        "skill.png",
        "rps_by_month.png",
        "reliability.png",
        "confusion.png",
        "pr_red.png",
        "capacity.png",
        "shap_summary.png",
    }
    assert pngs == expected
    linked = set(re.findall(r'src="([^"]+)"', text))
    assert linked == expected
    for name in pngs:
        assert (path.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in text and "https://" not in text  # self-contained, no CDN
    for model in ("lightgbm", "persistence", "oracle"):
        assert model in text


def test_report_without_shap_or_oracle_in_english(tmp_path, monkeypatch):
    from sanling.models.reporting import style

    monkeypatch.setattr(style, "cjk_font", lambda: None)
    meta, y, predictions, metrics = _world(seed=2)
    del predictions["oracle"], metrics["models"]["oracle"]
    path = report.write_report(tmp_path, meta=meta, y=y, predictions=predictions, metrics=metrics)
    pngs = {p.name for p in tmp_path.glob("*.png")}
    assert "shap_summary.png" not in pngs and "skill.png" in pngs
    assert set(re.findall(r'src="([^"]+)"', path.read_text(encoding="utf-8"))) == pngs


def test_metrics_table_marks_the_best_real_model_not_the_oracle():
    metrics = {
        "models": {
            "oracle": dict.fromkeys(m.TIER_METRIC_KEYS, 0.01),
            "persistence": {**dict.fromkeys(m.TIER_METRIC_KEYS, 0.5), "rps": 0.20, "qwk": 0.30},
            "lightgbm": {**dict.fromkeys(m.TIER_METRIC_KEYS, 0.5), "rps": 0.15, "qwk": 0.20},
        }
    }
    frame, best, row_class = report.metrics_frame(metrics)
    assert list(frame["model"]) == ["lightgbm", "persistence", "oracle"]
    assert best["rps"] == {0}  # lower is better; the oracle's 0.01 is the ceiling, not a winner
    assert best["qwk"] == {1}  # higher is better
    assert row_class == {2: "oracle"}


def test_skill_table_against_each_reference():
    meta, y, predictions, _ = _world(seed=3)
    probas = {k: p for k, (p, _) in predictions.items()}
    table = report.skill_table(y, meta["as_of"].to_numpy(), meta["unit_id"].to_numpy(), probas, "lightgbm")
    assert list(table["reference"]) == ["persistence"]
    row = table.iloc[0]
    assert row["skill"] == pytest.approx(
        sk.skill(m.rps(y, probas["lightgbm"]), m.rps(y, probas["persistence"]))
    )
    assert row["oracle_share"] == pytest.approx(
        sk.oracle_share(
            m.rps(y, probas["persistence"]), m.rps(y, probas["lightgbm"]), m.rps(y, probas["oracle"])
        )
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta, y, p, mt: (meta.drop(columns="township"), y, p, mt), "township"),
        (lambda meta, y, p, mt: (meta, y[:-1], p, mt), "rows"),
        (
            lambda meta, y, p, mt: (meta, y, {**p, "lightgbm": (p["lightgbm"][0][:, :3], p["lightgbm"][1])}),
            "lightgbm",
        ),
        (lambda meta, y, p, mt: (meta, y, p, {"models": {}}), "models"),
    ],
)
def test_report_rejects_inconsistent_inputs(tmp_path, change, message):
    meta, y, predictions, metrics = _world(n_units=8, n_months=2)
    args = change(meta, y, predictions, metrics)
    if len(args) == 3:
        args = (*args, metrics)
    meta, y, predictions, metrics = args
    with pytest.raises(ValueError, match=message):
        report.write_report(tmp_path, meta=meta, y=y, predictions=predictions, metrics=metrics)
    assert not (tmp_path / "report.html").exists()


def test_shap_shapes_are_validated(tmp_path):
    meta, y, predictions, metrics = _world(n_units=8, n_months=2)
    contrib, values, labels = _shap()
    with pytest.raises(ValueError, match="labels"):
        report.write_report(
            tmp_path,
            meta=meta,
            y=y,
            predictions=predictions,
            metrics=metrics,
            shap=(contrib, values, labels[:-1]),
        )


def test_report_text_is_escaped_by_the_template(tmp_path):
    meta, y, predictions, metrics = _world(seed=3)
    meta = meta.assign(township="<b>镇</b>")
    predictions["<script>"] = predictions["persistence"]
    metrics["models"]["<script>"] = metrics["models"]["persistence"]
    path = report.write_report(
        tmp_path, meta=meta, y=y, predictions=predictions, metrics=metrics, title="<i>t</i>"
    )
    text = path.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<i>t</i>" not in text and "&lt;i&gt;t&lt;/i&gt;" in text


def test_report_leads_with_the_gap_share_and_labels_the_persistence_share(tmp_path):
    meta, y, predictions, metrics = _world(seed=4)
    metrics["summary"] = {
        "best_baseline": "historical_rate",
        "oracle_gap_share": 0.3125,
        "oracle_gap_share_se": 0.0625,
        "oracle_share": 0.9375,
        "oracle_share_se": 0.01,
        "calibration_by_group": {"unit_type": {"village": 0.0123}, "county": {"阳曲县": 0.0123}},
        "policy": "capacity",
        "policies": {
            "capacity": {
                "red_share": 0.08,
                "red_recall": 0.45,
                "red_precision": 0.2,
                "red_per_township_month": 1.25,
            }
        },
    }
    html = report.write_report(tmp_path, meta=meta, y=y, predictions=predictions, metrics=metrics).read_text()
    first = html.index("oracle_gap_share (vs best baseline: historical_rate)")
    assert first < html.index("指标总表")  # before the metrics table: the report leads with it
    assert "0.3125" in html and "oracle_share (vs persistence" in html
    assert "Calibration by group" in html and "0.0123" in html
    assert "Decision policies" in html and "1.25" in html
