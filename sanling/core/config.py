"""The one typed configuration: the YAML of docs/configuration.md (every key optional) and the deployment
settings read from the environment. Loaded once at the edge (the CLI, the API's start-up) and passed
down; stages receive the sections they need, never read files or the environment themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sanling.core.errors import ConfigError
from sanling.core.vocabulary import CATEGORIES_ZH, DEFAULT_TIER_RULES


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierRules(_Section):
    """Outcome rules, checked red → orange → yellow; none true → blue."""

    red: str = DEFAULT_TIER_RULES["red"]
    orange: str = DEFAULT_TIER_RULES["orange"]
    yellow: str = DEFAULT_TIER_RULES["yellow"]


class FeatureParams(_Section):
    windows: tuple[int, ...] = (1, 3, 6, 12, 24)
    half_lives: tuple[float, ...] = (3.0, 12.0)
    knn_k: int = Field(8, ge=1, le=64)


class ModelParams(_Section):
    """LightGBM hyperparameters, seed bagging and the stacked calibration of
    :class:`sanling.models.tier_model.TierModel` (docs/model.md)."""

    # cumulative: binary models of P(≥yellow), P(≥orange), P(red) with the order enforced — the
    # quantity the reasons explain (P(≥orange)) is then one stack of margins, exactly additive.
    formulation: Literal["multiclass", "cumulative"] = "cumulative"
    num_leaves: int = Field(15, ge=2, le=1024)
    # TreeSHAP costs trees × leaves × depth²: a depth cap keeps batch explanation fast.
    max_depth: int = Field(-1, ge=-1, le=64, description="-1: no cap")
    learning_rate: float = Field(0.1, gt=0, le=1)
    n_estimators: int = Field(400, ge=1, le=10000)
    min_child_samples: int = Field(100, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(1.0, ge=0)
    early_stopping_rounds: int = Field(30, ge=1)
    # Seed bagging: boosters per level that differ only in their seed, margins averaged.
    n_seeds: int = Field(3, ge=1, le=50, description="boosters per cumulative level (seed bagging)")
    validation_periods: int = Field(
        4, ge=2, description="latest as-of dates held out: early stopping, then calibration"
    )
    calibration_periods: int = Field(
        2, ge=1, description="the latest of the held-out dates, on which the stack is fitted"
    )
    # stacked: a·margin + c·logit(unit's smoothed record) + b fitted on held-out time (docs/model.md);
    # platt: the same without the record term; none: raw margins.
    calibration: Literal["stacked", "platt", "none"] = "stacked"
    history_weight: float = Field(
        6.0, gt=0, description="pseudo-months of the unit type's rate in the record term"
    )
    count_model: bool = Field(
        True, description="stack the count-structured forecast (per-category Poisson rates, docs/model.md)"
    )
    # 0.1: chosen on validation worlds 100–103 and the small real panel (docs/model.md, "The stack").
    stack_ridge: float = Field(
        0.1, ge=0, description="ridge of the stack (weights and intercept) toward the count model alone"
    )
    # Labels still settling: the latest as-of months whose outcome windows ended too recently for the
    # late reports, escalations and corrections to be in (docs/model.md, "Labels still settling").
    # "auto": the fewest months after which ≤ 1 % of past windows' tiers still changed, read from the
    # records' own delays (0 when nothing is recorded late).
    label_lag: Literal["auto"] | Annotated[int, Field(ge=0, le=12)] = Field(
        "auto", description="latest labelled as-of months left out of fitting, or auto"
    )
    max_train_rows: int = Field(1_500_000, ge=1000, description="uniform sample of training rows beyond this")
    linear_max_rows: int = Field(
        200_000, ge=1000, description="uniform sample of fit rows for the linear model"
    )
    seed: int = 20210121
    num_threads: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _slices(self) -> ModelParams:
        if self.calibration_periods >= self.validation_periods:
            raise ValueError(
                "calibration_periods must be smaller than validation_periods (early stopping needs a slice)"
            )
        return self


class PolicyParams(_Section):
    """How probabilities become a tier (``sanling.models.policy``, docs/model.md)."""

    kind: Literal["capacity", "peer_multiple", "thresholds", "expected_cost", "argmax"] = "capacity"
    # capacity: the share of units per tier, fitted as probability thresholds on each deployment's
    # own calibration months. Red 8 %: the few a county can visit first; on validation seed 100 (never
    # an evaluation seed) even the true probabilities catch only 47 % of next month's red units with
    # the top 8 % (35 % with the top 5 %), so a smaller red list cannot reach a red recall of 0.4.
    capacity: dict[str, float] = Field(default_factory=lambda: {"red": 0.08, "orange": 0.12, "yellow": 0.25})
    # peer_multiple: red when P(red) ≥ 3 × the mean P(red) of the calibration months, …
    multiples: dict[str, float] = Field(default_factory=lambda: {"red": 3.0, "orange": 2.0, "yellow": 1.0})
    # thresholds: fixed cumulative probabilities — red if P(red) ≥ t_red, else orange if P(≥orange) ≥ …
    thresholds: dict[str, float] = Field(
        default_factory=lambda: {"red": 0.05, "orange": 0.25, "yellow": 0.33}
    )
    # cost[true][decided]; missing a red costs far more than a false alarm.
    cost_matrix: list[list[float]] = Field(
        default_factory=lambda: [[0, 1, 2, 3], [2, 0, 1, 2], [6, 3, 0, 1], [20, 12, 4, 0]]
    )

    @field_validator("capacity")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if (
            set(v) - {"red", "orange", "yellow"}
            or any(not 0 <= x <= 1 for x in v.values())
            or sum(v.values()) > 1
        ):
            raise ValueError("capacity holds shares of units for red, orange, yellow, adding up to at most 1")
        return v

    @field_validator("cost_matrix")
    @classmethod
    def _square(cls, v: list[list[float]]) -> list[list[float]]:
        if len(v) != 4 or any(len(r) != 4 for r in v):
            raise ValueError("must be a 4×4 matrix (true tier × decided tier)")
        return v


class BacktestParams(_Section):
    # Quarterly, as a county retrains: the count model's multipliers and every feature move with each
    # month's records without a refit (docs/model.md, "Backtest cadence").
    refit_every: int = Field(3, ge=1, description="refit the model every N test as-of dates")
    min_train_periods: int = Field(6, ge=1)
    # With late records, also run the backtest with final-record training labels and report the
    # difference (summary.naive_labels): the cost of honesty, measured on demand — it doubles the time.
    naive_labels: bool = False


class Config(_Section):
    """docs/configuration.md. Every key optional; unknown keys are an error that names them."""

    horizon_months: int = Field(1, ge=1, le=24)
    cadence_months: int = Field(1, ge=1, le=24)
    test_periods: int = Field(12, ge=1)
    tiers: TierRules = TierRules()
    categories: dict[str, str] = Field(default_factory=lambda: dict(CATEGORIES_ZH))
    features: FeatureParams = FeatureParams()
    model: ModelParams = ModelParams()
    policy: PolicyParams = PolicyParams()
    backtest: BacktestParams = BacktestParams()
    # A units column that measures how hard a unit's events are looked for (docs/configuration.md);
    # unset: grid workers per 1,000 people (employees) when the units carry grid_workers.
    reporting_effort: str | None = Field(None, description="units column of reporting effort")

    @field_validator("categories")
    @classmethod
    def _identifiers(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not name.isidentifier() or not name.islower():
                raise ValueError(f"category name {name!r} must be a lower-case identifier")
        return {**CATEGORIES_ZH, **v}


def _format(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"key '{key}': {msg}")
    return f"{source}: invalid configuration: " + "; ".join(parts)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML configuration file; ``None`` gives the defaults.

    Raises :class:`ConfigError` naming the file and the key.
    """
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{p}: configuration file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the configuration must be a mapping of keys to values")
    return config_from_dict(raw, source=str(p))


def config_from_dict(raw: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format(e, source)) from None


class Settings(BaseSettings):
    """Deployment settings, from the environment (``SANLING_*``) — read once, at the edge."""

    model_config = SettingsConfigDict(env_prefix="SANLING_", extra="ignore")

    home: Path = Path(".sanling")
    database_url: str | None = None  # default: sqlite file under ``home``
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    secret_key: str | None = None  # session-cookie signing; default: a random key kept under ``home``
    model_name: str = "sanling-tier"
    data_dir: Path | None = None  # the data directory POST /v1/score builds fresh features from
    dask: str | None = None  # `local` or tcp://HOST:8786: score/train/backtest on Dask (docs/operations.md)
    # With Dask, train and backtest fit on the client: at most this many rows (a sample of whole units).
    dask_training_rows: int = Field(3_000_000, ge=1_000)
    cookie_secure: bool = False  # set true behind HTTPS
    # Request bodies above this are answered 413 before anything parses them (docs/operations.md).
    max_request_bytes: int = Field(1_000_000, ge=1_024, le=1_000_000_000)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'sanling.db').resolve()}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.home / "mlartifacts").resolve()
