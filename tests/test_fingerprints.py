"""Which config keys change which stage's fingerprint (fingerprints.py), pinned key by key.

Every leaf key of the config is changed alone; the set of keys that change a stage's fingerprint must be
exactly the set written here. A key that starts to (or stops to) rerun a stage fails this test."""
from __future__ import annotations

import dataclasses

import pytest

from s2distill import fingerprints as fps
from s2distill.config import AccelerateOptions, RunConfig, TeacherConfig

# keys that cannot change alone (their section checks them together); their effect is the launcher's
# (tests/test_accelerate.py)
NOT_ALONE = ("train.launcher.num_machines", "train.launcher.machine_rank", "train.launcher.config_file")
# another valid value where "value + x" is not one (the launcher section checks its choices)
VALID_OTHER = {"train.launcher.name": {"local": "accelerate", "accelerate": "local"},
               "train.launcher.distributed_type": {"ddp": "fsdp"}, "train.launcher.mixed_precision": {"no": "bf16"},
               "train.launcher.zero_stage": {2: 3}}
ACCEL = tuple(f"train.launcher.{f.name}" for f in dataclasses.fields(AccelerateOptions))


def _other(value, name: str, key: str = ""):
    if key in VALID_OTHER:
        return VALID_OTHER[key][value]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "k": 1}
    if value is None:
        return "x" if name not in ("threads", "num_processes", "max_model_len") else 3
    raise AssertionError(f"no other value for {name}={value!r}")


def leaf_keys(obj, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(obj):
        v, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v):
            out += leaf_keys(v, key + ".")
        elif key != "teacher" and key not in NOT_ALONE:
            out.append(key)
    return out


def changed(obj, key: str, full: str = ""):
    head, _, rest = key.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: _other(getattr(obj, head), head, full or key)})
    return dataclasses.replace(obj, **{head: changed(getattr(obj, head), rest, full or key)})


def keys_that_change(fn, cfg: RunConfig | None = None) -> set[str]:
    cfg = cfg or RunConfig()
    base = fn(cfg)
    return {k for k in leaf_keys(cfg) if fn(changed(cfg, k)) != base}


def section(cfg: RunConfig, name: str, *, but: tuple[str, ...] = ()) -> set[str]:
    return {k for k in leaf_keys(getattr(cfg, name), f"{name}.") if k.removeprefix(f"{name}.") not in but
            and k not in but}


C = RunConfig()
UP = "upstream-fp"
# eval keys another stage (rewordings, votes, retention) or only the report reads
ELSEWHERE = ("rewordings", "confident_share", "max_disagreement", "cascade_fallback", "cascade_risk", "cascade_k", "retention",
             "retention_tasks", "retention_n", "retention_prompts", "retention_tokens", "max_retention_drop")


@pytest.mark.parametrize("name, fn, expected", [
    ("data", lambda c: fps.data(c), section(C, "task", but=("system_prompt",))),
    ("generate", lambda c: fps.generate(c, UP), section(C, "method") | {"model", "seed"}),
    ("generate, curator expands inputs", lambda c: fps.generate(c, UP, expands=True),
     section(C, "method") | {"model", "seed", "curate.n_variants", "curate.options"}),
    ("curate", lambda c: fps.curate(c, UP), section(C, "curate") | {"task.system_prompt"}),
    ("curate, curator asks the model", lambda c: fps.curate(c, UP, needs_backend=True),
     section(C, "curate") | {"model", "task.system_prompt"}),
    ("eval", lambda c: fps.evaluation(c, "system1", UP),
     section(C, "method") | section(C, "eval", but=ELSEWHERE)
     | {"model", "seed", "task.system_prompt"}),
    ("eval System 2", lambda c: fps.evaluation(c, "system2", UP),
     section(C, "method") | section(C, "eval", but=ELSEWHERE)
     | {"model", "seed"}),
    ("eval reworded", lambda c: fps.reworded(c, "system1", UP),
     {"eval.rewordings", "eval.max_tokens_system1", "model", "seed", "task.system_prompt"}),
    ("eval votes", lambda c: fps.votes(c, "distilled", UP),
     {"eval.cascade_k", "eval.temperature", "eval.max_tokens_system1", "model", "seed", "task.system_prompt"}),
    ("retention", lambda c: fps.retention(c, UP, UP),
     {"eval.retention_tasks", "eval.retention_n", "eval.retention_prompts", "eval.retention_tokens", "model", "seed",
      "task.seed", "eval.max_tokens_system1", "task.system_prompt"}),
    # a local run: the launcher's name, not its accelerate options
    ("train", lambda c: fps.train(c, UP),
     section(C, "train", but=ACCEL) | {"model", "seed", "backend.name"}),
    ("train, accelerate launcher", lambda c: fps.train(dataclasses.replace(c, train=dataclasses.replace(
        c.train, launcher=dataclasses.replace(c.train.launcher, name="accelerate"))), UP),
     section(C, "train", but=("train.launcher.name",)) | {"model", "seed", "backend.name"}),
])
def test_which_config_keys_change_a_stage(name, fn, expected):
    assert keys_that_change(fn) == expected, name


def test_upstream_fingerprints_and_the_system_chain_through():
    assert fps.generate(C, "a") != fps.generate(C, "b") and fps.curate(C, "a") != fps.curate(C, "b")
    assert fps.train(C, "a") != fps.train(C, "b")
    assert fps.evaluation(C, "system1", "d") != fps.evaluation(C, "system2", "d")
    assert fps.evaluation(C, "distilled", "d", upstream="t1") != fps.evaluation(C, "distilled", "d", upstream="t2")
    assert fps.data(C, {"sha": 1}) != fps.data(C) and fps.data(C, None) == fps.data(C)


def test_a_teacher_changes_what_it_feeds_and_nothing_else():
    t = dataclasses.replace(C, teacher=TeacherConfig(model="bigger"))
    assert fps.generate(t, UP) != fps.generate(C, UP)
    assert fps.evaluation(t, "system2", UP, on_teacher=True) != fps.evaluation(C, "system2", UP)
    assert fps.evaluation(t, "system1", UP) == fps.evaluation(C, "system1", UP)
    assert fps.data(t) == fps.data(C) and fps.curate(t, UP) == fps.curate(C, UP) and fps.train(t, UP) == fps.train(C, UP)


def test_old_runs_keep_their_fingerprints():
    """Keys added after runs existed leave the fingerprint alone at their old-behaviour value."""
    on = dataclasses.replace(C, eval=dataclasses.replace(C.eval, both_orders=True))
    assert fps.evaluation(on, "system1", UP) != fps.evaluation(C, "system1", UP)
    with_t1 = dataclasses.replace(C, eval=dataclasses.replace(C.eval, systems=[*C.eval.systems, "teacher_system1"]))
    assert fps.evaluation(with_t1, "system1", UP) == fps.evaluation(C, "system1", UP)
    merged = dataclasses.replace(C, train=dataclasses.replace(C.train, save_merged=True))
    assert fps.train(merged, UP) != fps.train(C, UP)
