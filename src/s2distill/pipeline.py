"""The Python API the CLI calls: run the stages of a distillation over a run directory, top to bottom::

    data -> generate (System 2 on unlabeled inputs) -> curate -> eval base systems -> train -> eval distilled -> report

Each stage is declared (``stages.Stage``: name, ``--until`` step, upstream stages, fingerprint, run);
``Pipeline.stages`` is a run's list and ``Pipeline.execute`` runs one, skipped when its fingerprint
(``fingerprints.py``) is unchanged; the stepwise curriculum and ``eval --data`` execute their own stages. Model calls go through a ``CachingBackend`` that appends
every sample to ``cache/samples.jsonl`` as it completes (``Pipeline.generate``), so a killed run resumes without
losing or duplicating a sample. What a stage runs lives with its component: the evaluation policy in
``evaluate.py``, the training policy in ``train/``, a backend's needs after training in its class.
"""
from __future__ import annotations

import sys
import time
from itertools import takewhile
from collections.abc import Callable
from pathlib import Path

from . import fingerprints
from .backends.base import BACKENDS, Backend
from .backends.caching import sample
from .backends.pool import _actor_backend  # noqa: F401 - the Ray actors' entry point, imported from here
from .backends.pool import (BackendFactory, Engines, backend_model_id, backend_spec, default_backend_factory,
                            distilled_paths)
from .config import RunConfig
from .checks import check
from .curate import Expanding, build_curator, tally
from .errors import ConfigError
from .evaluate import accuracy_line, method_params, reworded_line, run_reworded, run_system, run_votes
from .methods import METHODS, calls_per_sample
from .rundir import RunDir, SampleCache, read_jsonl, write_json, write_jsonl
from .tasks import make_task
from .tasks.base import SourceFingerprint
from .teacher import eval_order, eval_weights, system2_weights
from .systems import BASE as BASE_SYSTEMS
from .systems import MAJ
from .systems import ON_TRAINED
from .systems import get as get_system
from .stages import STEPS, Stage
from .types import Example, Trace

STAGES = STEPS  # what ``run --until`` names


