"""Typed, strict run configuration: YAML + ``a.b=c`` overrides.

Every section is a dataclass; an unknown key is an error with a did-you-mean,
a wrong type names the key and the expected type.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .keys import build, check_choice, check_keys, field_names, opt
from . import systems
from .systems import DEFAULT as DEFAULT_SYSTEMS
from .systems import SYSTEMS


@dataclass(frozen=True)
class BackendConfig:
    name: str = opt("llamacpp", "llamacpp | vllm | openai | transformers | fake")
    base_url: str | None = opt(None, "openai: e.g. http://127.0.0.1:8000/v1")
    api_key_env: str = opt("OPENAI_API_KEY", "openai: name of the env var holding the key (never the key itself)")
    served_model: str | None = opt(None, "openai: model name the server expects; vllm: --served-model-name of the base")
    parallel: int = opt(16, "llamacpp: server slots (continuous batching)")
    ctx_per_slot: int = opt(2048, "llamacpp: context tokens per slot")
    threads: int | None = opt(None, "llamacpp/transformers: CPU threads (None = all cores)")
    concurrency: int = opt(16, "openai/llamacpp/vllm: max samples in flight")
    share_samples: bool = opt(True,
                              "openai/llamacpp/vllm: one call with n for an input's n samples (prompt processed once)")
    timeout_s: float = opt(600.0, "seconds one model call may take before it is retried")
    max_retries: int = opt(5, "retries of a failed or timed-out model call (with backoff) before the run stops")
    batch_size: int = opt(16, "transformers: generation batch size")
    server_args: list[str] = opt(help="llamacpp/vllm: extra llama-server / vllm serve flags", factory=list)
    tensor_parallel_size: int = opt(1, "vllm: GPUs to shard the model over")
    gpu_memory_utilization: float = opt(0.9, "vllm: fraction of each GPU's memory vLLM may take")
    max_model_len: int | None = opt(None, "vllm: context length (None = the model's own)")
    startup_timeout_s: float | None = opt(None, "llamacpp/vllm: wait for the server's health (None = 300 / 1200 s)")
    device: str = opt("auto", "transformers: auto (cuda when torch sees a GPU, else cpu) | cpu | cuda | cuda:N")
    dtype: str = opt("auto",
                     "transformers: auto (bf16 on a bf16 GPU, fp16 on older GPUs, fp32 on CPU) | bfloat16 | ...")

    def check_server(self, where: str = "backend", endpoints: list[str] | None = None) -> None:
        """An ``openai`` backend talks to a server: it needs ``base_url`` (or ``distributed.endpoints``). ``where``:
        the section's path in the config (``backend``, ``teacher.backend``), for the message."""
        if self.name == "openai" and not self.base_url and not endpoints:
            raise ConfigError(f"{where}.name=openai needs {where}.base_url (e.g. http://127.0.0.1:8000/v1)")


@dataclass(frozen=True)
class TaskConfig:
    name: str = opt("arithmetic",
                    "the task: a registered name (s2distill ls), a plug-in's name, or package.module:Class")
    n_train: int = opt(64, "unlabeled inputs for System 2 generation")
    n_eval: int = opt(40, "labeled held-out inputs")
    seed: int = opt(0, "seed of the task's train/eval split and of generated items")
    options: dict = opt(help="task-specific, validated by the task", factory=dict)
    system_prompt: str | None = opt("",
                                    "The system turn of every System 1 prompt: the distilled model's training prompt "
                                    "and its inference prompt (one string for both). \"\" = an empty system turn, which "
                                    "keeps chat templates with a built-in default (Qwen's \"You are Qwen, created by "
                                    "Alibaba Cloud...\", about a third of a short training row) from adding it; null = "
                                    "no system turn, so the template adds its default (the prompts of runs made "
                                    "before this key).")


