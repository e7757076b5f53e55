"""Errors a user can act on.  The CLI turns these into one ``error: …`` line, exit 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a file, field or size the user can fix.  The message says what and where."""


class ConfigError(UserError):
    """An experiment file or setting is malformed; the message names the field."""


class WeightsError(UserError):
    """A weights file does not match the model; the message names the parameter."""


class DataError(UserError):
    """An input array, CSV file or data set is unusable; the message names file and line."""


class MemoryLimitError(UserError):
    """The requested sizes would not fit in memory; the message gives the estimate."""