class Pipeline:
    def __init__(self, cfg: RunConfig, run_dir: str | Path | None = None,
                 backend_factory: BackendFactory = default_backend_factory, log: Callable[[str], None] | None = None,
                 progress: bool = True):
        self.cfg = check(cfg)  # every component accepts its part of the config before anything runs
        self.rd = RunDir(run_dir or cfg.run_dir or Path("runs") / cfg.name)
        self.cache_path = self.rd / "cache" / "samples.jsonl"  # `s2distill eval --data` shares its run's
        self.task = make_task(cfg.task)
        self.backend_factory = backend_factory
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.progress = progress
        self.engines = Engines(cfg, backend_factory, self.log, self.rd / "backend_device.json")
        self._cache: SampleCache | None = None
        self.fp: dict[str, str] = {}
        self.plan: list[str] = []  # the stages ``run`` goes through, for "stage k of N" in the log
        self._t0 = time.perf_counter()

    @property
    def cache(self) -> SampleCache:
        if self._cache is None:
            self._cache = SampleCache(self.cache_path, log=self.log)
        return self._cache

    def backend(self, weights: str, trained: dict | None = None, stage: str | None = None) -> Backend:
        return self.engines.get(weights, trained, stage)

    def free_engines(self) -> None:
        """Stop the engines (the next call starts the one it needs): training wants the cores."""
        self.engines.close()

    def close(self) -> None:
        self.engines.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def generate(self, weights: str, desc: str, fn: Callable[[Backend], list], total: int,
                 trained: dict | None = None, stage: str = "eval") -> tuple[list, float, dict]:
        """``fn(backend)`` on the ``weights``' engine behind the run's sample cache: (result, wall s, stats)."""
        return sample(self.backend(weights, trained, stage), self.cache, fn, total, desc, self.progress)

    def run_stage(self, name: str, fingerprint: str, fn: Callable[[], tuple[list[str], dict]]) -> bool:
        """Stage ``name`` (skipped when its ``fingerprint`` is unchanged); ``fp[name]`` for the stages after it."""
        self.fp[name] = fingerprint
        where = ""
        if name in self.plan:
            where = (f" (stage {self.plan.index(name) + 1} of {len(self.plan)}, "
                     f"{_clock(time.perf_counter() - self._t0)} into the run)")
        return self.rd.run_stage(name, fingerprint, fn, self.log, where)

    def write_meta(self) -> None:
        self.rd.write_meta(self.cfg.to_dict(), self.cfg.seed, self.cfg.task.seed)

    def curator(self):
        return build_curator(self.cfg.curate)

    def examples(self, split: str) -> list[Example]:
        return [Example.from_json(d) for d in read_jsonl(self.rd / "data" / f"{split}.jsonl")]

    def execute(self, stage: Stage) -> bool:
        """Run a declared stage: its fingerprint (from its upstream stages' ones), then its run unless unchanged."""
        return self.run_stage(stage.name, stage.fingerprint(self), lambda: stage.run(self))

    # -- the stages, each declared: name, --until step, upstream, fingerprint, run -----------------
    def data_stage(self) -> Stage:
        c, task = self.cfg, self.task

        def run(p):
            labeled, evals = task.load("train", c.task.n_train, c.task.seed), task.load("eval", c.task.n_eval, c.task.seed)
            write_jsonl(p.rd / "data" / "train.jsonl", [e.unlabeled() for e in labeled])
            # held back for the report's curation-quality line only; no stage before it reads this file
            write_jsonl(p.rd / "data" / "train.gold.jsonl", [{"id": e.id, "gold": e.gold} for e in labeled])
            write_jsonl(p.rd / "data" / "eval.jsonl", evals)
            return ["data/train.jsonl", "data/eval.jsonl"], {"n_train": len(labeled), "n_eval": len(evals)}

        def fingerprint(p):
            return fingerprints.data(c, task.source_fingerprint() if isinstance(task, SourceFingerprint) else None)

        return Stage("data", "data", (), fingerprint, run)

    def reused_traces(self) -> dict[str, Trace]:
        """System 2 samples of train inputs already paid for, by input id (a continued round's serve inbox,
        continual.py); none in a plain run."""
        return {}

    def generate_stage(self) -> Stage:
        c, curator = self.cfg, self.curator()

        def run(p):
            exs = p.examples("train")
            reused: dict[str, Trace] = {}
            if isinstance(curator, Expanding):  # e.g. input perturbation: also run the method on input variants
                exs = curator.expand(p.task, exs)
            else:
                reused = {i: t for i, t in p.reused_traces().items() if i in {e.id for e in exs}}
            todo = [e for e in exs if e.id not in reused]
            method, params = METHODS.get(c.method.name), method_params(c, c.method.n, c.method.temperature)
            traces, wall, stats = [], 0.0, {"cache_hits": 0, "generated": 0}
            if todo:
                traces, wall, stats = p.generate(
                    system2_weights(c), f"generate {c.method.name} x{c.method.n}",
                    lambda b: method(p.task, todo, b, params, c.method),
                    len(todo) * c.method.n * calls_per_sample(c.method), stage="generate")
            by_id = {**{t.example_id: t for t in traces}, **reused}
            write_jsonl(p.rd / "traces" / "train.jsonl", [by_id[e.id] for e in exs])
            if reused:
                stats = {**stats, "reused_inputs": len(reused), "reused_samples": sum(len(t.samples) for t in reused.values())}
            return ["traces/train.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        return Stage("generate", "generate", ("data",),
                     lambda p: fingerprints.generate(c, p.fp["data"], isinstance(curator, Expanding)), run)

    def curate_stage(self) -> Stage:
        c, curator = self.cfg, self.curator()
        asks_model = curator.needs_backend  # e.g. universal self-consistency

        def run(p):
            # curators never see gold answers: the train split is stored unlabeled, and we strip again
            exs = [e.unlabeled() for e in p.examples("train")]
            traces = [Trace.from_json(d) for d in read_jsonl(p.rd / "traces" / "train.jsonl")]
            stats: dict = {}
            if asks_model:
                (pairs, rejects), wall, stats = p.generate(
                    system2_weights(c), f"curate {c.curate.name}", lambda b: curator(p.task, exs, traces, backend=b),
                    len(exs), stage="curate")
                stats["wall_s_generate"] = round(wall, 3)
            else:
                pairs, rejects = curator(p.task, exs, traces)
            write_jsonl(p.rd / "curate" / "pairs.jsonl", pairs)
            write_jsonl(p.rd / "curate" / "rejects.jsonl", rejects)
            write_jsonl(p.rd / "curate" / "chat.jsonl", [x.to_chat() for x in pairs])
            info, line = tally(pairs, rejects, len(exs))
            p.log(line)
            return ["curate/pairs.jsonl", "curate/rejects.jsonl", "curate/chat.jsonl"], {**info, **stats}

        return Stage("curate", "curate", ("generate",), lambda p: fingerprints.curate(c, p.fp["generate"], asks_model), run)

    def eval_stages(self, system: str, model_dir: Path | None = None, upstream: str | None = None,
                    step: str = "eval") -> list[Stage]:
        """``system``'s evaluation (what it runs: ``evaluate.system_run``; System 2 systems on the teacher when there
        is one), then, for the direct systems, the rewordings (``eval.rewordings``) and, for the distilled model,
        the cascade's votes. ``model_dir``: the distilled model's folder (its paths are read when the stage runs),
        ``upstream``: the stage whose fingerprint the evaluation includes (the train stage's, for it), ``step``:
        the ``--until`` step the stages belong to."""
        c = self.cfg
        weights = eval_weights(c, system, "distilled" if model_dir is not None else "base")
        ups = ("data",) + ((upstream,) if upstream else ())

        def gen(p):
            trained = distilled_paths(model_dir) if model_dir is not None else None
            return lambda desc, fn, total: p.generate(weights, desc, fn, total, trained)

        def up(p) -> str:
            return p.fp[upstream] if upstream else ""

        def run(p):
            records, traces, wall, stats = run_system(c, p.task, system, p.examples("eval"), gen(p))
            write_jsonl(p.rd / "eval" / f"{system}.traces.jsonl", traces)
            write_jsonl(p.rd / "eval" / f"{system}.jsonl", records)
            p.log(accuracy_line(system, records, wall))
            return [f"eval/{system}.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        def reworded(p):
            records, wall, stats = run_reworded(c, p.task, system, p.examples("eval"), gen(p))
            write_jsonl(p.rd / "eval" / f"{system}.reworded.jsonl", records)
            p.log(reworded_line(system, records, c.eval.rewordings))
            return [f"eval/{system}.reworded.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        def votes(p):
            records, wall, stats = run_votes(c, p.task, system, p.examples("eval"), gen(p))
            write_jsonl(p.rd / "eval" / f"{system}.votes.jsonl", records)
            return [f"eval/{system}.votes.jsonl"], {"wall_s_generate": round(wall, 3), **stats}

        out = [Stage(f"eval_{system}", step, ups, lambda p: fingerprints.evaluation(
            c, system, p.fp["data"], up(p), weights == "teacher"), run)]
        if _reworded(c, system):
            out.append(Stage(f"eval_{system}_reworded", step, ups,
                             lambda p: fingerprints.reworded(c, system, p.fp["data"], up(p)), reworded))
        if _votes(c, system):
            out.append(Stage(f"eval_{system}_votes", step, ups,
                             lambda p: fingerprints.votes(c, system, p.fp["data"], up(p)), votes))
        return out

    def retention_stage(self) -> Stage:
        """What distillation cost elsewhere (retention.py): System 1 on other tasks, base vs distilled, on the
        run's engines; then the KL between base and distilled, in this process (the engines closed first)."""
        c = self.cfg

        def run(p):
            from .errors import S2DistillError
            from .retention import general_prompts, kl_divergence, other_tasks, summary

            trained = distilled_paths(p.rd / "model")

            def gen(weights, desc, fn, total):
                return p.generate(weights, desc, fn, total, trained if weights == "distilled" else None)[0]

            part: dict = {"other_tasks": other_tasks(c, gen)}
            p.free_engines()
            if not trained.get("adapter"):
                part["kl_unavailable"] = "no PEFT adapter to switch off (the distilled model is a merged or full model)"
            else:
                sets = {"kl_task": [p.task.system1_messages(e) for e in p.examples("eval")[:c.eval.retention_prompts]],
                        "kl_general": [[{"role": "user", "content": x}] for x in general_prompts(c.eval.retention_prompts)]}
                try:
                    part.update(kl_divergence(c.train.base_model or c.model, trained["adapter"],  # the adapter's base
                                              {k: v for k, v in sets.items() if v},
                                              c.eval.retention_tokens, threads=c.backend.threads))
                except (ImportError, OSError, S2DistillError) as e:
                    part["kl_unavailable"] = f"{type(e).__name__}: {e}"
            write_json(p.rd / "eval" / "retention.json", part)
            s = summary(part, c.eval.max_retention_drop)
            if s and s["worst_task"]:
                p.log(f"[retention] System 1 accuracy drop, worst: {s['worst_task']} {100 * s['worst_drop']:.1f} "
                      f"points; KL task {(part.get('kl_task') or {}).get('kl')}, general "
                      f"{(part.get('kl_general') or {}).get('kl')}")
            return ["eval/retention.json"], {"retention": s}

        return Stage("retention", "report", ("data", "train"),
                     lambda p: fingerprints.retention(c, p.fp["data"], p.fp["train"]), run)

    def train_stage(self) -> Stage:
        """Train on the curated pairs (:meth:`fit`), the fingerprint including the adapter training continues from
        (:meth:`init_adapter`: none in a plain run)."""
        def fingerprint(p):
            init = p.init_adapter()
            return fingerprints.train(p.cfg, p.fp["curate"], init[1] if init else None)

        return Stage("train", "train", ("curate",), fingerprint, lambda p: p.fit())

    def fit(self) -> tuple[list[str], dict]:
        """The train stage's run (``train.train_distilled``: stepwise, accelerate or local), then the backend
        prepares the trained model for serving (``Backend.prepare_distilled``, e.g. llama.cpp's LoRA GGUF)."""
        from .stepwise_train import train_stepwise
        from .train import summary_notes, train_distilled

        c, out, init = self.cfg, self.rd / "model", self.init_adapter()
        summary = train_distilled(c, self.rd / "curate" / "pairs.jsonl", out, progress=self.progress, log=self.log,
                                  before=self.free_engines, stepwise=lambda *a: train_stepwise(self, *a),
                                  init_adapter=init[0] if init else None)
        for note in summary_notes(summary, c.train.max_length):
            self.log(note)
        served = BACKENDS.get(c.backend.name).prepare_distilled(c, out)
        return ["model/train_summary.json", *(f"model/{f}" for f in served)], {"summary": summary}

    def init_adapter(self) -> tuple[Path, str] | None:
        """The LoRA adapter training continues from and its fingerprint; None: train from the base model (a run;
        a continual round made with ``--from-parent-adapter`` overrides this)."""
        return None

    def stage_train(self) -> dict:
        """The train stage alone; returns the distilled model's paths (``trained``)."""
        self.execute(self.train_stage())
        return distilled_paths(self.rd / "model")

    def train_only(self) -> dict:
        """``s2distill train RUN``: the train stage on the run's finished curation (its recorded fingerprint)."""
        cur = self.rd.stage_info("curate")
        if not cur.get("done") or not (self.rd / "curate" / "pairs.jsonl").is_file():
            raise ConfigError(f"{self.rd.path} has no curated pairs; fix: s2distill run CONFIG --until curate "
                              f"--run-dir {self.rd.path}")
        self.fp["curate"] = cur["fingerprint"]
        try:
            return self.stage_train()
        finally:
            self.close()

    def stage_report(self) -> dict:
        from .html_report import write_report

        return write_report(self.rd, self.cfg, self.task, self.log)

    def evaluate_base(self, systems: tuple[str, ...] = ("system1", "system2")) -> dict:
        """The base model's evaluations only (no sampling of train inputs, no training): the data
        stage, then each of ``systems``; writes and returns the report."""
        if bad := [s for s in systems if s not in BASE_SYSTEMS]:
            raise ConfigError(f"evaluate_base evaluates {', '.join(BASE_SYSTEMS)}, not '{bad[0]}'")
        self.write_meta()
        try:
            for stage in [self.data_stage(), *(st for s in systems for st in self.eval_stages(s))]:
                self.execute(stage)
            return self.stage_report()
        finally:
            self.close()

    # -- all of it, top to bottom --------------------------------------------------
    def stages(self, until: str | None = None) -> list[Stage]:
        """The run's declared stages in order (``until``: up to that step): data, generate, curate, each base
        system's evaluation (the teacher's rows first, while its engine is up), train, the distilled model's
        evaluation and retention (step ``report``: ``--until train`` stops after training). Training happens when it
        is on and the distilled model is evaluated, or asked for."""
        if until is not None and until not in STAGES:
            raise ConfigError(f"unknown stage '{until}' (stages: {', '.join(STAGES)})")
        c = self.cfg
        out = [self.data_stage(), self.generate_stage(), self.curate_stage()]
        for s in eval_order(c):
            if s in c.eval.systems:
                out += self.eval_stages(s)
        if _trains(c, until):
            out.append(self.train_stage())
            for s in _on_trained(c):  # the systems on the trained model (the System table's weights "distilled")
                out += self.eval_stages(s, self.rd / "model", upstream="train", step="report")
            out += [self.retention_stage()] if "distilled" in c.eval.systems and c.eval.retention else []
        if until is None or until == "report":
            return out
        last = STAGES.index(until)
        return list(takewhile(lambda s: STAGES.index(s.step) <= last, out))

    def stage_plan(self, until: str | None = None) -> list[str]:
        """The names of the stages :meth:`run` goes through, in order."""
        return [s.name for s in self.stages(until)]

    def run(self, until: str | None = None) -> dict:
        stages = self.stages(until)
        self.plan, self._t0 = [s.name for s in stages], time.perf_counter()
        self.write_meta()
        self.log(f"[run] directory: {self.rd.path.resolve()}")
        try:
            for stage in stages:
                self.execute(stage)
            if until not in (None, "report"):
                return {}
            report = self.stage_report()
        finally:
            self.close()
        self.log(f"[run] report: {self.rd.path.resolve() / 'report.md'} (HTML: report.html)")
        return report


def _trains(cfg: RunConfig, until: str | None) -> bool:
    """Whether a run (to ``until``) trains: training is on and the distilled model is evaluated, or asked for."""
    return cfg.train.enabled and bool(_on_trained(cfg)) or until == "train"


def _on_trained(cfg: RunConfig) -> list[str]:
    """The evaluated systems that run on the trained model, in report order."""
    return [s for s in ON_TRAINED if s in cfg.eval.systems]


def _reworded(cfg: RunConfig, system: str) -> bool:
    """Whether ``system``'s evaluation is followed by its rewordings' (``eval.rewordings``, direct systems)."""
    s = get_system(system)
    return bool(cfg.eval.rewordings) and s.direct and not s.on_teacher


def _votes(cfg: RunConfig, system: str) -> bool:
    """Whether ``system``'s evaluation is followed by ``eval.cascade_k`` sampled answers per input (the cascade's
    vote-share signal): the distilled model, when the cascade can be calibrated (maj@k evaluated), one order only."""
    return (system == "distilled" and cfg.eval.cascade_k > 0 and MAJ in cfg.eval.systems
            and not cfg.eval.both_orders)


def _clock(s: float) -> str:
    return f"{int(s // 60)}m{int(s % 60):02d}s"


__all__ = ["Pipeline", "STAGES", "backend_model_id", "backend_spec", "default_backend_factory", "distilled_paths"]