@dataclass(frozen=True)
class MethodConfig:
    name: str = opt("cot",
                    "the System 2 method: direct | cot | rar | s2a | bsm, a plug-in's name, or package.module:attr")
    n: int = opt(4, "samples per input")
    temperature: float = opt(0.7, "sampling temperature of System 2 on the unlabeled inputs")
    top_p: float = opt(0.95, "nucleus sampling of System 2")
    max_tokens: int = opt(256, "most tokens one System 2 call may generate")
    few_shot: int = opt(0, "exemplars (0 = zero-shot)")
    options: dict = opt(help=
                             "method-specific: rar steps (1 | 2), prompts.<step> overrides (s2distill ls; README "
                             "'Prompts')", factory=dict)


@dataclass(frozen=True)
class CurateConfig:
    name: str = opt("self_consistency",
                    "the label-free curator: self_consistency | universal_self_consistency | input_perturbation | "
                    "swap_consistency | none, a plug-in's name, or package.module:Class")
    min_agreement: float = opt(0.5, "fraction of all samples that must agree with the winner")
    min_votes: int = opt(2, "and at least this many votes")
    n_variants: int = opt(2, "input_perturbation: meaning-preserving variants per input")
    weighting: str = opt("hard",
                         "hard: keep a pair when its vote passes min_agreement/min_votes, every kept pair weighs 1; "
                         "vote_share (self_consistency): keep every input with a clear winner, its pair's loss "
                         "weighted by the share of the samples behind the winner (low-agreement inputs kept at low "
                         "weight instead of dropped)", added=True)
    options: dict = opt(help="your curator's own options, parsed by its Options dataclass (a built-in curator takes "
                             "none)", factory=dict, added=True)


WEIGHTINGS = ("hard", "vote_share")
CASCADE_RISKS = ("answered", "all")  # eval.cascade_risk: the cascade bound's denominator (cascade.py)
LAUNCHERS = ("local", "accelerate")
DISTRIBUTED = ("ddp", "fsdp", "deepspeed")
# accelerate's own names are accepted too
_ACCELERATE_NAMES = {"NO": "NO", "MULTI_CPU": "ddp", "MULTI_GPU": "ddp", "FSDP": "fsdp", "DEEPSPEED": "deepspeed"}
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class AccelerateOptions:
    """The accelerate launcher's options (``train.launcher.*`` when ``train.launcher.name`` is accelerate)."""

    distributed_type: str = opt("ddp",
                                "ddp | fsdp | deepspeed (or accelerate's MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED, NO)")
    num_processes: int | None = opt(None, "in all, over every machine; None: every visible GPU, or 2 on CPU")
    num_machines: int = opt(1, "machines taking part (each runs the same command with its machine_rank)")
    machine_rank: int = opt(0, "this machine's rank, 0 .. num_machines-1 (0 is the main process's machine)")
    main_process_ip: str | None = opt(None, "needed with num_machines > 1")
    main_process_port: int | None = opt(None, "None: a free port on one machine; needed with num_machines > 1")
    mixed_precision: str = opt("no", "no | fp16 | bf16")
    cpu: bool = opt(False, "CPU processes talking over gloo, even where GPUs are visible")
    zero_stage: int = opt(2, "deepspeed: ZeRO stage 0-3")
    offload: bool = opt(False, "fsdp: parameters to CPU; deepspeed: optimizer state and parameters to CPU")
    config_file: str | None = opt(None, "your accelerate config YAML, used as-is (the options above are ignored)")

    def __post_init__(self) -> None:
        check_choice("distributed_type", self.distributed_type, list(DISTRIBUTED) + list(_ACCELERATE_NAMES), DISTRIBUTED)
        if self.num_processes is not None and self.num_processes < 1:
            raise ConfigError("num_processes must be >= 1 (or null: every visible GPU, or 2 on CPU)")
        if self.num_machines < 1 or not 0 <= self.machine_rank < self.num_machines:
            raise ConfigError(f"machine_rank must be in [0, num_machines), got {self.machine_rank} of {self.num_machines}")
        if self.num_machines > 1 and (not self.main_process_ip or not self.main_process_port):
            raise ConfigError("num_machines > 1 needs main_process_ip and main_process_port (the rank-0 machine's "
                              "address, reachable from every machine); fix: set both")
        if self.num_processes is not None and self.num_processes % self.num_machines:
            raise ConfigError(f"num_processes={self.num_processes} is the total over all machines and must divide "
                              f"evenly by num_machines={self.num_machines}")
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        if self.zero_stage not in (0, 1, 2, 3):
            raise ConfigError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        if self.cpu and self.kind in ("fsdp", "deepspeed"):
            raise ConfigError(f"accelerate runs {self.kind} on GPUs only; fix: use distributed_type=ddp with cpu, "
                              "or drop cpu on a GPU machine")
        if self.cpu and self.mixed_precision == "fp16":
            raise ConfigError("fp16 mixed precision needs GPUs; fix: mixed_precision=no (or bf16) with cpu")
        if self.config_file is not None and not Path(self.config_file).is_file():
            raise ConfigError(f"accelerate config file not found: {self.config_file}; fix: pass an existing file "
                              "(`accelerate config --config_file FILE` writes one) or leave it unset")

    @property
    def kind(self) -> str:
        return _ACCELERATE_NAMES.get(self.distributed_type, self.distributed_type)

    @classmethod
    def from_dict(cls, d: dict) -> "AccelerateOptions":
        check_keys(d, field_names(cls), lambda k: f"unknown accelerate option '{k}'", "known")
        return cls(**d)


