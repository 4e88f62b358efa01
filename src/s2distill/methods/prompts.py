"""System 2 prompts a user can replace: ``method.options.prompts.<step>``.

Each method module lists its prompts in ``PROMPTS = {step: Prompt(default, required, allowed)}``;
:func:`prompts_of` returns the default for every step not overridden. A template is a Python
format string: it must use every ``required`` placeholder, may use the ``allowed`` ones, and
writes a literal brace as ``{{`` / ``}}``. ``s2distill validate`` checks overrides
(:func:`check_prompts`), so a bad template fails before any model call.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

from ..errors import ConfigError
from ..keys import did_you_mean


@dataclass(frozen=True)
class Prompt:
    default: str
    required: tuple[str, ...]  # placeholders a template must use
    optional: tuple[str, ...] = ()  # placeholders it may use

    @property
    def placeholders(self) -> tuple[str, ...]:
        return self.required + self.optional


def _fields(template: str, where: str, p: Prompt) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(f"{where}: not a valid template ({e}); write a literal brace as '{{{{' or '}}}}'") from None
    names = set()
    for _, name, _, _ in parsed:
        if name is None:
            continue
        base = name.split(".")[0].split("[")[0]
        if not base or base.isdigit():
            raise ConfigError(f"{where}: positional placeholder '{{{name}}}'; use named placeholders "
                              f"({', '.join('{' + n + '}' for n in p.placeholders)})")
        names.add(base)
    return names


def check_template(template: object, where: str, p: Prompt) -> str:
    """``template`` if it is a string using every required placeholder and no unknown one; else an error
    naming the step and the placeholders it must use."""
    if not isinstance(template, str):
        raise ConfigError(f"{where}: expected a template string, got {template!r}")
    used = _fields(template, where, p)
    must = ", ".join("{" + n + "}" for n in p.required)
    may = ", ".join("{" + n + "}" for n in p.optional) or "none"
    unknown = sorted(used - set(p.placeholders))
    if unknown:
        raise ConfigError(f"{where} uses unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}"
                          f"{did_you_mean(unknown[0], p.placeholders)}; it must use {must} and may use {may}")
    missing = [n for n in p.required if n not in used]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join('{' + m + '}' for m in missing)}; it must use {must} "
                          f"and may use {may}")
    return template


def prompts_of(cfg, method: str, spec: dict[str, Prompt]) -> dict[str, str]:
    """The template of every step of ``method``: the override from ``cfg.options['prompts']``, else the default."""
    raw = ((cfg.options if cfg is not None else None) or {}).get("prompts") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"method.options.prompts must map step -> template (steps of '{method}': "
                          f"{', '.join(spec)}), got {raw!r}")
    for step in raw:
        if step not in spec:
            raise ConfigError(f"unknown prompt method.options.prompts.{step} for method '{method}'"
                              f"{did_you_mean(step, spec)} (its steps: {', '.join(spec)})")
    return {step: check_template(raw[step], f"method.options.prompts.{step}", p) if step in raw else p.default
            for step, p in spec.items()}


def check_prompts(method_cfg, spec: dict[str, Prompt]) -> None:
    """Validation-time check of ``method.options.prompts`` for the configured method (its steps: ``spec``)."""
    raw = (method_cfg.options or {}).get("prompts")
    if raw is None:
        return
    if not spec:
        raise ConfigError(f"method '{method_cfg.name}' has no prompts to override; remove method.options.prompts")
    prompts_of(method_cfg, method_cfg.name, spec)
