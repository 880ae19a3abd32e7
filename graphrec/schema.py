"""Dataclasses from YAML mappings, with unknown keys and wrong types reported by their dotted key.

Graph recipes and run configs are both plain dataclasses; :func:`from_mapping`
fills one from the mapping ``yaml.safe_load`` returned, and :func:`load_yaml`
reads a file with errors that name the file and line.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from graphrec.errors import ConfigError
from graphrec.utils import suggest


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)
    and reads ``1e-3`` as a number, as YAML 1.2 does (PyYAML, a YAML 1.1 parser, reads it as text)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *defaults' may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice (first on line "
                                                        f"{first + 1}); keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Safely load a YAML file; a missing file, a syntax error or a key given twice names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text ({exc})") from None
    try:
        payload = yaml.load(text, Loader=_Loader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML ({problem})") from None
    if payload is None:
        raise ConfigError(f"{path}: {what} is empty")
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: {what} must be a mapping of keys to values, found {type(payload).__name__}")
    return payload


def from_mapping(cls: type, payload: Any, where: str, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``payload``, checking every key and value type.

    Args:
        cls: the dataclass to build.
        payload: the mapping (from YAML).
        where: file name (or "config") used in error messages.
        prefix: dotted key of ``payload`` inside the file, for nested messages.
    """
    if isinstance(payload, cls):
        return payload
    if not isinstance(payload, dict):
        raise ConfigError(f"{where}: key '{prefix or '(top level)'}' must be a mapping, found {_describe(payload)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in payload:
        if key not in fields:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            # YAML 1.1 reads a bare on/off/yes/no key as a boolean.
            hint = " (YAML reads a bare on, off, yes or no as a boolean)" if isinstance(key, bool) else ""
            raise ConfigError(
                f"{where}: unknown key '{dotted}'{hint}{suggest(str(key), fields)}; valid keys here: {', '.join(fields)}"
            )
    kwargs = {}
    for name, field in fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name in payload:
            kwargs[name] = coerce(payload[name], hints[name], where, dotted)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key '{dotted}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ checks
        raise ConfigError(f"{where}: {exc}") from None


def coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    """Check ``value`` against type ``hint`` and convert where lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, where, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1] if len(errors) == 1 else ConfigError(
            f"{where}: key '{key}' has {_describe(value)}; expected {_type_name(hint)}"
        )
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: key '{key}' is {value!r}{suggest(str(value), map(str, args))}; choose one of {choices}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: key '{key}' must be a list, found {_describe(value)}")
        item_hint = args[0] if args else Any
        items = [coerce(v, item_hint, where, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, found {_describe(value)}")
        value_hint = args[1] if len(args) == 2 else Any
        return {str(k): coerce(v, value_hint, where, f"{key}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: key '{key}' must be a number, found {_describe(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: key '{key}' must be a finite number, found {value}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: key '{key}' must be an integer, found {_describe(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, found {_describe(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a string, found {_describe(value)}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: key '{key}' must be {hint.__name__}, found {_describe(value)}")
    return value


def to_mapping(obj: Any) -> Any:
    """Dataclass (nested) -> plain dicts and lists, ready for ``yaml.safe_dump``."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