@dataclass(frozen=True)
class LauncherSection(AccelerateOptions):
    """``train.launcher``: where training runs. ``local`` (this process) reads nothing else; ``accelerate``
    (``accelerate launch``: DDP / FSDP / DeepSpeed) reads the accelerate options (``train.launcher: accelerate``
    is short for ``train.launcher: {name: accelerate}``)."""

    name: str = opt("local", "local (this process) | accelerate (accelerate launch: DDP / FSDP / DeepSpeed)")

    def __post_init__(self) -> None:
        check_choice("train.launcher.name", self.name, LAUNCHERS)
        super().__post_init__()


@dataclass(frozen=True)
class CurriculumSection:
    """``train.curriculum``: ``none``, or ``stepwise`` (s2distill.stepwise): train on the System 2 trace and drop
    it step by step from the left, each stage with a fresh optimizer (``train.curriculum: stepwise`` is short for
    ``train.curriculum: {name: stepwise}``)."""

    name: str = opt("none", "none | stepwise", added=True)
    epochs_per_stage: float = opt(1.0, "stepwise: epochs of every stage (each stage starts a fresh optimizer)", added=True)
    stages: int = opt(0, "stepwise: 0 = one stage per step of the longest trace (+1 answer-only); N >= 2 = N stages", added=True)
    remove_per_stage: int = opt(0, "stepwise: > 0 = drop this many trace tokens per stage instead of whole steps", added=True)
    removal_smoothing: float = opt(4.0, "stepwise, token level: lambda of the extra-removal offset "
                                        "P(o) ~ exp(-lambda o)", added=True)


@dataclass(frozen=True)
class FitSection:
    """``train.fit``: how training fits the machine (s2distill.precision; docs/scaling.md "Training on one GPU")."""

    dtype: str = opt("auto", "auto (bf16 weights + autocast on a bf16 GPU, fp32 elsewhere) | bfloat16 | float16 | "
                             "float32", added=True)
    quantization: str = opt("none", "none | 4bit | 8bit: QLoRA through bitsandbytes (pip install 's2distill[qlora]')", added=True)
    attn_implementation: str = opt("sdpa", "sdpa | eager | flash_attention_2 (needs flash-attn) | ...", added=True)
    padding_free: bool = opt(False, "TRL padding-free batches (no pad tokens); needs flash_attention_2", added=True)
    liger_kernel: bool | None = opt(None, "TRL use_liger_kernel; None: on when liger-kernel is installed and on CUDA", added=True)
    group_by_length: bool = opt(False, "batches of rows of similar length (less padding; the order stays seeded): for "
                                       "data whose rows differ a lot in length; on the demo's rows (3.4% padding) "
                                       "it saved no time (benchmarks/results/speed.md)", added=True)
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass: less memory, about 30% "
                                              "slower")
    threads: int | None = opt(None, "CPU threads of training (None: torch's default)")


