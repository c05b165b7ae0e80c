"""Store errors the API turns into HTTP statuses."""

from __future__ import annotations

from sanling.core.errors import DataError


class RecordNotFound(DataError):
    """The record does not exist — or lies outside the caller's township, which must look the same."""
