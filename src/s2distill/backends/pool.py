"""Building a run's backends from its config, one engine at a time: the base model's, the teacher's or the
distilled model's, in this process or as a Ray Data actor pool (``distributed``)."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..teacher import teacher_config
from .base import Backend

BackendFactory = Callable[[Any, str, dict], Backend]


def backend_spec(cfg: Any, weights: str, trained: dict) -> tuple[type[Backend], dict[str, Any]]:
    """The backend class for the ``weights`` 'base' or 'distilled' and the keyword arguments to build it with;
    ``trained`` holds the trained model's paths (:func:`distilled_paths`). The class comes from the
    registry (a built-in name, a plug-in's name or ``package.module:attr``) and says its own arguments
    (``config_kwargs``)."""
    from ..registry import load_plugins
    from .base import backend_class

    load_plugins(cfg.plugins)  # also inside a Ray actor, where the driver's imports did not happen
    cls = backend_class(cfg.backend.name)
    return cls, cls.config_kwargs(cfg, weights, trained)


def default_backend_factory(cfg: Any, weights: str, trained: dict) -> Backend:
    """Build the backend for the ``weights`` 'base' or 'distilled'; ``trained``: the trained model's paths."""
    cls, kwargs = backend_spec(cfg, weights, trained)
    return cls(**kwargs)


def backend_model_id(cfg: Any, weights: str, trained: dict) -> str:
    """The ``model_id`` (cache-key part) the backend for ``weights`` will have, computed without starting it.

    The Ray path needs it in the driver, where no engine runs; it equals the single-process
    backend's so one run's sample cache serves both.
    """
    cls, kwargs = backend_spec(cfg, weights, trained)
    if cfg.distributed.enabled and cfg.distributed.endpoints:  # the same weights behind every endpoint
        return f"endpoints#{kwargs.get('served_model') or ''}"
    return cls.model_id_of(**kwargs)


def _actor_backend(factory: BackendFactory, cfg: Any, weights: str, trained: dict, slot: int) -> Backend:
    """Runs inside a Ray actor: this slot's backend (its own engine, or its endpoint from the list)."""
    eps = cfg.distributed.endpoints
    if eps:
        cfg = dataclasses.replace(cfg, backend=dataclasses.replace(cfg.backend, base_url=eps[slot % len(eps)]))
    return factory(cfg, weights, trained)


def distilled_paths(model_dir: Path) -> dict:
    """Where the train stage put the distilled model (``trained``, what the distilled backend is built with)."""
    return {"adapter": str(model_dir / "adapter") if (model_dir / "adapter").exists() else None,
            "merged": str(model_dir / "merged"), "lora_gguf": str(model_dir / "distilled-lora.gguf")}


class Engines:
    """The run's live backend: asking for other weights (``base``, ``teacher``, ``distilled``) or another
    path (Ray for the stages in ``distributed.stages``) closes the one that runs, so one engine at a time
    holds the machine. In-process engines record their device and dtype in ``device_file``."""

    def __init__(self, cfg: Any, factory: BackendFactory, log: Callable[[str], None], device_file: Path):
        self.cfg, self.factory, self.log, self.device_file = cfg, factory, log, device_file
        self.live: dict[str, Backend] = {}

    def get(self, weights: str, trained: dict | None = None, stage: str | None = None) -> Backend:
        d = self.cfg.distributed
        ray_path = d.enabled and stage in d.stages
        key = f"{weights}@ray" if ray_path else weights
        if key not in self.live:
            self.close()
            cfg = teacher_config(self.cfg) if weights == "teacher" else self.cfg  # the teacher: its model and backend
            built_as = "base" if weights == "teacher" else weights
            if ray_path:
                from functools import partial

                from ..distributed import RayBackend

                self.log(f"[backend] Ray Data: {d.num_actors} actor(s) x {cfg.backend.name} ({key}) "
                         f"on {d.address or 'a local Ray instance'}")
                self.live[key] = RayBackend(
                    partial(_actor_backend, self.factory, cfg, built_as, trained or {}),
                    model_id=backend_model_id(cfg, built_as, trained or {}), num_actors=d.num_actors,
                    batch_size=d.batch_size, num_cpus_per_actor=d.num_cpus_per_actor,
                    num_gpus_per_actor=d.num_gpus_per_actor, address=d.address, runtime_env=d.runtime_env or None,
                    per_slot=bool(d.endpoints))
            else:
                self.log(f"[backend] starting {cfg.backend.name} ({key}{', ' + cfg.model if key == 'teacher' else ''})")
                self.live[key] = self.factory(cfg, built_as, trained or {})
                self._record_device(key, self.live[key])
        return self.live[key]

    def _record_device(self, weights: str, backend: Backend) -> None:
        """In-process engines (transformers): the device and dtype they resolved, in RUN/backend_device.json."""
        if not isinstance(backend, Backend) or not isinstance(backend.device, str):
            return
        from ..rundir import write_json

        seen = json.loads(self.device_file.read_text()) if self.device_file.is_file() else {}
        seen[weights] = {"backend": self.cfg.backend.name, "device": backend.device, "dtype": str(backend.dtype)}
        write_json(self.device_file, seen)
        self.log(f"[backend] {self.cfg.backend.name} ({weights}) on {backend.device} in {backend.dtype}")

    def close(self) -> None:
        """Close every live engine (frees the cores and memory, e.g. for training)."""
        for key in list(self.live):
            self.live.pop(key).close()


__all__ = ["BackendFactory", "Engines", "backend_model_id", "backend_spec", "default_backend_factory", "distilled_paths"]
