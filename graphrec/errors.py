"""The errors graphrec raises for a user's mistake.

Every error a person can cause (a bad file, a bad recipe, a bad config, a bad
checkpoint) is a :class:`GraphrecError`; its message says where the problem is
(file, line, column or config key) and what was expected. The CLI prints the
message on one line and exits with code 2.
"""

from __future__ import annotations


class GraphrecError(Exception):
    """Base class of every error caused by user input."""


class DataError(GraphrecError):
    """A data file or table is missing, malformed or inconsistent."""


class ConfigError(GraphrecError):
    """A recipe or run config is malformed, has an unknown key or a bad value."""


class CheckpointError(GraphrecError):
    """A checkpoint or cache file is missing, corrupt or does not fit the model."""
