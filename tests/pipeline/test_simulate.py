"""The simulated world: determinism, the input contract, the oracle's exactness and the calibration
to the seed (docs/simulator.md)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from sanling.core.errors import ConfigError
from sanling.core.vocabulary import CATEGORIES_ZH, EVENT_COLUMNS, UNIT_REQUIRED
from sanling.pipeline.simulate import build_world, simulate_world
from sanling.pipeline.simulate.calibrate import SEED_SHARES, red_free_shares
from sanling.pipeline.simulate.geography import build_registry
from sanling.pipeline.simulate.oracle import open_at_month_end
from sanling.pipeline.simulate.params import WorldParams
from sanling.pipeline.simulate.process import simulate, unit_process
from sanling.pipeline.simulate.reporting import ReportingParams

USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    simulate_world(out, n_units=150, months=14, seed=7, progress=False)
    return out


def test_same_seed_same_bytes_and_other_seed_differs(small_dir, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    simulate_world(again, n_units=150, months=14, seed=7, progress=False)
    simulate_world(other, n_units=150, months=14, seed=8, progress=False)
    for name in ("units.parquet", "events.parquet", "truth.parquet", "world.json"):
        assert _digest(small_dir / name) == _digest(again / name), name
    frame_hash = [
        pd.util.hash_pandas_object(pd.read_parquet(d / "events.parquet"), index=False).sum()
        for d in (small_dir, again, other)
    ]
    assert frame_hash[0] == frame_hash[1] != frame_hash[2]
    assert json.loads((small_dir / "world.json").read_text(encoding="utf-8"))["seed"] == 7


def test_output_passes_the_input_contract(small_dir):
    units = pd.read_parquet(small_dir / "units.parquet")
    events = pd.read_parquet(small_dir / "events.parquet")
    assert set(UNIT_REQUIRED) <= set(units.columns) and list(events.columns) == list(EVENT_COLUMNS)
    assert units.unit_id.is_unique and events.event_id.is_unique
    assert events.unit_id.isin(units.unit_id).all()
    assert set(events.category) <= set(CATEGORIES_ZH) and len(set(events.category)) == 7
    assert (
        events.severity.between(1, 4).all()
        and (events.casualties >= 0).all()
        and (events["count"] == 1).all()
    )
    done = events.resolved_at.notna()
    assert (events.resolved_at[done] >= events.occurred_at[done]).all()
    assert 0.0 < done.mean() < 1.0  # some never resolved within the data
    assert events.occurred_at.min() >= pd.Timestamp("2018-01-01")
    assert events.occurred_at.max() < pd.Timestamp("2019-03-01")
    assert units.lat.between(34.6, 40.7).all() and units.lon.between(110.2, 114.6).all()
    # Escalation and casualties only where the domain puts them.
    assert events.escalated[events.category == "petition"].any()
    assert (events.casualties[~events.category.isin(["safety_accident", "fire", "criminal"])] == 0).all()


def test_codes_names_and_attributes_are_plausible():
    units, _ = build_registry("province", 3000, np.random.default_rng(3))
    ent = units.unit_type == "enterprise"
    assert units.unit_id[~ent].str.fullmatch(r"14\d{10}").all()
    ids = units.unit_id[ent]
    assert ids.str.fullmatch(r"(91|12)14\d{4}[0-9A-Z]{10}").all()
    for code in ids.head(50):  # GB 32100 check character
        vals = [USCC.index(ch) for ch in code]
        assert vals[17] == (31 - sum(v * pow(3, i, 31) for i, v in enumerate(vals[:17])) % 31) % 31
    assert units.groupby("township").county.nunique().max() == 1  # township names unique in the world
    assert units.city.nunique() == 11 and units.county.nunique() > 11
    assert not units.duplicated(["township", "unit_type", "unit_name"])[~ent].any()
    assert units.unit_name[units.unit_type == "village"].str.endswith("村").all()
    assert units.unit_name[units.unit_type == "community"].str.endswith("社区").all()
    assert (units.industry[ent] != "").all() and (units.industry[~ent] == "").all()
    assert units.employees[ent].gt(0).all() and units.employees[~ent].isna().all()
    assert (
        units.population[units.unit_type == "community"].median()
        > 3 * units.population[units.unit_type == "village"].median()
    )
    assert set(units.moral_bank.unique()) == {0, 1}


def test_bad_arguments_raise_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="preset"):
        simulate_world(tmp_path, preset="planet", progress=False)
    with pytest.raises(ConfigError, match="format"):
        simulate_world(tmp_path, fmt="xlsx", progress=False)
    with pytest.raises(ConfigError, match="months"):
        simulate_world(tmp_path, months=1, progress=False)
    with pytest.raises(ConfigError, match="units"):
        simulate_world(tmp_path, n_units=2, progress=False)


def test_csv_is_utf8_with_the_same_rows(tmp_path):
    simulate_world(tmp_path, n_units=60, months=3, seed=1, fmt="csv", progress=False)
    units = pd.read_csv(tmp_path / "units.csv", encoding="utf-8", dtype={"unit_id": str})
    events = pd.read_csv(tmp_path / "events.csv", encoding="utf-8", dtype={"unit_id": str})
    world = build_world(n_units=60, months=3, seed=1, reporting=ReportingParams())
    assert len(units) == 60 and len(events) == len(world.events)
    assert units.unit_name.tolist() == world.units.unit_name.tolist()
    assert events.resolved_at.dropna().str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


# --- the oracle -------------------------------------------------------------------------------------


def realised_tiers(events: pd.DataFrame) -> pd.DataFrame:
    """Plain-pandas labeller with the system's semantics: window = calendar month; unresolved = open
    at the window's last day (resolved_at empty or later than that day); default tier rules."""
    e = events.copy()
    e["window"] = e.occurred_at.dt.to_period("M")
    last_day = e.window.dt.end_time.dt.normalize()
    e["open"] = e.resolved_at.isna() | (e.resolved_at.dt.normalize() > last_day)
    e["n"] = e["count"]
    g = e.groupby(["unit_id", "window"])

    def count(mask: pd.Series) -> pd.Series:
        return e.n.where(mask, 0).groupby([e.unit_id, e.window]).sum()

    cat = e.category
    t = pd.DataFrame(
        {
            "red": (count(cat == "criminal") + count((cat == "petition") & e.escalated) + g.casualties.sum())
            >= 1,
            "orange": (count(cat.isin(["public_security", "petition", "safety_accident", "fire"])) >= 1)
            | (count((cat == "dispute") & e.open) >= 2),
            "yellow": count(cat.isin(["dispute", "hazard"])) >= 1,
        }
    )
    tier = np.select([t.red, t.orange, t.yellow], [3, 2, 1], 0)
    out = pd.Series(tier, index=t.index, name="tier").reset_index()
    out["as_of"] = (out.window - 1).astype(str)
    return out[["unit_id", "as_of", "tier"]]


