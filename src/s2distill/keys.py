"""Checking names a user wrote: the one unknown-key checker (with did-you-mean) and the typed
coercion of YAML values that every config section and options class goes through."""
from __future__ import annotations

import dataclasses
import difflib
import re
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


def opt(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
        **meta: Any) -> Any:
    """A config field with its help text and any other metadata (the fingerprint rules of ``train`` keys:
    ``trainer=False``, ``launcher="accelerate"``): ``n: int = opt(4, "samples per input")``. The help is what
    ``s2distill validate --explain KEY`` prints and what docs/config.md lists."""
    if not help:
        raise ValueError("a config field needs its help text")
    md = {"help": help, **meta}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=md)
    return dataclasses.field(default=default, metadata=md)


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    key: str  # dotted: eval.max_disagreement
    type: str
    default: str  # YAML-like; "(section)" for a nested section
    help: str


def _section_of(tp: Any) -> Any:
    """The dataclass a field's type is or holds (``TeacherConfig | None``), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), None)


def _shown(value: Any) -> str:
    return {None: "null", True: "true", False: "false"}.get(value, value) if isinstance(value, (bool, type(None))) \
        else repr(value) if isinstance(value, str) else str(value)


def key_docs(cls: Any, prefix: str = "") -> list[KeyDoc]:
    """Every key of the config dataclass ``cls`` and of its sections, depth first, with type, default and help."""
    hints, out = typing.get_type_hints(cls), []
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        section = _section_of(tp)
        if f.default is not dataclasses.MISSING:
            default = _shown(f.default)
        else:
            default = "(section)" if section is not None else _shown(f.default_factory())  # type: ignore[misc]
        tname = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", str(tp)).replace("NoneType", "null") \
            if typing.get_args(tp) else _type_name(tp)
        out.append(KeyDoc(key, tname, default, f.metadata.get("help", "")))
        if section is not None:
            out += key_docs(section, key + ".")
    return out


def explain(cls: Any, key: str) -> str:
    """What ``key`` (dotted) of the config dataclass ``cls`` is: type, default, help; a did-you-mean if unknown."""
    docs = {d.key: d for d in key_docs(cls)}
    if key not in docs:
        raise ConfigError(f"unknown config key '{key}'{did_you_mean(key, docs)} (s2distill validate --explain "
                          "SECTION lists a section's keys, e.g. --explain eval)")
    d = docs[key]
    lines = [f"{d.key} ({d.type}, default {d.default}): {d.help}"]
    lines += [f"  {c.key} ({c.type}, default {c.default}): {c.help}" for c in docs.values()
              if c.key.startswith(key + ".") and c.key.count(".") == key.count(".") + 1]
    return "\n".join(lines)


__all__ = ["KeyDoc", "build", "check_choice", "check_keys", "coerce", "did_you_mean", "explain", "field_names",
           "key_docs", "opt"]
