"""Errors a user can act on. The CLI prints them as one line and exits non-zero; nothing else
reaches the user as a traceback."""

from __future__ import annotations


class SanlingError(Exception):
    """An error caused by the user's input or configuration, with a message that names what is wrong."""

    exit_code = 2


class ConfigError(SanlingError):
    """The configuration file is unreadable or a key is invalid."""


class DataError(SanlingError):
    """A data file cannot be used at all (unreadable, or a required column is missing)."""


class ModelError(SanlingError):
    """No model where one is needed (no champion yet), or a gate refused an action."""