@dataclass(frozen=True)
class TrainerOptions:
    """The keys the trainer reads (``train.*`` but the run's own, the launcher, the curriculum and the fit)."""

    method: str = opt("lora", "lora | full")
    lora_r: int = opt(16, "LoRA rank")
    lora_alpha: int = opt(32, "LoRA alpha (the adapter's scale is alpha / r)")
    lora_dropout: float = opt(0.0, "dropout on the LoRA branch")
    target_modules: str = opt("all-linear", "modules that get LoRA adapters: all-linear, or a list of module names")
    learning_rate: float = opt(2e-4, "peak learning rate (linear decay)")
    epochs: float = opt(3.0, "passes over the curated pairs (ignored when max_steps > 0)")
    max_steps: int = opt(-1, "optimizer steps in all; -1: from epochs")
    per_device_batch_size: int = opt(2, "pairs per forward pass on each device")
    gradient_accumulation_steps: int = opt(4, "forward passes per optimizer step (effective batch = this x "
                                              "per_device_batch_size x processes)")
    max_length: int = opt(256, "most tokens of one training row (prompt + answer); see too_long")
    too_long: str = opt("truncate_prompt", "rows over max_length: truncate_prompt (from the left) | error", added=True)
    save_merged: bool = opt(False, "LoRA: also write model/merged (the adapter + llama.cpp LoRA GGUF serve it)", added=True)
    save_steps: float | None = opt(None, "checkpoint every N optimizer steps (< 1: that fraction of the run); "
                                         "None: 0.1", added=True)
    save_total_limit: int = opt(2, "checkpoints kept under model/checkpoints (older ones are deleted)", added=True)


@dataclass(frozen=True)
class TrainSection(TrainerOptions):
    """``train``: the trainer's keys, the run's (whether, from which model) and three sections: where it runs
    (``launcher``), the curriculum, and how it fits the machine (``fit``)."""

    enabled: bool = opt(True, "false: no training (the run stops after curation and evaluates the base systems)")
    base_model: str | None = opt(None, "HF id/dir to fine-tune; default: the run's model")
    launcher: LauncherSection = opt(help="where training runs: local, or accelerate launch", factory=LauncherSection)
    curriculum: CurriculumSection = opt(help="none, or the stepwise curriculum", factory=CurriculumSection)
    fit: FitSection = opt(help="dtype, quantization, attention, memory: how training fits the machine",
                          factory=FitSection)


# the flat ``train.*`` keys of runs made before the sections, by their place now (``train.<section>.<key>``):
# read with a FutureWarning that names the new key; the stage fingerprints are computed on these names
# (fingerprints.train_items), so a run keeps its fingerprints
FLAT_TRAIN_KEYS = {
    **{k: ("fit", k) for k in field_names(FitSection)},
    "launcher": ("launcher", "name"), "num_processes": ("launcher", "num_processes"),
    "distributed_type": ("launcher", "distributed_type"), "cpu": ("launcher", "cpu"),
    "accelerate_config": ("launcher", "config_file"),
    "curriculum": ("curriculum", "name"), "epochs_per_stage": ("curriculum", "epochs_per_stage"),
    "stages": ("curriculum", "stages"), "remove_per_stage": ("curriculum", "remove_per_stage"),
    "removal_smoothing": ("curriculum", "removal_smoothing"),
}
NAMED_SECTIONS = ("launcher", "curriculum")  # a string value is the section's name


