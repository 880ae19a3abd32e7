"""graphrec: graph-centric recommendation."""

import os as _os

_os.environ.setdefault("DGLBACKEND", "pytorch")

from graphrec.errors import CheckpointError, ConfigError, DataError, GraphrecError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["GraphrecError", "DataError", "ConfigError", "CheckpointError", "__version__"]
