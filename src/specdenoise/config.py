"""Typed configs: nested dataclasses loaded from YAML and ``key=value`` overrides.

No globals: a config is built once, passed down, and saved with each run as resolved YAML.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path, PurePath
from typing import Any, TypeVar

import yaml

from .errors import ConfigError, first_line

T = TypeVar("T")


def to_dict(cfg: Any) -> Any:
    """Plain YAML-safe data: dataclasses become dicts, tuples lists, paths strings.

    A section whose YAML shape is not its fields (``model: {name: crn, channels: 48}``) says so
    with a ``to_config()`` method; its counterpart is a ``from_config(data, where)`` classmethod.
    """
    if hasattr(cfg, "to_config") and not isinstance(cfg, type):
        return to_dict(cfg.to_config())
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, PurePath):
        return str(cfg)
    return cfg


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a plain dict, recursing into nested dataclass fields."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}'; known: {sorted(names)}")
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kwargs[f.name] = coerce(data[f.name], hints[f.name], f"{where}{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad config for {where or cls.__name__}: {exc}") from None


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the field's type hint and convert where it is safe.

    YAML reads ``3e-4`` as a string (its floats need a dot), so float fields take numeric strings.
    Ints become floats, lists become tuples; anything else of the wrong type is a ConfigError
    naming ``key``. Hints this does not know (``Any``, dicts, classes) pass values through.
    One flat branch per kind of hint: longer than the project's other functions, but it reads top
    to bottom like a table, which splitting it would lose.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None:
            if len(options) < len(args):
                return None
            raise ConfigError(f"{key} must not be null")
        errors = []
        for option in options:
            try:
                return coerce(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: no allowed type fits {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if value is None:  # an empty YAML section (``model:`` and nothing under it)
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a section (a mapping of keys), got {value!r}")
        if hasattr(hint, "from_config"):
            return hint.from_config(value, where=f"{key}.")
        return from_dict(hint, value, where=f"{key}.")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(
                f"{key} must be a string, got {value!r} (quote it in YAML, e.g. {key}='\"{value}\"')"
            )
        return value
    if isinstance(hint, type) and issubclass(hint, PurePath):
        if not isinstance(value, (str, PurePath)):
            raise ConfigError(f"{key} must be a path, got {value!r}")
        return hint(value)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{key} must have {len(args)} items, got {len(value)}: {value!r}")
            items = [coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        elif args:
            items = [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        else:
            items = list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=3e-4)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if node.get(part) is None:  # missing, or an empty YAML section
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls`` <- YAML file <- overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path, "config file", "a mapping of keys")
    apply_overrides(data, list(overrides or []))
    return from_dict(cls, data)


def read_yaml(path: str | Path) -> Any:
    """A YAML file's data (an empty file is ``{}``). A file that is no text or no valid YAML is a
    one-line ConfigError naming it: the config, search-space and tuning loaders all read here."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({first_line(exc)})") from None


def read_yaml_mapping(path: str | Path, what: str, expected: str) -> dict[str, Any]:
    """:func:`read_yaml` of a file that must exist and hold a mapping; ``what`` and ``expected``
    word the one-line errors (e.g. "config file", "a mapping of keys")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold {expected}, got {type(data).__name__}")
    return data


def dump(cfg: Any, path: str | Path) -> None:
    from .fileio import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
