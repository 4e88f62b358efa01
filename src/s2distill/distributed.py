"""Generation across many engines with Ray Data.

``RayBackend`` is a :class:`Backend` whose ``iter_generate`` runs the requests as a Ray Data
pipeline: the requests become a dataset, ``map_batches`` sends batches to a pool of actors that
each own one backend (a managed llama.cpp or vLLM server per actor, or one OpenAI-compatible
endpoint from a list), and the completions stream back to the driver as each batch finishes.
The driver wraps it in the same ``CachingBackend`` as the single-process path, so every sample
is appended to the run's sample cache the moment it arrives: a dead actor's batch is retried by
Ray (its results never reached the driver, so nothing is written twice), and a dead driver
resumes from the cache like any run. Scheduling, retries and back-pressure are Ray's.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .backends.base import Backend
from .errors import BackendError, ConfigError
from .types import Completion, GenRequest, SamplingParams

__all__ = ["RayBackend", "ray_init", "request_to_json", "request_from_json"]

BackendMaker = Callable[[int], Backend]  # actor slot -> backend (built inside the actor)


def request_to_json(req: GenRequest) -> str:
    return json.dumps({"messages": list(req.messages), "params": req.params.to_json()}, ensure_ascii=False)


def request_from_json(s: str) -> GenRequest:
    d = json.loads(s)
    return GenRequest(messages=tuple(d["messages"]), params=SamplingParams.from_json(d["params"]))


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"{e}; distributed generation runs on Ray Data; fix: pip install 's2distill[distributed]' "
                          "(or set distributed.enabled=false)") from e
    return ray


def ray_init(address: str | None = None, num_cpus: float | None = None, runtime_env: dict | None = None,
             object_store_memory: int | None = None) -> Any:
    """Start a local Ray instance (``address=None``) or join a cluster (``"auto"``, ``"ray://host:10001"``).

    Reuses an already initialised Ray in this process.
    """
    ray = _import_ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the pipeline draws its own progress bar from the streamed results
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return ray
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if runtime_env:
        kw["runtime_env"] = runtime_env
    if address:
        ray.init(address=address, **kw)
    else:
        # a local instance: logical CPUs are only accounting, so leave room for the actors and Ray Data's tasks
        ray.init(address="local",  # a new instance, even where a cluster runs on this machine
                 num_cpus=num_cpus or max(4, os.cpu_count() or 1),
                 object_store_memory=object_store_memory or 256 * 2**20, **kw)
    return ray


def _root_cause(e: BaseException) -> str:
    """The worker's own error line out of Ray's wrapped traceback text."""
    for line in str(e).splitlines():
        line = line.strip()
        if re.match(r"^[\w.]*(Error|Exception)\b[^:]*: ", line) and not line.startswith("ray."):
            return line
    return f"{type(e).__name__}: {e}"


class _Slots:
    """Hands out actor slot numbers round robin (a restarted actor takes the next one, so after a
    restart two actors may share a slot's endpoint until the call ends)."""

    def __init__(self, n: int):
        self.n = n
        self.next = 0

    def take(self) -> int:
        slot = self.next % self.n
        self.next += 1
        return slot


class _GenerateActor:
    """Ray Data callable class: one backend per actor, built once, used for every batch it gets."""

    def __init__(self, make_backend: BackendMaker, slots: Any):
        import ray

        self.slot = ray.get(slots.take.remote()) if slots is not None else 0
        self.backend = make_backend(self.slot)
        self.pid = os.getpid()

    def __call__(self, batch: dict) -> dict:
        reqs = [request_from_json(str(s)) for s in batch["request"]]
        idx = [int(i) for i in batch["idx"]]
        out: dict[str, list] = {"idx": [], "sample": [], "completion": [], "pid": [], "slot": []}
        for k, j, comp in self.backend.iter_generate(reqs):
            out["idx"].append(idx[k])
            out["sample"].append(j)
            out["completion"].append(json.dumps(comp.to_json(), ensure_ascii=False))
            out["pid"].append(self.pid)
            out["slot"].append(self.slot)
        return out

    def __del__(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()


class RayBackend(Backend):
    """Runs every ``iter_generate`` call as a Ray Data ``map_batches`` over ``num_actors`` backend actors.

    ``make_backend(slot)`` builds the backend inside an actor (it must pickle: a module-level
    function or a ``functools.partial`` of one); ``slot`` is 0 unless ``per_slot`` numbers the
    actors (round robin), e.g. to give each its own endpoint. ``model_id`` is the driver's identity of the
    weights, the same string the single-process backend would use, so caches carry over.
    ``on_result`` (tests, benchmarks) sees the pid and slot of the actor behind each result.
    """

    name = "ray"

    def __init__(self, make_backend: BackendMaker, model_id: str, num_actors: int = 2, batch_size: int = 16,
                 num_cpus_per_actor: float = 1.0, num_gpus_per_actor: float = 0.0, address: str | None = None,
                 runtime_env: dict | None = None, per_slot: bool = False, on_result: Callable[[dict], None] | None = None):
        if num_actors < 1 or batch_size < 1:
            raise ConfigError("distributed.num_actors and distributed.batch_size must be >= 1")
        self.ray = ray_init(address, runtime_env=runtime_env,
                            num_cpus=max(4.0, num_actors * num_cpus_per_actor + 2))
        self.make_backend = make_backend
        self.model_id = model_id
        self.num_actors = num_actors
        self.batch_size = batch_size
        self.num_cpus_per_actor = num_cpus_per_actor
        self.num_gpus_per_actor = num_gpus_per_actor
        self.on_result = on_result
        self.per_slot = per_slot
        self.actor_pids: set[int] = set()

    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        if not requests:
            return
        ray = self.ray
        # slot numbers only matter when each actor needs its own endpoint; otherwise skip the extra actor
        slots = ray.remote(num_cpus=0)(_Slots).remote(self.num_actors) if self.per_slot else None
        ds = ray.data.from_items([{"idx": k, "request": request_to_json(r)} for k, r in enumerate(requests)],
                                 override_num_blocks=max(1, -(-len(requests) // self.batch_size)))
        # Ray Data restarts a dead actor and retries its batch (max_restarts / max_task_retries default to -1)
        ds = ds.map_batches(_GenerateActor, fn_constructor_args=(self.make_backend, slots),
                            batch_size=self.batch_size,
                            # two batches per actor at once: its engine's slots stay full across batch ends
                            compute=ray.data.ActorPoolStrategy(size=self.num_actors, max_tasks_in_flight_per_actor=2,
                                                               max_concurrent_calls_per_actor=2),
                            num_cpus=self.num_cpus_per_actor, num_gpus=self.num_gpus_per_actor or None,
                            batch_format="numpy")
        expected = sum(r.params.n for r in requests)
        got: set[tuple[int, int]] = set()
        try:
            for row in ds.iter_rows():
                key = (int(row["idx"]), int(row["sample"]))
                if key in got:  # a retried batch whose first attempt also delivered: keep the first
                    continue
                got.add(key)
                self.actor_pids.add(int(row["pid"]))
                if self.on_result:
                    self.on_result({"idx": key[0], "sample": key[1], "pid": int(row["pid"]), "slot": int(row["slot"])})
                yield key[0], key[1], Completion.from_json(json.loads(row["completion"]))
        except Exception as e:  # noqa: BLE001 - Ray wraps worker errors in its own types
            raise BackendError(f"Ray Data generation failed after {len(got)}/{expected} samples (every one of them "
                               f"is in the sample cache; rerun to resume): {_root_cause(e)}") from e
        finally:
            if slots is not None:
                ray.kill(slots)
        if len(got) != expected:
            raise BackendError(f"Ray Data returned {len(got)} of {expected} samples; rerun to generate the rest")

    def close(self) -> None:
        pass  # the actors go with their dataset; Ray itself stays up for the next stage
