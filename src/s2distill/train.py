"""Fine-tune on (System 1 prompt -> curated answer) pairs with TRL's SFTTrainer (LoRA or full).

Data is conversational prompt-completion, so the loss covers the answer (and its end-of-turn) only.
Heavy imports (torch, transformers, trl, peft) happen inside :func:`train_lora`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import checkpoints
from .checkpoints import save_steps_arg
from .config import TrainSection
from .errors import ConfigError, DataError, ModelError
from .keys import check_keys, field_names
from .models import hf_model_dir, resolve_hf_model
from .precision import bitsandbytes_config, resolve_dtype, trainer_precision
from .types import TrainPair
from .weighted import pair_weights, weighted_trainer

__all__ = ["TrainConfig", "train_lora", "hf_model_dir", "peak_rss_bytes", "settings_of", "train_distilled", "summary_notes"]


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
        from .precision import check_train_section

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


@contextlib.contextmanager
def _disk_guard(dest: Path):
    """Turn a full disk while saving weights into an error that says how much room is left and what to do."""
    try:
        yield
    except Exception as e:  # safetensors raises its own error type, torch an OSError / RuntimeError
        if "No space left" not in str(e) and getattr(e, "errno", None) != errno.ENOSPC:
            raise
        free = shutil.disk_usage(dest.parent).free
        raise ModelError(f"disk full while writing {dest} ({free / 2**30:.2f} GiB free); the training steps are "
                         "lost but every earlier stage is kept; fix: free disk space (old run dirs' model/merged "
                         "are the usual culprits) or leave train.save_merged off, then run again") from e


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def to_prompt_completion(pairs: list[TrainPair]) -> list[dict]:
    rows = []
    for p in pairs:
        if not p.messages or not p.target.strip():
            raise DataError(f"train pair {p.example_id} has no messages or an empty target; fix: re-run curation")
        rows.append({"prompt": [dict(m) for m in p.messages],
                     "completion": [{"role": "assistant", "content": p.target}]})
    return rows


def _loss_logger(path: Path) -> Any:
    from transformers import TrainerCallback

    class LossLogger(TrainerCallback):
        """Writes ``loss.jsonl`` on the main process only (every rank gets the logs under DDP)."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.fh = None
            self.last: dict = {}

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t0 = time.time()
            if state.is_world_process_zero:  # resumed at step N: keep the lines of steps <= N and append
                kept = []
                if state.global_step > 0 and path.is_file():
                    kept = [x for x in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
                            if x["step"] <= state.global_step]
                if kept:
                    self.t0 -= kept[-1]["elapsed_s"]
                self.fh = open(path, "w")
                self.fh.writelines(json.dumps(x) + "\n" for x in kept)
                self.fh.flush()

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if self.fh is None or not logs or "loss" not in logs:
                return
            self.last = {"step": state.global_step, "loss": float(logs["loss"]),
                         "lr": float(logs.get("learning_rate", 0.0)),
                         "epoch": float(logs.get("epoch") or state.epoch or 0),
                         "elapsed_s": round(time.time() - self.t0, 3)}
            self.fh.write(json.dumps(self.last) + "\n")
            self.fh.flush()

        def on_train_end(self, args, state, control, **kw):  # noqa: ANN001
            if self.fh is not None:
                self.fh.close()

    return LossLogger()


