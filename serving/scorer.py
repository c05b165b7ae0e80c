"""The interface the API scores through. Only the protocol lives here: the real scorer (the champion
model loaded from the registry, features built by ``features.build``, reasons by ``models.explain``)
is written in the pipeline and handed to :func:`serving.app.create_app`, so the API never re-codes
preprocessing and never imports MLflow itself."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Scorer(Protocol):
    """Something that returns fresh explained scores and describes the model behind them."""

    def score(self, unit_ids: list[str], as_of: str | None = None) -> list[dict]:
        """Explained scores (docs/operations.md shape) for ``unit_ids`` at ``as_of`` (``None``: the latest month)."""
        ...

    def model_info(self) -> dict:
        """The serving model: at least ``version``; also its training window and backtest metrics."""
        ...
