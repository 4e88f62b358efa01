"""Generation as a Ray Data pipeline (local Ray instance): fake backends for the contract, then two
actors each serving the REAL embedded model through its own llama-server, one of them killed mid-run."""
from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from s2distill.backends.fake import FakeBackend  # noqa: E402
from s2distill.config import load_config, validate  # noqa: E402
from s2distill.distributed import RayBackend, ray_init, request_from_json, request_to_json  # noqa: E402
from s2distill.errors import BackendError, ConfigError  # noqa: E402
from s2distill.pipeline import Pipeline, backend_model_id, default_backend_factory  # noqa: E402
from s2distill.backends.caching import CachingBackend  # noqa: E402
from s2distill.rundir import SampleCache, read_jsonl  # noqa: E402
from s2distill.types import GenRequest, SamplingParams  # noqa: E402

from conftest import embedded_model_available, llama_server_available  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors run this module's helpers


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray_init()
    yield
    ray.shutdown()


def _slow_echo(req: GenRequest, j: int) -> str:
    time.sleep(0.05)
    return f"echo {req.messages[-1]['content']} seed {req.params.seed}"


def _fake(slot: int) -> FakeBackend:
    return FakeBackend(responder=_slow_echo, model_id="fake")


def _failing(slot: int) -> FakeBackend:
    def boom(req: GenRequest, j: int) -> str:
        raise ValueError(f"engine refused {req.messages[-1]['content']}")
    return FakeBackend(responder=boom)


def _requests(n: int, samples: int = 1) -> list[GenRequest]:
    return [GenRequest(({"role": "user", "content": f"q{i}"},), SamplingParams(n=samples, seed=10 * i, max_tokens=8))
            for i in range(n)]


def test_request_round_trips_through_json() -> None:
    req = GenRequest(({"role": "system", "content": "s"}, {"role": "user", "content": "ünï"}),
                     SamplingParams(max_tokens=7, temperature=0.5, top_p=0.9, n=3, seed=4, stop=("\n",)))
    assert request_from_json(request_to_json(req)) == req


def test_results_come_back_in_place_from_both_actors() -> None:
    seen: list[dict] = []
    rb = RayBackend(_fake, model_id="fake", num_actors=2, batch_size=3, per_slot=True, on_result=seen.append)
    reqs = _requests(12, samples=2)
    out = rb.generate(reqs)
    assert [[c.text for c in row] for row in out] == [[f"echo q{i} seed {10 * i}"] * 2 for i in range(12)]
    # what happened, not how Ray happened to schedule it: every sample once, each from one of the two actors
    # (under load one actor may take every batch, so "both actors answered" would be scheduling luck)
    assert len(seen) == 24 and {s["slot"] for s in seen} <= {0, 1} and 1 <= len(rb.actor_pids) <= 2
    assert sorted((s["idx"], s["sample"]) for s in seen) == [(i, j) for i in range(12) for j in range(2)]


def test_worker_error_names_progress_and_cause() -> None:
    rb = RayBackend(_failing, model_id="fake", num_actors=1, batch_size=4)
    with pytest.raises(BackendError, match=r"failed after 0/4 samples.*rerun to resume.*engine refused q"):
        rb.generate(_requests(4))


def test_killed_actor_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """SIGKILL the actor that delivered the first result: Ray restarts it and retries its batch;
    the cache ends with every sample exactly once."""
    killed: list[int] = []

    def kill_first(info: dict) -> None:
        if not killed:
            killed.append(info["pid"])
            os.kill(info["pid"], signal.SIGKILL)

    rb = RayBackend(_fake, model_id="fake", num_actors=2, batch_size=2, on_result=kill_first)
    cache = SampleCache(tmp_path / "samples.jsonl")
    reqs = _requests(30)
    out = CachingBackend(rb, cache).generate(reqs)
    cache.close()
    assert [row[0].text for row in out] == [f"echo q{i} seed {10 * i}" for i in range(30)]
    keys = [r["key"] for r in read_jsonl(tmp_path / "samples.jsonl")]
    assert len(keys) == len(set(keys)) == 30
    assert killed and len(rb.actor_pids - set(killed)) >= 2  # the survivor and the restarted actor


def _cfg(tmp_path: Path, on: bool, **over):
    data = {"name": "d", "backend": {"name": "fake"}, "task": {"name": "arithmetic", "n_train": 6, "n_eval": 4},
            "method": {"name": "cot", "n": 2}, "train": {"enabled": False},
            "eval": {"systems": ["system1", "system2"]},
            "distributed": {"enabled": on, "num_actors": 2, "batch_size": 4, "stages": ["generate", "eval"]}}
    data.update(over)
    return load_config(data=data)


