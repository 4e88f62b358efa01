"""The trainer's settings: the config's ``train`` section plus what the run supplies."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import TrainSection
from ..errors import ConfigError
from ..keys import check_keys, field_names

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig(TrainSection):
    """The trainer's settings: the config's ``train`` section (every key, one list) plus what the run
    supplies (``seed``) and two trainer internals. ``settings_of(cfg)`` builds it from a run config."""

    target_modules: str | tuple[str, ...] = "all-linear"  # the section's string, or a tuple of module names
    seed: int = 0
    logging_steps: int = 1
    optim: str = "adamw_torch"

    def __post_init__(self) -> None:
        if self.method not in ("lora", "full"):
            raise ConfigError(f"train method must be 'lora' or 'full', got '{self.method}'")
        from ..precision import check_train_section

        check_train_section(self)
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0")

    def trainer_json(self) -> dict:
        """:meth:`to_json` without the section keys the trainer never reads (the run's, the launcher's, the
        curriculum's): what the checkpoint key and the train summary record."""
        run_level = {f.name for f in dataclasses.fields(TrainSection) if f.metadata.get("trainer") is False}
        return {k: v for k, v in self.to_json().items() if k not in run_level}

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(self.target_modules, tuple):
            d["target_modules"] = list(self.target_modules)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        check_keys(d, field_names(cls), lambda k: f"unknown train option '{k}'", "known")
        if isinstance(d.get("target_modules"), list):
            d["target_modules"] = tuple(d["target_modules"])
        return cls(**d)