@pytest.fixture(scope="module")
def oracle_world():
    return build_world(preset="county", n_units=2500, months=30, seed=11)


@pytest.fixture(scope="module")
def oracle_rows(oracle_world):
    tiers = realised_tiers(oracle_world.events)
    rows = oracle_world.truth.merge(tiers, on=["unit_id", "as_of"], how="left")
    rows["tier"] = rows.tier.fillna(0).astype(int)
    return rows


def test_truth_rows_cover_every_unit_and_sum_to_one(oracle_rows):
    assert len(oracle_rows) == 2500 * 29
    assert oracle_rows.as_of.min() == "2018-01" and oracle_rows.as_of.max() == "2020-05"
    p = oracle_rows[["p_blue", "p_yellow", "p_orange", "p_red"]].to_numpy()
    assert (p >= 0).all() and np.allclose(p.sum(axis=1), 1.0)
    assert (oracle_rows.horizon_months == 1).all()


def _within_3se(pred: pd.Series, hit: pd.Series) -> tuple[float, float, float]:
    se = np.sqrt((pred * (1 - pred)).sum()) / len(pred)
    return float(hit.mean()), float(pred.mean()), float(se)


@pytest.mark.parametrize("target", ["red", "orange_or_worse"])
def test_oracle_is_calibrated_in_bins(oracle_rows, target):
    r = oracle_rows
    pred = r.p_red if target == "red" else r.p_red + r.p_orange
    hit = (r.tier == 3) if target == "red" else (r.tier >= 2)
    bins = pd.qcut(pred, 8, duplicates="drop")
    for _, idx in pred.groupby(bins, observed=True).groups.items():
        obs, mean, se = _within_3se(pred[idx], hit[idx])
        assert abs(obs - mean) <= 3 * se + 1e-9, (target, obs, mean, se)


def test_oracle_mean_matches_observed_for_every_tier(oracle_rows):
    r = oracle_rows
    for k, name in enumerate(["p_blue", "p_yellow", "p_orange", "p_red"]):
        obs, mean, se = _within_3se(r[name], r.tier == k)
        assert abs(obs - mean) <= 3 * se, (name, obs, mean, se)
    mix = r.tier.value_counts(normalize=True)
    assert (
        mix[0] > 0.25 and mix[1] > 0.2 and mix[3] < mix[2] < mix[1]
    )  # blue/yellow plentiful, red a minority
    assert r[["p_blue", "p_yellow", "p_orange", "p_red"]].max(axis=1).mean() < 0.8  # far from certain


