"""Imports of the optional extras, with an install hint instead of a bare ``ModuleNotFoundError``."""

from __future__ import annotations

import importlib
from types import ModuleType

from graphrec.errors import ConfigError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module``, or raise a :class:`ConfigError` naming the ``graphrec[extra]`` that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"this needs the optional package '{module.split('.')[0]}' ({exc}); "
                          f"install it with: pip install 'graphrec[{extra}]'") from None