def nest_train(train: Any) -> Any:
    """A ``train`` mapping with the flat keys of older configs moved into their sections (a FutureWarning names
    each new key) and the shorthand ``launcher: accelerate`` / ``curriculum: stepwise`` read as ``{name: ...}``;
    the old nested ``accelerate: {...}`` mapping becomes the launcher's keys."""
    if not isinstance(train, dict):
        return train
    out, moved = dict(train), []
    for sec in NAMED_SECTIONS:
        if isinstance(out.get(sec), str):
            out[sec] = {"name": out[sec]}
    for old, (sec, key) in FLAT_TRAIN_KEYS.items():
        if old in out and not (old in NAMED_SECTIONS and isinstance(out[old], dict)):
            value = out.pop(old)
            out[sec] = {**(out.get(sec) or {}), key: value}
            moved.append(f"train.{old} -> train.{sec}.{key}")
    if isinstance(out.get("accelerate"), dict):
        for key, value in out.pop("accelerate").items():
            out["launcher"] = {**(out.get("launcher") or {}), key: value}
            moved.append(f"train.accelerate.{key} -> train.launcher.{key}")
    if moved:
        warnings.warn(f"old flat train keys, read as their new places: {'; '.join(moved)} (fix: write the new "
                      "keys; s2distill validate --explain train lists them)", FutureWarning, stacklevel=3)
    return out


@dataclass(frozen=True)
class EvalConfig:
    systems: list[str] = opt(help="systems evaluated on the held-out inputs (s2distill.systems: system1, system2, "
                                  "its maj@k, teacher_system1, distilled)", factory=lambda: list(DEFAULT_SYSTEMS))
    k: int = opt(4, "samples for System 2 maj@k")
    temperature: float = opt(0.7, "for maj@k sampling")
    max_tokens_system1: int = opt(32, "most tokens of a direct (System 1 or distilled) answer")
    distilled_served_model: str | None = opt(None, "openai backend: name of the served distilled model")
    rewordings: int = opt(0, "also score system1 and distilled on the task's first N rewordings of the input", fp=False)
    both_orders: bool = opt(False, "pairwise judges: run every judge on both response orders; a flip counts as a tie",
                            added=True)
    confident_share: float = opt(0.75,
                                 "report: System 2 is confident on an input when its majority has this vote share",
                                 fp=False)
    max_disagreement: float = opt(0.10,
                                  "report: ship distilled only if disagreement with System 2 is surely below this",
                                  fp=False)
    cascade_fallback: str = opt("maj",
                                "report: what answers the inputs the cascade routes to System 2: maj (its maj@k "
                                "majority) | greedy (System 2 greedy)", fp=False)
    cascade_risk: str = opt("answered",
                            "report: what the cascade's bound is on: answered (disagreement with System 2 on the "
                            "inputs the distilled model answers) | all (its share of all inputs: the cascade's "
                            "accuracy is then at most eval.max_disagreement below System 2's majority; "
                            "docs/cascade.md)", fp=False)
    cascade_k: int = opt(4,
                         "the cascade's vote-share signal: the distilled model's direct answer sampled this many "
                         "times at eval.temperature (a few tokens each); its confidence is the share that repeats its "
                         "greedy answer. 0: off", fp=False)
    retention: bool = opt(True,
                          "retention after training (retention.py): KL(base || distilled) on held-out and general "
                          "prompts, and System 1 accuracy base vs distilled on other built-in tasks; a drop above "
                          "max_retention_drop is named in the verdict", fp=False)
    retention_tasks: list[str] = opt(help="other built-in tasks whose System 1 accuracy is compared before and "
                                          "after training", factory=lambda: ["last_letter", "coin_flip"], fp=False)
    retention_n: int = opt(40, "inputs per other task", fp=False)
    retention_prompts: int = opt(24,
                                 "prompts for the KL: held-out inputs and general ones (up to the 100 shipped) each",
                                 fp=False)
    retention_tokens: int = opt(12, "the base model's continuation the KL is measured on", fp=False)
    max_retention_drop: float = opt(0.02,
                                    "verdict note when an other task's System 1 accuracy drops by more than this "
                                    "fraction", fp=False)


