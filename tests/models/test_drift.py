"""Drift checks: PSI against hand-computed values, and injected faults in a simulated county that the
check must name (and an untouched county in which it must stay quiet)."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pandas as pd
import pytest

from sanling.core.config import Config
from sanling.features.panel import build_panel
from sanling.models import drift as d
from sanling.pipeline import drift_job as dj
from sanling.pipeline.simulate.world import build_world

EPS = d.PSI_FLOOR


# ---------------------------------------------------------------- PSI by hand


def test_psi_identical_is_zero():
    x = np.arange(100, dtype=float)
    assert d.psi(x, x) == pytest.approx(0.0, abs=1e-12)


def test_psi_two_bins_by_hand():
    # bins=2 on [0]*5 + [1]*5: edges 0, 0.5, 1 → the zeros in the "equal to min" bin, the ones in (0.5, 1]
    ref = [0] * 5 + [1] * 5
    cur = [0] * 8 + [1] * 2
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert d.psi(ref, cur, bins=2) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.4159, abs=1e-4)


def test_psi_nan_is_its_own_bin():
    # bins=4 on 1..4: edges 1, 1.75, 2.5, 3.25, 4 → one value per bin; two of four current values are NaN
    ref, cur = [1, 2, 3, 4], [1, 2, np.nan, np.nan]
    empty = (EPS - 0.25) * math.log(EPS / 0.25)
    nan_bin = (0.5 - EPS) * math.log(0.5 / EPS)
    assert d.psi(ref, cur, bins=4) == pytest.approx(2 * empty + nan_bin, rel=1e-9)


def test_psi_constant_reference():
    ref = np.full(50, 3.0)
    assert d.psi(ref, np.full(10, 3.0)) == pytest.approx(0.0, abs=1e-12)
    # everything moved to the "above the reference maximum" bin
    moved = 2 * (1 - EPS) * math.log(1 / EPS)
    assert d.psi(ref, np.full(10, 5.0)) == pytest.approx(moved, rel=1e-9)
    assert d.psi(ref, np.full(10, 1.0)) == pytest.approx(moved, rel=1e-9)  # below the minimum, too


def test_psi_categorical_by_hand():
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert d.psi(pd.Series(["a", "a", "b", "b"]), pd.Series(["a", "b", "b", "b"])) == pytest.approx(expected)


def test_psi_rejects_empty():
    with pytest.raises(ValueError, match="at least one"):
        d.psi([], [1.0])


def test_feature_drift_ranks_the_shifted_column():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.poisson(2, 2000).astype(float)})
    cur = pd.DataFrame({"a": rng.normal(size=500), "b": rng.poisson(4, 500).astype(float)})
    t = d.feature_drift(ref, cur, ["a", "b"], labels={"b": "乙"})
    assert list(t["feature"]) == ["b", "a"]
    assert t.loc[0, "level"] == "warn" and t.loc[1, "level"] == "ok"
    assert t.loc[0, "label_zh"] == "乙"
    assert t.loc[0, "mean_cur"] == pytest.approx(cur["b"].mean())
    assert t.loc[0, "zero_ref"] == pytest.approx((ref["b"] == 0).mean())


def test_label_shift_shares():
    out = d.label_shift([0, 0, 1, 3, -1], [0, 3, 3, 3])
    assert out["n_ref"] == 4 and out["n_cur"] == 4
    assert out["ref"]["blue"] == 0.5 and out["cur"]["red"] == 0.75
    assert out["psi"] > d.PSI_WARN
    assert d.label_shift([0, 1], [])["psi"] is None


def test_count_tails_widen_with_dispersion():
    from scipy.stats import nbinom, poisson

    hi1, lo1 = d.count_tails(np.array([20.0]), np.array([10.0]), 1.0)
    assert hi1[0] == pytest.approx(poisson.sf(19, 10)) and lo1[0] == pytest.approx(poisson.cdf(20, 10))
    hi2, _ = d.count_tails(np.array([20.0]), np.array([10.0]), 2.0)
    assert hi2[0] > 5 * hi1[0]  # an over-dispersed count makes 2× the mean far less surprising
    assert nbinom.mean(10.0, 0.5) == pytest.approx(10.0)  # the parametrisation keeps the mean


def test_dispersion_of_poisson_and_overdispersed_counts():
    rng = np.random.default_rng(1)
    assert d.dispersion(rng.poisson(30, (20, 48))) == pytest.approx(1.0, abs=0.15)
    lam = rng.gamma(shape=10, scale=3, size=(20, 48))  # mean 30, variance 30 + 90
    assert d.dispersion(rng.poisson(lam)) == pytest.approx(4.0, rel=0.25)
    assert d.dispersion(np.zeros((3, 10))) == 1.0


# ---------------------------------------------------------------- a simulated county with faults


@pytest.fixture(scope="module")
def world():
    w = build_world(preset="county", seed=3)
    return w.units, w.events


def _check(units: pd.DataFrame, events: pd.DataFrame, cur: str = "2022-12") -> dj.DriftResult:
    config = Config()
    ds = types.SimpleNamespace(units=units, events=events)
    panel = build_panel(units, events, config.categories)
    return dj.drift_check(ds, panel, dj.fallback_reference(panel, config), cur, feature_months=4)


def test_untouched_county_raises_no_volume_warning(world):
    units, events = world
    ev = dj.events_with_units(events, units)
    ref = [str(p) for p in pd.period_range("2019-01", "2021-12", freq="M")]
    for month in [str(p) for p in pd.period_range("2022-01", "2022-12", freq="M")]:
        by_cc = d.volume_drift(ev, ref, month, ("county", "category"))
        by_t = d.volume_drift(ev, ref, month, ("township",))
        assert d.stopped_categories(by_cc).empty, month
        assert d.township_outliers(by_t).empty, month
        assert not by_t["new"].any()
    warnings = _check(units, events).warnings
    assert not [w for w in warnings if not w.startswith(("特征漂移", "另有"))], warnings


def test_injected_faults_are_named(world):
    units, events = world
    county = units["county"].iloc[0]
    in_dec = events["occurred_at"].dt.to_period("M") == pd.Period("2022-12", "M")
    # 1) public_security stops being reported in the county in the latest month
    county_units = units.loc[units["county"] == county, "unit_id"]
    stopped = in_dec & (events["category"] == "public_security") & events["unit_id"].isin(county_units)
    assert stopped.sum() >= 5
    faulty = events[~stopped]
    # 2) one township's events double: the largest township whose own month is at least as expected
    # (doubling a township already well below its expectation would rightly not reach 1.8×)
    ev = dj.events_with_units(faulty, units)
    ref = dj.fallback_reference(build_panel(units, faulty, Config().categories), Config()).months
    natural = d.volume_drift(ev, ref, "2022-12", ("township",))
    town = natural[natural["ratio"] >= 1.0].sort_values("expected").iloc[-1]["township"]
    twice = faulty[
        (faulty["occurred_at"].dt.to_period("M") == pd.Period("2022-12", "M"))
        & faulty["unit_id"].isin(units.loc[units["township"] == town, "unit_id"])
    ].copy()
    twice["event_id"] = twice["event_id"] + "-dup"
    faulty = pd.concat([faulty, twice], ignore_index=True)
    # 3) a unit of a township the reference never saw reports events
    new_unit = units.iloc[[0]].assign(unit_id="149999999999", unit_name="新设村", township="新设镇")
    new_events = twice.head(3).assign(unit_id="149999999999", event_id=lambda f: f["event_id"] + "-new")
    result = _check(
        pd.concat([units, new_unit], ignore_index=True), pd.concat([faulty, new_events], ignore_index=True)
    )

    text = "\n".join(result.warnings)
    assert f"{county}: 治安案件" in text and "public_security stopped being reported" in text
    doubled = [w for w in result.warnings if w.startswith(f"乡镇{town}:")]
    assert doubled and "event volume" in doubled[0]
    row = result.by_township.set_index("township").loc[town]
    assert row["ratio"] >= d.TOWNSHIP_RATIO and row["p_high"] < d.TOWNSHIP_P
    assert any(w.startswith("乡镇新设镇") and "new township" in w for w in result.warnings)
    # no other township is named
    named = {w.split(":")[0] for w in result.warnings if w.startswith("乡镇")}
    assert named == {f"乡镇{town}", "乡镇新设镇"}


def test_outputs_written(world, tmp_path):
    units, events = world
    summary = dj.write_outputs(_check(units, events), tmp_path)
    for name in (
        "drift.json",
        "drift.md",
        "psi_top20.png",
        "volume_by_category.png",
        "volume_by_township.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    on_disk = json.loads((tmp_path / "drift.json").read_text(encoding="utf-8"))
    assert on_disk["warnings"] == summary["warnings"]
    assert on_disk["reference"]["source"] == "fallback"
    assert {r["category"] for r in on_disk["volume"]["category"]} == set(Config().categories)
    assert "## 预警 Warnings" in (tmp_path / "drift.md").read_text(encoding="utf-8")
