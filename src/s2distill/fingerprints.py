"""Every stage's fingerprint, in one place (also a stepwise curriculum's stages and the data of
``s2distill eval --data``): a pure function of the stage's config and the fingerprints of the stages it
reads (plus, where a component decides, the component's answer passed in).

A finished stage whose fingerprint is unchanged is skipped. The rules are the config fields' metadata
(:func:`section`): ``added=True``, a key added after runs existed, is left out while it sits at its default
(the value that reproduces the old behaviour: ``both_orders`` false, ``save_merged`` false, the GPU-fit and
curriculum keys); ``fp=False``, a key no section fingerprint reads (the report's thresholds, the keys of
stages with their own fingerprint); the train section under its old flat names (:func:`train_items`), the
accelerate options left out of a local run's. No teacher adds nothing. ``tests/test_fingerprints.py`` pins which config keys change which stage.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from . import systems
from .config import FLAT_TRAIN_KEYS, AccelerateOptions
from .teacher import key as teacher_key
from .types import stable_hash


def section(obj: Any, leave_out: Any = lambda meta: False) -> dict:
    """A config section as the fingerprints read it: every field but those its metadata leaves out
    (``fp=False``; ``added=True`` at the field's default; ``leave_out(metadata)`` true)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("fp") is False or leave_out(f.metadata) or _added_at_default(f, value):
            continue
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def _added_at_default(f: dataclasses.Field, value: Any) -> bool:
    """A key added after runs existed, at the value that keeps their fingerprints (left out)."""
    return bool(f.metadata.get("added")) and value == _default(f)


def train_items(t: Any) -> dict:
    """The ``train`` section as its fingerprint reads it: under the flat names of runs made before the launcher,
    curriculum and fit sections (``config.FLAT_TRAIN_KEYS``), so their fingerprints hold; the same rules
    (``added=True`` at its default left out); a local run leaves the accelerate options out."""
    flat_name = {place: old for old, place in FLAT_TRAIN_KEYS.items()}
    d, out = dataclasses.asdict(t), {}
    for f in dataclasses.fields(t):
        if f.name not in ("launcher", "curriculum", "fit") and not _added_at_default(f, d[f.name]):
            out[f.name] = d[f.name]
    for sec, sub in (("curriculum", t.curriculum), ("fit", t.fit)):
        for f in dataclasses.fields(sub):
            if not _added_at_default(f, d[sec][f.name]):
                out[flat_name[(sec, f.name)]] = d[sec][f.name]
    launcher = d["launcher"]
    out["launcher"] = launcher["name"]
    if launcher["name"] != "local":  # the accelerate options do not touch a local run
        own = {"num_processes", "distributed_type", "cpu", "config_file"}
        out.update({flat_name[("launcher", k)]: launcher[k] for k in own})
        out["accelerate"] = {f.name: launcher[f.name] for f in dataclasses.fields(AccelerateOptions)
                             if f.name not in own and launcher[f.name] != f.default}
    return out


def added_defaults(cls: Any) -> dict:
    """The keys of the config dataclass ``cls`` added after runs existed, with the default that keeps them out."""
    return {f.name: _default(f) for f in dataclasses.fields(cls) if f.metadata.get("added")}


def _system1(cfg: Any) -> dict:
    """The System 1 prompts' system turn, for the stages that build System 1 prompts (curated pairs, direct
    evaluations); absent at null, the prompts of runs made before the key, so their fingerprints hold."""
    return {} if cfg.task.system_prompt is None else {"system_prompt": cfg.task.system_prompt}


def _inputs(cfg: Any) -> dict:
    """The task section but its System 1 prompt: what the inputs depend on."""
    task = dataclasses.asdict(cfg.task)
    task.pop("system_prompt")
    return task


def data(cfg: Any, source: dict | None = None) -> str:
    """The task section but its System 1 prompt (the inputs do not depend on it); ``source``: the task's
    ``source_fingerprint()`` (edits of its files rerun)."""
    return stable_hash({"task": _inputs(cfg), **({"source": source} if source else {})})


def round_data(cfg: Any, data_sha256: str, parent: str) -> str:
    """A continued round's inputs (continual.py): the parent's (by its path) and the new file's content."""
    return stable_hash({"task": _inputs(cfg), "round": {"file": data_sha256, "parent": parent}})


def generate(cfg: Any, data_fp: str, expands: bool = False) -> str:
    """System 2 on the train inputs; ``expands``: the curator adds input variants (``curate.n_variants``)."""
    return stable_hash({"data": data_fp, "method": dataclasses.asdict(cfg.method), "model": cfg.model,
                        "seed": cfg.seed, "expand": {"n_variants": cfg.curate.n_variants,
                                                     **({"options": cfg.curate.options} if cfg.curate.options else {})}
                        if expands else None,
                        **teacher_key(cfg)})


def curate(cfg: Any, generate_fp: str, needs_backend: bool = False) -> str:
    """Curation; a curator that asks the model (``needs_backend``) also depends on the model."""
    return stable_hash({"gen": generate_fp, "curate": section(cfg.curate),
                        **({"model": cfg.model} if needs_backend else {}), **_system1(cfg)})


def evaluation(cfg: Any, system: str, data_fp: str, upstream: str = "", on_teacher: bool = False) -> str:
    """One system's evaluation; ``upstream``: the train fingerprint for the distilled model."""
    ev = section(cfg.eval)
    ev["systems"] = [s for s in ev["systems"] if s != systems.TEACHER_S1]  # asking for it reruns nothing else
    return stable_hash({"data": data_fp, "system": system, "method": dataclasses.asdict(cfg.method), "eval": ev,
                        "model": cfg.model, "seed": cfg.seed, "up": upstream, **(teacher_key(cfg) if on_teacher else {}),
                        **(_system1(cfg) if system in systems.DIRECT else {})})


def reworded(cfg: Any, system: str, data_fp: str, upstream: str = "") -> str:
    """The direct prompt on the first ``eval.rewordings`` rewordings of every eval input."""
    return stable_hash({"data": data_fp, "system": system, "rewordings": cfg.eval.rewordings, "model": cfg.model,
                        "max_tokens": cfg.eval.max_tokens_system1, "seed": cfg.seed, "up": upstream, **_system1(cfg)})


def votes(cfg: Any, system: str, data_fp: str, upstream: str = "") -> str:
    """``eval.cascade_k`` samples of the direct prompt per eval input (the cascade's vote-share signal)."""
    return stable_hash({"data": data_fp, "system": system, "votes": cfg.eval.cascade_k,
                        "temperature": cfg.eval.temperature, "model": cfg.model,
                        "max_tokens": cfg.eval.max_tokens_system1, "seed": cfg.seed, "up": upstream, **_system1(cfg)})


def retention(cfg: Any, data_fp: str, train_fp: str) -> str:
    """Retention after training: the trained model, the held-out inputs, the other tasks and the KL's sizes."""
    ev = cfg.eval
    return stable_hash({"data": data_fp, "up": train_fp, "tasks": list(ev.retention_tasks), "n": ev.retention_n,
                        "prompts": ev.retention_prompts, "tokens": ev.retention_tokens, "model": cfg.model,
                        "seed": cfg.seed, "task_seed": cfg.task.seed, "max_tokens": ev.max_tokens_system1,
                        **_system1(cfg)})


def train(cfg: Any, curate_fp: str, init_adapter: str | None = None) -> str:
    """Training on the curated pairs; ``init_adapter``: the fingerprint of the adapter training continues from
    (a continual round from its parent's), None from the base model."""
    return stable_hash({"curate": curate_fp, "train": train_items(cfg.train), "model": cfg.model,
                        "seed": cfg.seed, "backend": cfg.backend.name,
                        **({"init_adapter": init_adapter} if init_adapter else {})})


def data_file(cfg: Any, content: str) -> str:
    """``s2distill eval RUN --data FILE``: the file's content hash and the task section (as :func:`data`)."""
    return stable_hash({"file": content, "task": _inputs(cfg)})


def curriculum_stage(train_fp: str, prev_fp: str, k: int, n_stages: int, targets: list[str]) -> str:
    """Stage ``k`` of a stepwise curriculum: chained, so a stage retrains whenever one before it did."""
    return stable_hash({"train": train_fp, "prev": prev_fp, "stage": k, "of": n_stages, "targets": targets})


def curriculum_eval(cfg: Any, stage_fp: str, data_fp: str) -> str:
    """Stage ``k``'s adapter on the eval split (direct prompt, room for the trace it still writes)."""
    return stable_hash({"train_stage": stage_fp, "data": data_fp, "max_tokens": cfg.method.max_tokens, "seed": cfg.seed})


__all__ = ["added_defaults", "section", "curate", "curriculum_eval", "curriculum_stage", "data", "data_file", "evaluation", "generate", "retention", "reworded",
           "round_data", "train", "votes"]