@dataclass(frozen=True)
class DistributedConfig:
    """Run model calls as a Ray Data pipeline over a pool of actors, each owning one backend."""

    enabled: bool = opt(False, "run the model calls of distributed.stages as a Ray Data pipeline")
    address: str | None = opt(None, "None: a local Ray instance; \"auto\" / \"ray://head:10001\": an existing cluster")
    num_actors: int = opt(2, "one backend (engine server or endpoint) per actor")
    batch_size: int = opt(16, "requests per actor call (each actor keeps them in flight together)")
    num_cpus_per_actor: float = opt(1.0, "CPUs Ray reserves for each actor")
    num_gpus_per_actor: float = opt(0.0, "e.g. 1 with backend.name=vllm on GPU nodes")
    endpoints: list[str] = opt(help="openai: one base_url per actor slot (round robin)", factory=list)
    stages: list[str] = opt(help="also: curate, eval", factory=lambda: ["generate"])
    runtime_env: dict = opt(help="Ray runtime_env for cluster workers (pip, env_vars, ...)", factory=dict)


DISTRIBUTED_STAGES = ("generate", "curate", "eval")


@dataclass(frozen=True)
class TeacherConfig:
    """A stronger model for System 2 (generation, model-based curation, System 2 evaluation); the run's
    ``model`` stays the student. ``backend`` keys not given here are the run's own (s2distill.teacher)."""

    model: str = opt("", "embedded model name, .gguf path, or HF id, as the top-level model")
    backend: BackendConfig = opt(help="the teacher's engine; keys not set here are the run's backend keys",
                                 factory=BackendConfig)


@dataclass(frozen=True)
class RunConfig:
    name: str = opt("run", "the run's name (its directory is runs/<name> unless run_dir is set)")
    seed: int = opt(0, "seed of sampling and training")
    model: str = opt("default", "embedded model name, .gguf path, or HF id (transformers/openai)")
    run_dir: str | None = opt(None, "default: runs/<name>")
    backend: BackendConfig = opt(help="the engine that serves the model (llama.cpp, vLLM, an OpenAI-compatible "
                                      "server, transformers)", factory=BackendConfig)
    task: TaskConfig = opt(help="the task and its inputs", factory=TaskConfig)
    method: MethodConfig = opt(help="the System 2 method run on the unlabeled inputs", factory=MethodConfig)
    curate: CurateConfig = opt(help="how System 2's samples are filtered without labels", factory=CurateConfig)
    train: TrainSection = opt(help="fine-tuning the model to answer directly", factory=TrainSection)
    eval: EvalConfig = opt(help="evaluation, the label-free verdict, the cascade and retention", factory=EvalConfig)
    distributed: DistributedConfig = opt(help="Ray Data over a pool of engines", factory=DistributedConfig)
    plugins: list[str] = opt(help="modules imported before validation (they register classes)", factory=list)
    teacher: TeacherConfig | None = opt(None, "System 2 from a stronger model (None: the run's model, as in the paper)")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["teacher"] is None:  # config.yaml of a run without a teacher reads as before the section existed
            del d["teacher"]
        return d