class _SeenCounter:
    """Forward pre-hook that counts the training rows this rank's model saw (and hashes them)."""

    def __init__(self) -> None:
        self.rows = 0
        self.tokens = 0
        self.padded_tokens = 0  # what the forward passes computed on, padding included
        self.hashes: set[str] = set()

    def __call__(self, module, args, kwargs):  # noqa: ANN001
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not module.training or ids is None:
            return
        mask, pos = kwargs.get("attention_mask"), kwargs.get("position_ids")
        ids, mask, pos = (None if t is None else t.detach().cpu() for t in (ids, mask, pos))  # one copy, one sync
        self.padded_tokens += int(ids.numel())
        if mask is None and pos is not None and ids.shape[0] == 1:  # padding-free: rows restart at position 0
            starts = (pos[0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
            rows = [ids[0, a:b] for a, b in zip(starts, starts[1:])]
        else:
            rows = [ids[i][mask[i].bool()] if mask is not None else ids[i] for i in range(ids.shape[0])]
        for row in rows:
            self.rows += 1
            self.tokens += int(row.numel())
            self.hashes.add(hashlib.sha1(row.numpy().tobytes()).hexdigest()[:12])


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _load_model(base_dir: str, cfg: TrainConfig, dtype: str, bnb: Any) -> Any:
    """The base model in ``dtype`` (bf16 on a bf16 GPU by default), quantized for QLoRA when asked."""
    import torch
    import transformers

    kw: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if cfg.attn_implementation != "auto":
        kw["attn_implementation"] = cfg.attn_implementation
    if bnb is not None:
        from accelerate import PartialState

        kw["quantization_config"] = bnb
        kw["device_map"] = {"": PartialState().local_process_index}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(base_dir, **kw)
    except ImportError as e:  # e.g. flash_attention_2 without flash-attn
        raise ModelError(f"{e}; fix: install the package it names, or set train.attn_implementation=sdpa") from e
    if bnb is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model


def _sampling_arg(config_cls: Any, group_by_length: bool) -> dict:
    """The Trainer's length-grouped sampling switch: ``train_sampling_strategy`` in transformers 5, the
    ``group_by_length`` flag before it."""
    fields = config_cls.__dataclass_fields__
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length} if "group_by_length" in fields else {}


def _optimizer_probe(seen: dict) -> Any:
    from transformers import TrainerCallback

    class OptimizerProbe(TrainerCallback):
        """Records the optimizer the Trainer starts with: its state entries (0 = fresh, no moments yet)."""

        def on_train_begin(self, args, state, control, optimizer=None, **kw):  # noqa: ANN001
            if optimizer is not None:
                seen["optimizer_state_at_start"] = sum(len(v) for v in optimizer.state.values())

    return OptimizerProbe()


def _adapter_key(adapter: Path | None) -> str:
    """Identity of a LoRA adapter directory (for the checkpoint key): its weight files' names, sizes, mtimes."""
    if adapter is None:
        return ""
    files = sorted(Path(adapter).glob("adapter_model.*"))
    return "|".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def train_lora(pairs: list[TrainPair], base: str, out_dir: Path, cfg: TrainConfig = TrainConfig(),
               progress: bool = True, init_adapter: Path | None = None) -> dict:
    """Train on ``pairs`` starting from ``base`` (embedded name, .gguf, HF dir or hub id).

    ``init_adapter``: a LoRA adapter directory to continue training (a curriculum's previous stage);
    the optimizer starts fresh either way.

    Writes ``out_dir/adapter/`` (LoRA only), ``out_dir/merged/`` (if ``cfg.save_merged`` or full
    fine-tuning), ``out_dir/loss.jsonl`` and ``out_dir/train_summary.json``; returns the summary.
    Under ``accelerate launch`` every rank calls this: each writes ``out_dir/ranks/rank{N}.json`` (what
    it trained on), only the main process writes the rest, and the other ranks return their record.
    """
    if not pairs:
        raise DataError("no train pairs; fix: curate some data first (s2distill curate)")
    rows = to_prompt_completion(pairs)
    try:
        import torch
        import transformers
        from datasets import Dataset
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer
    except ImportError as e:
        raise ModelError(f"{e}; fix: pip install 's2distill[train]' (torch, transformers, peft, trl, datasets)") from e

    if not progress:  # no per-map "Tokenizing train dataset" bars either
        from datasets import disable_progress_bars

        disable_progress_bars()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    transformers.set_seed(cfg.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    t_load = time.time()
    base_dir = resolve_hf_model(base)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(base_dir)
    except (OSError, ValueError) as e:  # HF raises these for a missing dir / unknown hub id
        raise ModelError(f"cannot load the base model '{base}': {e}; fix: set train.base_model (or model) to an "
                         "embedded model name, a .gguf, an HF model directory or a hub id") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if getattr(tok, "chat_template", None) is None:
        raise ModelError(f"tokenizer of {base} has no chat template; fix: train from an instruction-tuned model")
    from .train_rows import tokenize_rows

    use_cpu = not torch.cuda.is_available() or _env_true("ACCELERATE_USE_CPU")
    dtype = resolve_dtype(cfg.dtype, "cpu" if use_cpu else "cuda", training=True)
    bnb = None if cfg.quantization == "none" else \
        bitsandbytes_config(cfg.quantization, dtype, "cpu" if use_cpu else "cuda")  # before any slow work
    tokenized, trunc = tokenize_rows(tok, rows, [p.example_id for p in pairs], cfg.max_length, cfg.too_long)
    weights = pair_weights(pairs)  # curate.weighting=vote_share: each pair's loss scaled by its vote share
    if weights is not None:
        tokenized = [{**row, "weight": w} for row, w in zip(tokenized, weights)]
        SFTTrainer = weighted_trainer(SFTTrainer)  # noqa: N806
    model = _load_model(base_dir, cfg, dtype, bnb)
    peft_config = None
    if init_adapter is not None:
        if cfg.method != "lora":
            raise ConfigError("continuing from a LoRA adapter needs train.method=lora")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    load_s = time.time() - t_load

    if cfg.method == "lora" and init_adapter is None:
        tm = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=tm, bias="none", task_type="CAUSAL_LM")
    ckpt = "activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__ \
        else "gradient_checkpointing"  # renamed in transformers 5.x
    liger = cfg.liger_kernel if cfg.liger_kernel is not None else (
        not use_cpu and importlib.util.find_spec("liger_kernel") is not None)
    args = SFTConfig(
        **{ckpt: cfg.gradient_checkpointing}, **_sampling_arg(SFTConfig, cfg.group_by_length),
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        max_length=cfg.max_length,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        optim=cfg.optim,
        save_strategy="steps",
        save_steps=save_steps_arg(cfg.save_steps),
        save_total_limit=cfg.save_total_limit,
        eval_strategy="no",
        report_to=[],
        use_cpu=use_cpu,
        **trainer_precision(dtype),
        padding_free=cfg.padding_free,
        use_liger_kernel=liger,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # DDP: every trainable weight is used each step (LoRA and full)
        completion_only_loss=True,
        remove_unused_columns=True,
    )
    ckpt_dir = out_dir / "checkpoints"
    resume = checkpoints.prepare(ckpt_dir, checkpoints.run_key(cfg.trainer_json(), str(base) + _adapter_key(init_adapter),
                                                                 tokenized, args.world_size),
                                 args.process_index == 0)
    opt_seen: dict = {}
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(tokenized),
                         processing_class=tok, peft_config=peft_config,
                         callbacks=[_loss_logger(out_dir / "loss.jsonl"), checkpoints.marker_callback(),
                                    _optimizer_probe(opt_seen)])
    if not progress:
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)  # no per-step log dicts on stdout
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    rank, world_size, is_main = args.process_index, args.world_size, trainer.is_world_process_zero()
    if is_main:  # stale records of an earlier run with more ranks; the others write theirs after training
        shutil.rmtree(out_dir / "ranks", ignore_errors=True)
    seen = _SeenCounter()
    hook = trainer.model.register_forward_pre_hook(seen, with_kwargs=True)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    train_s = time.time() - t0
    hook.remove()
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    record = {"rank": rank, "local_rank": args.local_process_index, "world_size": world_size, "pid": os.getpid(),
              "host": os.uname().nodename, "resumed_from_step": resumed_from, "steps": int(result.global_step),
              "examples_seen": seen.rows,
              "tokens_seen": seen.tokens, "padded_tokens_seen": seen.padded_tokens, "distinct_rows": sorted(seen.hashes), "train_time_s": round(train_s, 2),
              "device": str(args.device), "writes_model": is_main}
    (out_dir / "ranks").mkdir(parents=True, exist_ok=True)
    (out_dir / "ranks" / f"rank{rank}.json").write_text(json.dumps(record, indent=2) + "\n")
    sharded = bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))
    if sharded:  # FSDP / ZeRO: every rank takes part in gathering the weights, the main process writes them
        dest = out_dir / ("adapter" if cfg.method == "lora" else "merged")
        with _disk_guard(dest):
            trainer.save_model(str(dest))
    trainer.accelerator.wait_for_everyone()
    if not is_main:
        return record

    model = trainer.model
    model.eval()
    if cfg.method == "lora" and not sharded:
        with _disk_guard(out_dir / "adapter"):
            model.save_pretrained(out_dir / "adapter")
            tok.save_pretrained(out_dir / "adapter")
    if cfg.method == "lora" and cfg.save_merged:
        if sharded or cfg.quantization != "none":  # no merge in place (sharded or quantized): reload on the base
            from peft import PeftModel

            model = PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(
                base_dir, dtype=getattr(torch, dtype)), out_dir / "adapter")
        with _disk_guard(out_dir / "merged"):
            model.merge_and_unload().save_pretrained(out_dir / "merged")
            tok.save_pretrained(out_dir / "merged")
    elif cfg.method == "full" and not sharded:
        with _disk_guard(out_dir / "merged"):
            model.save_pretrained(out_dir / "merged")
            tok.save_pretrained(out_dir / "merged")
    ranks = [json.loads(p.read_text()) for p in sorted((out_dir / "ranks").glob("rank*.json"))]
    losses = [json.loads(line) for line in (out_dir / "loss.jsonl").read_text().splitlines() if line.strip()]
    summary = {
        "base": str(base), "base_dir": str(base_dir), "method": cfg.method, "n_pairs": len(pairs),
        "steps": int(result.global_step), "final_loss": losses[-1]["loss"] if losses else None,
        "first_loss": losses[0]["loss"] if losses else None, "train_loss": float(result.training_loss),
        "train_time_s": round(train_s, 2), "s_per_step": round(train_s / max(1, result.global_step), 3),
        # the first step carries one-off warm-up costs; this is the rate later steps run at
        "s_per_step_after_first": round((losses[-1]["elapsed_s"] - losses[0]["elapsed_s"]) / (len(losses) - 1), 3)
        if len(losses) > 1 and cfg.logging_steps == 1 else None,
        "load_time_s": round(load_s, 2), "peak_rss_bytes": peak_rss_bytes(), "trainable_params": int(trainable),
        "threads": torch.get_num_threads(), "config": cfg.trainer_json(), "world_size": world_size,
        "dtype": dtype, "device": str(args.device), "quantization": cfg.quantization, "resumed_from_step": resumed_from,
        "liger_kernel": liger, **trunc.to_json(), **opt_seen,
        **({"weighted": True, "mean_weight": round(sum(weights) / len(weights), 4)} if weights is not None else {}),
        **({"init_adapter": str(init_adapter)} if init_adapter is not None else {}),
        "examples_seen": sum(r["examples_seen"] for r in ranks),
        **_token_rates(ranks, int(result.global_step) - resumed_from, train_s),
        "ranks": [{k: r[k] for k in ("rank", "pid", "host", "steps", "examples_seen")} for r in ranks],
        "adapter_dir": str(out_dir / "adapter") if cfg.method == "lora" else None,
        "merged_dir": str(out_dir / "merged") if (cfg.method == "full" or cfg.save_merged) else None,
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(out_dir / "trainer", ignore_errors=True)  # left by versions before checkpoints
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: nothing to resume
    return summary


def _token_rates(ranks: list[dict], steps_run: int, train_s: float) -> dict:
    """Training tokens (all ranks; padding excluded) per optimizer step and per second, and the share of the
    computed tokens that were padding, over the steps this invocation ran."""
    tokens = sum(r.get("tokens_seen", 0) for r in ranks)
    padded = sum(r.get("padded_tokens_seen", 0) for r in ranks)
    return {"tokens_seen": tokens, "tokens_per_step": round(tokens / steps_run, 1) if steps_run else None,
            "tokens_per_s": round(tokens / train_s, 1) if train_s > 0 else None,
            "padding_share": round(1 - tokens / padded, 4) if padded else None}


# -- the training policy of a run: which trainer, with which settings ------------------------------------

def settings_of(cfg: Any) -> TrainConfig:
    """The trainer's settings from a run config: its ``train`` section's training keys and the run's seed."""
    return TrainConfig(**dataclasses.asdict(cfg.train), seed=cfg.seed)


def train_distilled(cfg: Any, pairs_path: Path, out: Path, *, progress: bool = True, log: Callable[[str], None] = print,
                    before: Callable[[], None] | None = None,
                    stepwise: Callable[[list[TrainPair], str, Path, TrainConfig], dict] | None = None,
                    init_adapter: Path | None = None) -> dict:
    """Train the run's student on its curated pairs (JSONL at ``pairs_path``) into ``out``: a stepwise
    curriculum (``stepwise``, which runs its stages), ``accelerate launch`` (every rank reads the pairs file;
    rank 0 writes ``out``) or this process. ``before()`` runs first (e.g. closes engines to free the machine).
    ``init_adapter``: a LoRA adapter to continue from (a continual round's parent; local launcher only).
    Returns the train summary."""
    from .rundir import read_jsonl

    pairs = [TrainPair.from_json(d) for d in read_jsonl(pairs_path)]
    if not pairs:
        raise ConfigError("curation kept no examples, nothing to train on; lower curate.min_agreement, "
                          "raise method.n or task.n_train (see curate/rejects.jsonl)")
    if before is not None:
        before()
    tcfg, base = settings_of(cfg), cfg.train.base_model or cfg.model
    if init_adapter is not None and (cfg.train.curriculum != "none" or cfg.train.launcher != "local"):
        raise ConfigError("continuing from the parent's adapter trains in this process only; fix: leave out "
                          "--from-parent-adapter, or set train.curriculum=none and train.launcher=local")
    if init_adapter is not None:
        return train_lora(pairs, base, out, tcfg, progress=progress, init_adapter=init_adapter)
    if cfg.train.curriculum == "stepwise" and stepwise is not None:
        return stepwise(pairs, base, out, tcfg)
    if cfg.train.launcher == "accelerate":
        from .launch import options_from_section, train_accelerate

        return train_accelerate(pairs_path, base, out, tcfg, options_from_section(cfg.train), progress=progress,
                                log=log)
    return train_lora(pairs, base, out, tcfg, progress=progress)


def summary_notes(summary: dict, max_length: int) -> list[str]:
    """What a run's log says about a training summary (truncated rows, a resumed checkpoint)."""
    notes = []
    if summary.get("truncated_rows"):
        notes.append(f"[train] {summary['truncated_rows']} of {summary['rows']} row(s) over train.max_length="
                     f"{max_length}: their prompts lost {summary['dropped_prompt_tokens']} token(s) from the start "
                     f"(the answers are whole; e.g. {', '.join(summary['truncated_examples'])})")
    if summary.get("resumed_from_step"):
        notes.append(f"[train] resumed from the checkpoint at step {summary['resumed_from_step']}")
    return notes
