"""The one artifact serving loads whole: the fitted model with its preprocessing and calibration,
the feature declarations its reasons are rendered from, the policy, and the configuration the
features were built with. Training writes it; batch scoring and the API read it; nothing re-codes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sanling.core.config import Config
from sanling.core.vocabulary import TIER_ZH, TIERS
from sanling.models.explain import ReasonSpec, explain_rows
from sanling.models.policy import decide, risk_score
from sanling.models.tier_model import TierModel


@dataclass
class ModelBundle:
    model: TierModel
    specs: list[ReasonSpec]
    registry_version: str
    config: Config
    train_window: tuple[str, str]
    info: dict = field(default_factory=dict)  # backtest metrics, data fingerprint, n rows …

    @property
    def feature_names(self) -> list[str]:
        return self.model.feature_names

    def explained(self, frame: pd.DataFrame, peers: pd.DataFrame, *, top: int = 5) -> list[dict]:
        """Explained scores in the contract's shape (without unit_name/township, which the caller
        adds from the registry) for every row of ``frame``."""
        return self.scored(frame, peers, top=top)[0]

    def scored(
        self, frame: pd.DataFrame, peers: pd.DataFrame, *, top: int = 5
    ) -> tuple[list[dict], np.ndarray]:
        """:meth:`explained` and the (n, 4) probabilities its rows were rounded from (the batch
        scorer reuses them for the peers' risk rather than predicting twice)."""
        names = self.feature_names
        # the frame, not a matrix: the stacked model reads the unit's record and the as-of month too;
        # probabilities and contributions in one pass (the same values as predict_proba, contributions)
        proba, contrib, _ = self.model.proba_and_contributions(frame)
        tiers = decide(proba, self.config.policy, getattr(self.model, "decision_thresholds_", None))
        scores = risk_score(proba)
        reasons, protective = explain_rows(
            contrib,
            frame[names].reset_index(drop=True),
            peers[names].reset_index(drop=True),
            self.specs,
            top=top,
        )
        out = []
        # Python floats and ints (``tolist``) once, rather than numpy scalars row by row: the same values
        p_rows, score_list, tier_list = (
            proba.tolist(),
            np.asarray(scores).tolist(),
            np.asarray(tiers).tolist(),
        )
        for i, (uid, as_of) in enumerate(zip(frame["unit_id"], frame["as_of"], strict=True)):
            tier = TIERS[int(tier_list[i])]
            out.append(
                {
                    "unit_id": str(uid),
                    "as_of": str(as_of),
                    "tier": tier,
                    "tier_zh": TIER_ZH[tier],
                    "risk_score": float(score_list[i]),
                    "probabilities": {t: round(p, 4) for t, p in zip(TIERS, p_rows[i], strict=True)},
                    "reasons": reasons[i],
                    "protective": protective[i],
                }
            )
        return out, proba