def _set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = d
    for depth, k in enumerate(keys[:-1]):
        nxt = cur.get(k)
        if nxt is None:
            nxt = cur[k] = {}
        if isinstance(nxt, str) and depth == 1 and keys[0] == "train" and k in NAMED_SECTIONS:
            nxt = cur[k] = {"name": nxt}  # train.launcher: accelerate, then train.launcher.num_processes=2
        if not isinstance(nxt, dict):
            raise ConfigError(f"override '{dotted}': '{k}' is not a section")
        cur = nxt
    last = keys[-1]
    if keys[:1] == ["train"] and len(keys) == 2 and last in NAMED_SECTIONS and isinstance(cur.get(last), dict) \
            and not isinstance(value, dict):
        cur[last] = {**cur[last], "name": value}  # train.launcher=accelerate keeps the launcher's other keys
        return
    cur[last] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    out = []
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override '{ov}' is not key=value (example: method.n=8)")
        k, v = ov.split("=", 1)
        out.append((k.strip(), yaml.safe_load(v) if v.strip() else ""))
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, data: dict | None = None) -> RunConfig:
    """Load YAML (or a dict), apply ``a.b=c`` overrides (YAML-typed values), type-check every key and run the
    config's own checks (:func:`validate`). It imports no component: ``s2distill.checks.load_checked`` also
    resolves the names and asks each component to check its part."""
    raw: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: invalid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
    if data:
        raw = {**raw, **data}
    if isinstance(raw.get("train"), dict):
        raw = {**raw, "train": nest_train(raw["train"])}
    for k, v in parse_overrides(overrides or []):
        _set_path(raw, k, v)
    if isinstance(raw.get("train"), dict):
        raw = {**raw, "train": nest_train(raw["train"])}
    cfg = build(RunConfig, inherit_backend(raw))
    validate(cfg)
    return cfg


def inherit_backend(raw: dict) -> dict:
    """``raw`` (the YAML mapping after overrides) with ``teacher.backend`` filled in from the run's
    ``backend`` for the keys it does not set."""
    t = raw.get("teacher")
    if not isinstance(t, dict):
        return raw
    own = t.get("backend")
    if own is not None and not isinstance(own, dict):
        return raw  # the type check names it
    base = raw.get("backend") if isinstance(raw.get("backend"), dict) else {}
    return {**raw, "teacher": {**t, "backend": {**base, **(own or {})}}}


def validate(cfg: RunConfig) -> None:
    """The checks the config can make on its own: value ranges, choices, fields that must agree. What needs a
    component (a registered name, a task's options, a backend's settings) is ``s2distill.checks``, run where
    the components are built (``Pipeline``, ``s2distill validate``)."""
    for s in cfg.eval.systems:
        check_choice("eval system", s, SYSTEMS)
    if cfg.method.n < 1:
        raise ConfigError("method.n must be >= 1")
    if cfg.eval.rewordings < 0:
        raise ConfigError("eval.rewordings must be >= 0 (0 = no robustness evaluation)")
    for key in ("confident_share", "max_disagreement"):
        if not 0.0 < getattr(cfg.eval, key) <= 1.0:
            raise ConfigError(f"eval.{key} is a fraction in (0, 1], got {getattr(cfg.eval, key)} "
                              f"(e.g. eval.{key}={getattr(EvalConfig, key)})")
    check_choice("eval.cascade_fallback", cfg.eval.cascade_fallback, ("maj", "greedy"))
    check_choice("eval.cascade_risk", cfg.eval.cascade_risk, CASCADE_RISKS)
    if cfg.eval.retention:
        if cfg.eval.retention_n < 1 or cfg.eval.retention_prompts < 0 or cfg.eval.retention_tokens < 1:
            raise ConfigError("eval.retention_n and eval.retention_tokens must be >= 1, eval.retention_prompts >= 0 "
                              "(or eval.retention=false)")
    if not 0.0 <= cfg.eval.max_retention_drop <= 1.0:
        raise ConfigError(f"eval.max_retention_drop is a fraction in [0, 1], got {cfg.eval.max_retention_drop} "
                          "(e.g. eval.max_retention_drop=0.02)")
    if cfg.eval.cascade_k < 0 or cfg.eval.cascade_k == 1:
        raise ConfigError(f"eval.cascade_k is the number of samples behind the cascade's vote-share signal, 0 (off) "
                          f"or >= 2, got {cfg.eval.cascade_k} (e.g. eval.cascade_k=4)")
    if not 0.0 <= cfg.curate.min_agreement <= 1.0:
        raise ConfigError("curate.min_agreement is a fraction in [0, 1]")
    check_choice("curate.weighting", cfg.curate.weighting, WEIGHTINGS)
    if cfg.curate.weighting != "hard" and cfg.curate.name != "self_consistency":
        raise ConfigError(f"curate.weighting={cfg.curate.weighting} weights a pair by its vote share, which only "
                          f"curate.name=self_consistency computes (not {cfg.curate.name}); fix: set "
                          "curate.weighting=hard or curate.name=self_consistency")
    check_choice("train.method", cfg.train.method, ("lora", "full"))
    d = cfg.distributed
    for st in d.stages:
        check_choice("distributed stage", st, DISTRIBUTED_STAGES)
    if d.enabled and (d.num_actors < 1 or d.batch_size < 1):
        raise ConfigError("distributed.num_actors and distributed.batch_size must be >= 1")
    if d.endpoints and cfg.backend.name != "openai":
        raise ConfigError("distributed.endpoints lists OpenAI-compatible servers; set backend.name=openai "
                          "(with a managed engine per actor, leave distributed.endpoints empty)")
    cfg.backend.check_server("backend", d.endpoints)
    _check_teacher(cfg)


