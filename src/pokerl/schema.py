"""The one typed loader: YAML (or Hydra) mappings become dataclasses, and every mistake is one line.

Every config group (game profile, reward, env, model, ppo, the train config) is described by
dataclasses; :func:`from_mapping` checks keys and types against them, recursively (nested
dataclasses, ``list[X]``, ``tuple[X, ...]``, ``dict[K, V]``, ``X | None``, unions), and names the
file and the key path in its :class:`~pokerl.errors.ConfigError`. A dataclass may check values in
``__post_init__`` by raising :class:`ValueError`; the loader turns it into the same one-line error.
:func:`load_yaml` reads ``configs/<group>/<name>.yaml`` or a path, merging a ``base:`` config first
(e.g. Pokémon Blue is Pokémon Red with another ROM).

OmegaConf's structured configs would check types too, but they have no unions (a RAM address is an
int or a hex string) and report errors over several lines; this loader is small and says exactly
where a key is wrong.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, Union, get_type_hints

import yaml

from pokerl.errors import ConfigError, one_line

T = TypeVar("T")


def _at(where: str, path: str) -> str:
    return f"{where}: {path}" if path else where


def _name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if isinstance(hint, type):
        return {"str": "string", "int": "int", "float": "number", "bool": "bool"}.get(hint.__name__, hint.__name__)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_name(a) for a in args)
    return getattr(origin, "__name__", str(hint))


def convert(value: Any, hint: Any, where: str, path: str) -> Any:
    """``value`` checked against the type ``hint`` (and converted: list → tuple, int → float)."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, where, path)
            except ConfigError:
                continue
        raise ConfigError(f"{_at(where, path)}: expected {_name(hint)}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where, path)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_at(where, path)}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [convert(v, item, where, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_at(where, path)}: expected a mapping, got {value!r}")
        key_hint, value_hint = args if args else (Any, Any)
        out = {}
        for k, v in value.items():
            key = convert(k, key_hint, where, f"{path}.{k}" if path else str(k))
            out[key] = convert(v, value_hint, where, f"{path}.{k}" if path else str(k))
        return out
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is type(None):
        if value is None:
            return None
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ConfigError(f"{_at(where, path)}: expected {_name(hint)}, got {value!r}")


def from_mapping(cls: type[T], data: Any, where: str, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys, wrong types and bad values are one-line errors.

    ``where`` names the source (a file or a config group), ``path`` the key path inside it.
    """
    data = plain(data)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_at(where, path)}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields or not fields[key].init:
            known = ", ".join(sorted(n for n, f in fields.items() if f.init))
            raise ConfigError(f"{where}: unknown key '{f'{path}.{key}' if path else key}' (known keys: {known})")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = convert(data[name], hints[name], where, sub)
        elif f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_at(where, sub)}: required key is missing")
    try:
        return cls(**kwargs)
    except ValueError as err:  # a value check in __post_init__
        raise ConfigError(f"{where}: {path + '.' if path else ''}{one_line(err)}") from None


def plain(value: Any) -> Any:
    """OmegaConf containers → plain dicts and lists (configs from Hydra and from YAML look the same)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def config_path(group: str, name: str) -> Path:
    """The shipped config file ``configs/<group>/<name>.yaml``."""
    return Path(str(importlib.resources.files("pokerl.configs") / group / f"{name}.yaml"))


def read_yaml(path: Path) -> Any:
    """A YAML file's data; invalid YAML is a one-line error naming the file."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({one_line(err)})") from None


def _read(group: str, name_or_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str, Path]:
    text = str(name_or_path)
    is_path = text.endswith((".yaml", ".yml")) or os.sep in text
    path = Path(text).expanduser() if is_path else config_path(group, text)
    if not path.is_file():
        raise ConfigError(f"no {group} config {text!r} (looked for {path})")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data, str(path), path


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists too) is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_base(group: str, data: Mapping[str, Any], source: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` with its ``base:`` config (a name in the same group, or a path) merged under it."""
    data = dict(plain(data))
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{source}: base: expected a config name, got {base!r}")
    if base in seen:
        raise ConfigError(f"{source}: base: {base!r} is its own base")
    parent, parent_source, _ = _read(group, base)
    return merge(resolve_base(group, parent, parent_source, (*seen, base)), data)


def load_yaml(group: str, name_or_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """A config by name (``configs/<group>/<name>.yaml``) or path, its ``base:`` merged; (data, source)."""
    data, source, _ = _read(group, name_or_path)
    return resolve_base(group, data, source, (str(name_or_path),)), source
