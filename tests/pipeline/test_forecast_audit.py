import numpy as np
import pandas as pd

from sanling.core.config import Config
from sanling.models.conformal import calibrate_on_validation, fitted_rows
from sanling.pipeline.forecast_audit import audit_rows


class _Model:
    train_window_ = ("2020-01", "2020-10")  # the last two months are left out (label_lag)

    @staticmethod
    def predict_proba(frame: pd.DataFrame) -> np.ndarray:
        x = frame["x"].to_numpy()
        p = np.column_stack([1 - x, 0.5 * x, 0.3 * x, 0.2 * x])
        return p / p.sum(1, keepdims=True)


def test_audit_rows_calibrate_the_same_tier_sets_as_the_whole_frame():
    rng = np.random.default_rng(0)
    months = [f"2020-{m:02d}" for m in range(1, 13)]
    frame = pd.DataFrame(
        {
            "as_of": np.repeat(months, 300),
            "unit_type": rng.choice(["village", "community", "enterprise"], 3600),
            "x": rng.random(3600),
        }
    )
    frame["tier"] = np.minimum((frame["x"] * 4 + rng.normal(0, 0.8, 3600)).clip(0).astype(int), 3)
    config = Config()
    small = audit_rows(frame, _Model, config)
    assert set(small["as_of"]) == set(months[9 - config.model.validation_periods : 10])
    whole = fitted_rows(_Model, frame)
    a, b = (
        calibrate_on_validation(
            _Model.predict_proba, f, f["tier"].to_numpy(), config.model.validation_periods
        )
        for f in (whole, fitted_rows(_Model, small))
    )
    assert a.to_dict() == b.to_dict()