def _check_teacher(cfg: RunConfig) -> None:
    """Cross-field checks of the ``teacher`` section (names the fix); its backend's name is resolved by
    ``s2distill.checks``."""
    t = cfg.teacher
    if t is None:
        if systems.TEACHER_S1 in cfg.eval.systems:
            raise ConfigError("eval.systems lists teacher_system1 but the run has no teacher; fix: add a teacher "
                              "section (e.g. teacher.model=qwen2.5-coder-1.5b) or drop teacher_system1")
        return
    if not t.model:
        raise ConfigError("teacher.model is empty; fix: name the teacher's model, e.g. teacher.model=qwen2.5-coder-1.5b "
                          "(an embedded name, a .gguf path or an HF id), or remove the teacher section")
    t.backend.check_server("teacher.backend")
    if cfg.distributed.enabled and cfg.distributed.endpoints:
        raise ConfigError("distributed.endpoints serve one model; with a teacher section leave distributed.endpoints "
                          "empty (one managed engine per actor) or run without the teacher")


def keys_markdown() -> str:
    """docs/config.md: every config key with its type, default and help, from the fields' metadata
    (``python -m s2distill.config > docs/config.md``; tests/test_config.py checks the file is current)."""
    from .keys import key_docs
    from .tables import Table

    def cell(s: str) -> str:
        return s.replace("|", "\\|")

    docs = key_docs(RunConfig)
    sections = [d for d in docs if d.default == "(section)" or d.key == "teacher"]
    parts = ["# Config keys", "",
             "Every key of a run's config, generated from the fields' help metadata in `src/s2distill/config.py` "
             "(`python -m s2distill.config > docs/config.md`). `s2distill validate --explain KEY` prints one key or "
             "a section. Task options (`task.options.*`) and method options (`method.options.*`) belong to the "
             "task's `Options` dataclass and the method; `s2distill validate CONFIG` checks them.", ""]
    for sec in [None, *sections]:
        prefix = "" if sec is None else sec.key + "."
        rows = [d for d in docs if d.key.startswith(prefix) and d.key.count(".") == prefix.count(".")
                and d.default != "(section)" and d.key != "teacher"]
        if not rows:
            continue
        parts += [f"## {sec.key}", "", sec.help, ""] if sec else ["## top level", ""]
        parts += [Table(["key", "type", "default", "what it is"],
                        [[f"`{d.key}`", cell(d.type), f"`{cell(d.default)}`", cell(d.help)] for d in rows],
                        align="llll").markdown(), ""]
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    print(keys_markdown(), end="")