@pytest.mark.parametrize("length", [28, 31])
def test_open_at_month_end_integral_matches_monte_carlo(length):
    # Independent check of the closed form: occur on a uniform day, take D = 1 + floor(X) days.
    rng = np.random.default_rng(5)
    n, p_never, p_slow = 2_000_000, 0.05, 0.3
    day = rng.integers(1, length + 1, n)
    v = rng.random(n)
    fast = 1 + np.floor(rng.exponential(4.0, n))
    slow = 1 + np.floor(rng.lognormal(np.log(40.0), 1.0, n))
    duration = np.where(v < p_never + p_slow, slow, fast)
    open_ = (v < p_never) | (day + duration > length)
    exact = open_at_month_end(length, np.array([p_never]), np.array([p_slow]), 4.0, 40.0, 1.0)[0]
    se = np.sqrt(exact * (1 - exact) / n)
    assert abs(open_.mean() - exact) <= 4 * se, (open_.mean(), exact, se)


def test_open_at_month_end_matches_the_written_disputes(oracle_world):
    # The oracle's integral over the day of occurrence and the resolution-time mixture must match the
    # share of written disputes still open at their month's end (resolved_at empty or after its last day).
    rng = np.random.default_rng(11)  # the same draws as build_world(seed=11) up to the unit process
    units, reg = build_registry("county", 2500, rng)
    params = WorldParams()
    up = unit_process(reg, params, rng)
    d = oracle_world.events[oracle_world.events.category == "dispute"]
    last_day = d.occurred_at.dt.to_period("M").dt.end_time.dt.normalize()
    observed = (d.resolved_at.isna() | (d.resolved_at > last_day)).to_numpy()
    unit = pd.Index(units.unit_id).get_indexer(d.unit_id)
    days = d.occurred_at.dt.days_in_month.to_numpy()
    expected = np.empty(len(d))
    for length in np.unique(days):
        share = open_at_month_end(
            int(length),
            up.p_never,
            up.p_slow,
            params.dispute_fast_mean_days,
            params.dispute_slow_median_days,
            params.dispute_slow_sigma,
        )
        expected[days == length] = share[unit[days == length]]
    obs, mean, se = _within_3se(pd.Series(expected), pd.Series(observed))
    assert abs(obs - mean) <= 3 * se, (obs, mean, se)


def _open_disputes_at_month_end(events: pd.DataFrame, unit_ids: pd.Series, months: int) -> np.ndarray:
    """(units × months) disputes occurred by a month's end and still open at it, from the events alone."""
    d = events[events.category == "dispute"]
    occurred = ((d.occurred_at.dt.year - 2018) * 12 + d.occurred_at.dt.month - 1).to_numpy()
    r = d.resolved_at
    resolved = ((r.dt.year - 2018) * 12 + r.dt.month - 1).fillna(10**6).to_numpy()
    unit = pd.Index(unit_ids).get_indexer(d.unit_id)
    k = np.arange(months)
    open_ = (occurred[:, None] <= k) & (resolved[:, None] > k)
    return np.stack([np.bincount(unit[open_[:, j]], minlength=len(unit_ids)) for j in k], axis=1)


def test_open_dispute_backlog_raises_next_month_red_risk(oracle_world, oracle_rows):
    # Direction: within a village or community, months with more open disputes (as a model could count
    # them from the events) carry a higher oracle p_red for the next month.
    backlog = _open_disputes_at_month_end(oracle_world.events, oracle_world.units.unit_id, 30)
    r = oracle_rows[oracle_rows.unit_id.str.len() == 12]
    period = pd.PeriodIndex(r.as_of, freq="M")
    month = (period.year - 2018) * 12 + period.month - 1
    r = r.assign(backlog=backlog[pd.Index(oracle_world.units.unit_id).get_indexer(r.unit_id), month])
    within = r[["backlog", "p_red"]] - r.groupby("unit_id")[["backlog", "p_red"]].transform("mean")
    assert within.backlog.corr(within.p_red) > 0.2


# --- calibration to the seed ------------------------------------------------------------------------


@pytest.mark.slow
def test_2020_red_free_shares_match_the_seed():
    rng = np.random.default_rng(2020)
    _, reg = build_registry("province", 45_000, rng)
    params = WorldParams()
    sim = simulate(unit_process(reg, params, rng), params, 36, rng, keep_events=False)
    shares = red_free_shares(sim.red_counts, reg.type_idx)
    tolerance = np.array([0.03, 0.03, 0.01])
    assert (np.abs(shares - np.asarray(SEED_SHARES)) <= tolerance).all(), shares
