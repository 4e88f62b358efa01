"""The trainer's settings: the config's ``train`` section plus what the run supplies."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import FitSection, TrainerOptions
from ..errors import ConfigError
from ..keys import check_keys, field_names

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig(FitSection, TrainerOptions):
    """The trainer's settings, one flat list: the ``train`` section's trainer keys and its ``fit`` section, plus
    what the run supplies (``seed``) and two trainer internals. :meth:`from_section` (``settings_of(cfg)``) builds
    it from a run config."""

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

    @classmethod
    def from_section(cls, train: Any, seed: int = 0) -> "TrainConfig":
        """The trainer's settings of a config's ``train`` section (its trainer keys and ``fit``) and the run's seed."""
        own = {f.name: getattr(train, f.name) for f in dataclasses.fields(TrainerOptions)}
        return cls(**own, **dataclasses.asdict(train.fit), seed=seed)

    def trainer_json(self) -> dict:
        """What the checkpoint key and the train summary record (every key: all of them are the trainer's)."""
        return self.to_json()

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
