"""Tiny feature frames in memory for the model tests: tiers follow a known latent risk, so a
working model must find the signal and a leaking one would be caught."""

import numpy as np
import pandas as pd


def make_frame(n_units: int = 300, n_months: int = 18, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = [f"2020-{m:02d}" if m <= 12 else f"2021-{m - 12:02d}" for m in range(1, n_months + 1)]
    unit = np.repeat(np.arange(n_units), n_months)
    as_of = np.tile(months, n_units)
    frailty = rng.normal(0, 1, n_units)[unit]
    x1 = rng.normal(0, 1, len(unit)) + 0.5 * frailty
    x2 = rng.poisson(2, len(unit)).astype(float)
    x2[rng.random(len(unit)) < 0.05] = np.nan
    kind = np.array(["village", "community", "enterprise"])[unit % 3]
    latent = 0.9 * x1 + 0.3 * np.nan_to_num(x2, nan=2) + np.where(kind == "enterprise", -1.5, 0.0)
    latent += rng.logistic(0, 1, len(unit))
    tier = np.digitize(latent, [0.5, 2.0, 3.2])
    return pd.DataFrame(
        {
            "unit_id": [f"u{u:04d}" for u in unit],
            "as_of": as_of,
            "unit_type": kind,
            "township": [f"t{u % 4}" for u in unit],
            "county": "c0",
            "x1": x1.astype(np.float32),
            "x2": x2.astype(np.float32),
            "noise": rng.normal(0, 1, len(unit)).astype(np.float32),
            "kind": pd.Categorical(kind, categories=sorted(set(kind))),
            "tier": pd.array(tier, dtype="Int8"),
        }
    )


FEATURES = ["x1", "x2", "noise", "kind"]
