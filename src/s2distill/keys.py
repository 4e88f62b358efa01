"""Checking names a user wrote: the one unknown-key checker (with did-you-mean) and the typed
coercion of YAML values that every config section and options class goes through."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import ConfigError


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_keys(given: Iterable[str], allowed: Sequence[str], unknown: Callable[[str], str],
               listing: str = "allowed") -> None:
    """Every key of ``given`` is one of ``allowed``; else ``unknown(key)``, a did-you-mean and the list."""
    allowed = list(allowed)
    for k in given:
        if k not in allowed:
            raise ConfigError(f"{unknown(k)}{did_you_mean(k, allowed)} ({listing}: {', '.join(map(str, allowed))})")


def check_choice(key: str, value: str, choices: Sequence[str], known: Sequence[str] | None = None) -> None:
    """``value`` of ``key`` is one of ``choices``; the error lists ``known`` (default: the choices)."""
    if value not in choices:
        raise ConfigError(f"unknown {key} '{value}'{did_you_mean(value, choices)} "
                          f"(known: {', '.join(known if known is not None else choices)})")


def field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("NoneType", "null")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` (a dataclass is built from a mapping), or an error naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, dict) and any(dataclasses.is_dataclass(a) for a in args):  # a section (e.g. teacher):
            return coerce(value, next(a for a in args if dataclasses.is_dataclass(a)), where)  # its own key errors
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build(tp, value, where)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def build(cls: Any, data: dict, where: str = "", unknown: Callable[[str], str] | None = None) -> Any:
    """The dataclass ``cls`` from ``data``: unknown keys fail with a did-you-mean, values are coerced.

    ``unknown(key)`` words the error (default: ``unknown config key '<where>.<key>'``)."""
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    check_keys(data, names, unknown or (lambda k: f"unknown config key '{f'{where}.{k}' if where else k}'"))
    return cls(**{k: coerce(v, hints[k], f"{where}.{k}" if where else str(k)) for k, v in data.items()})


__all__ = ["build", "check_choice", "check_keys", "coerce", "did_you_mean", "field_names"]
