"""The feature declarations: generated from configuration, unique, documented, nothing identifying."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sanling.core.config import Config, FeatureParams
from sanling.core.errors import DataError
from sanling.features.registry import FAMILIES, REGISTRY_VERSION, feature_registry

CFG = Config()
STATIC = {"population": "numeric", "households": "numeric", "industry": "category"}


def test_default_registry_shape() -> None:
    reg = feature_registry(CFG.categories, CFG.features, STATIC)
    names = [f.name for f in reg]
    assert len(names) == len(set(names))
    assert 120 <= len(reg) <= 220
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
    assert {f.family for f in reg} == set(FAMILIES)
    assert all(
        ("{value}" in f.template_zh or "{value_pct}" in f.template_zh) and f.label_zh and f.description
        for f in reg
    )
    assert {
        "dispute_unresolved_backlog",
        "petition_escalated_count_12m",
        "dispute_decayed_hl3",
        "peer_knn_dispute_count_12m",
        "dispute_per_1k_12m",
        "months_to_spring_festival",
    } <= set(names)
    assert isinstance(REGISTRY_VERSION, str) and REGISTRY_VERSION


def test_registry_follows_configuration() -> None:
    cats = {"dispute": "矛盾纠纷", "traffic": "交通事故"}
    params = FeatureParams(windows=(2, 6), half_lives=(4.0,), knn_k=3)
    reg = feature_registry(cats, params, {})
    names = {f.name for f in reg}
    assert {"traffic_count_2m", "traffic_count_6m", "traffic_decayed_hl4"} <= names
    assert not any(n.startswith("petition") or n == "dispute_count_12m" for n in names)
    assert not any(f.family == "per_capita" for f in reg)  # no population column
    assert any("3个" in f.label_zh for f in reg if f.family == "peer_knn")


def test_static_name_clash_is_an_error() -> None:
    with pytest.raises(DataError, match="dispute_count_12m"):
        feature_registry(CFG.categories, CFG.features, {"dispute_count_12m": "numeric"})


def test_docs_are_generated_from_the_registry() -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "sanling.features.docs"], cwd=root, capture_output=True, text=True, check=True
    )
    assert "dispute_unresolved_backlog" in out.stdout and "未化解矛盾纠纷" in out.stdout
    assert REGISTRY_VERSION in out.stdout