def test_pipeline_on_ray_writes_what_the_local_pipeline_writes(tmp_path: Path) -> None:
    local = Pipeline(_cfg(tmp_path, False), run_dir=tmp_path / "local", progress=False, log=lambda s: None)
    local.run()
    logs: list[str] = []
    dist = Pipeline(_cfg(tmp_path, True), run_dir=tmp_path / "ray", progress=False, log=logs.append)
    dist.run()
    assert any("Ray Data: 2 actor(s)" in line for line in logs)
    for f in ("traces/train.jsonl", "curate/pairs.jsonl", "eval/system2.jsonl"):
        assert read_jsonl(tmp_path / "local" / f) == read_jsonl(tmp_path / "ray" / f), f
    a = sorted(read_jsonl(tmp_path / "local" / "cache" / "samples.jsonl"), key=lambda r: r["key"])
    b = sorted(read_jsonl(tmp_path / "ray" / "cache" / "samples.jsonl"), key=lambda r: r["key"])
    assert [r["key"] for r in a] == [r["key"] for r in b]  # same cache keys: a run can switch paths and resume


def test_distributed_config_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown distributed stage 'generat'.*generate"):
        validate(_cfg(tmp_path, True, distributed={"stages": ["generat"]}))
    with pytest.raises(ConfigError, match="backend.name=openai"):
        validate(_cfg(tmp_path, True, distributed={"enabled": True, "endpoints": ["http://h:8000/v1"]}))
    with pytest.raises(ConfigError, match="num_actors"):
        validate(_cfg(tmp_path, True, distributed={"enabled": True, "num_actors": 0}))


def test_endpoint_list_gives_each_actor_its_own_server(tmp_path: Path) -> None:
    from s2distill.pipeline import _actor_backend

    cfg = load_config(data={"backend": {"name": "openai", "served_model": "m"},
                            "distributed": {"enabled": True, "endpoints": ["http://a:1/v1", "http://b:2/v1"]}})
    urls = [_actor_backend(default_backend_factory, cfg, "base", {}, slot).base_url for slot in range(3)]
    assert urls == ["http://a:1/v1", "http://b:2/v1", "http://a:1/v1"]
    assert backend_model_id(cfg, "base", {}) == "endpoints#m"  # the cache does not care which endpoint answered


real = pytest.mark.skipif(not (llama_server_available() and embedded_model_available()),
                          reason="needs llama-server and the embedded model")


@real
@pytest.mark.slow
@pytest.mark.server
def test_two_llama_server_actors_one_killed_mid_run(tmp_path: Path) -> None:
    """Two actors each own a llama-server with the embedded model; one is SIGKILLed after the first
    result. Every sample arrives exactly once, from more than the two original actors."""
    cfg = load_config(data={"backend": {"name": "llamacpp", "parallel": 2, "ctx_per_slot": 512, "threads": 1}})
    model_id = backend_model_id(cfg, "base", {})
    with default_backend_factory(cfg, "base", {}) as plain:
        assert plain.model_id == model_id  # the driver names the weights exactly as a local backend does
        want = [c.text for c in plain.generate(_requests(2))[0]]

    killed: list[int] = []

    def kill_first(info: dict) -> None:
        if not killed:
            killed.append(info["pid"])
            os.kill(info["pid"], signal.SIGKILL)

    from s2distill.pipeline import _actor_backend

    rb = RayBackend(functools.partial(_actor_backend, default_backend_factory, cfg, "base", {}), model_id=model_id,
                    num_actors=2, batch_size=2, on_result=kill_first)
    cache = SampleCache(tmp_path / "samples.jsonl")
    reqs = [GenRequest(({"role": "user", "content": f"Say the number {i}."},), SamplingParams(max_tokens=6, seed=i))
            for i in range(12)]
    out = CachingBackend(rb, cache).generate(reqs)
    cache.close()
    assert all(row[0].completion_tokens > 0 for row in out)
    keys = [r["key"] for r in read_jsonl(tmp_path / "samples.jsonl")]
    assert len(keys) == len(set(keys)) == 12
    assert killed and len(rb.actor_pids - set(killed)) >= 2
    # greedy is deterministic per request: an actor's server answers as the plain backend did
    again = rb.generate(_requests(1))
    assert again[0][0].text == want[0]


def test_driver_side_model_ids(tmp_path: Path) -> None:
    from s2distill.backends.vllm import weights_id

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    cfg = load_config(data={"model": str(tmp_path / "m"), "backend": {"name": "vllm"}})
    assert backend_model_id(cfg, "base", {}) == weights_id(str(tmp_path / "m"))
    cfg = load_config(data={"model": "org/model", "backend": {"name": "vllm", "server_args": ["--revision", "abc"]}})
    assert backend_model_id(cfg, "base", {}) == "hf:org/model@abc"
    for url in ("http://h:1/v1/", "http://h:1"):  # the backend appends /v1; the driver's id must too
        cfg = load_config(data={"backend": {"name": "openai", "base_url": url, "served_model": "m"}})
        assert backend_model_id(cfg, "base", {}) == default_backend_factory(cfg, "base", {}).model_id == "http://h:1/v1#m"
    cfg = load_config(data={"backend": {"name": "fake"}})
    assert backend_model_id(cfg, "distilled", {}) == default_backend_factory(cfg, "distilled", {}).model_id
