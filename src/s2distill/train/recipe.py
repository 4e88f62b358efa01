"""The fine-tuning recipe: (System 1 prompt -> curated answer) pairs, TRL's SFTTrainer, LoRA or full.

Data is conversational prompt-completion, so the loss covers the answer (and its end-of-turn) only.
:class:`LoRARecipe` reads top to bottom (setup_model, setup_trainer, train, save, summarize);
:func:`train_lora` runs it. Heavy imports (torch, transformers, trl, peft) happen on first use.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..errors import ConfigError, DataError, ModelError
from ..models import resolve_hf_model
from ..precision import bitsandbytes_config, resolve_dtype, trainer_precision
from ..types import TrainPair
from . import checkpoints
from .checkpoints import save_steps_arg
from .config import TrainConfig
from .rows import tokenize_rows
from .weighted import pair_weights, weighted_trainer

__all__ = ["LoRARecipe", "peak_rss_bytes", "to_prompt_completion", "train_lora"]


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
        raise ModelError(f"{e}; fix: install the package it names, or set train.fit.attn_implementation=sdpa") from e
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


def _libs() -> SimpleNamespace:
    """torch, transformers, datasets, peft and trl, imported on first use (or a ModelError naming the extra)."""
    try:
        import torch
        import transformers
        from datasets import Dataset
        from peft import LoraConfig, PeftModel
        from trl import SFTConfig, SFTTrainer
    except ImportError as e:
        raise ModelError(f"{e}; fix: pip install 's2distill[train]' (torch, transformers, peft, trl, datasets)") from e
    return SimpleNamespace(torch=torch, transformers=transformers, Dataset=Dataset, LoraConfig=LoraConfig,
                           PeftModel=PeftModel, SFTConfig=SFTConfig, SFTTrainer=SFTTrainer)


class LoRARecipe:
    """One fine-tuning run on (System 1 prompt -> curated answer) pairs, read top to bottom:
    :meth:`setup_model` -> :meth:`setup_trainer` -> :meth:`train` -> :meth:`save` -> :meth:`summarize`
    (:meth:`run` calls them in that order). LoRA or full fine-tuning (``cfg.method``), from ``base``
    (embedded name, .gguf, HF dir or hub id) or from ``init_adapter`` (a LoRA adapter to continue: a
    curriculum's previous stage, a continual round's parent; the optimizer starts fresh either way).

    Writes ``out_dir/adapter/`` (LoRA), ``out_dir/merged/`` (``cfg.save_merged`` or full fine-tuning),
    ``out_dir/loss.jsonl`` and ``out_dir/train_summary.json``. Under ``accelerate launch`` every rank runs
    the recipe: each writes ``out_dir/ranks/rank{N}.json`` (what it trained on), only the main process
    writes the rest, and :meth:`run` returns the other ranks' record."""

    def __init__(self, pairs: list[TrainPair], base: str, out_dir: Path, cfg: TrainConfig = TrainConfig(),
                 progress: bool = True, init_adapter: Path | None = None):
        if not pairs:
            raise DataError("no train pairs; fix: curate some data first (s2distill curate)")
        if init_adapter is not None and cfg.method != "lora":
            raise ConfigError("continuing from a LoRA adapter needs train.method=lora")
        self.pairs, self.base, self.out_dir, self.cfg = pairs, base, Path(out_dir), cfg
        self.progress, self.init_adapter = progress, init_adapter
        self.weights = pair_weights(pairs)  # curate.weighting=vote_share: each pair's loss scaled by its vote share

    def run(self) -> dict:
        self.setup_model()
        self.setup_trainer()
        record = self.train()
        if not self.save():
            return record  # not the main process: its record is the result
        return self.summarize()

    def setup_model(self) -> None:
        """The tokenizer, the tokenised rows and the model (with the adapter to continue, if any)."""
        lib, cfg = _libs(), self.cfg
        if not self.progress:  # no per-map "Tokenizing train dataset" bars either
            from datasets import disable_progress_bars

            disable_progress_bars()
        if cfg.threads:
            lib.torch.set_num_threads(cfg.threads)
        lib.transformers.set_seed(cfg.seed)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        t_load = time.time()
        self.base_dir = resolve_hf_model(self.base)
        try:
            tok = lib.transformers.AutoTokenizer.from_pretrained(self.base_dir)
        except (OSError, ValueError) as e:  # HF raises these for a missing dir / unknown hub id
            raise ModelError(f"cannot load the base model '{self.base}': {e}; fix: set train.base_model (or model) to "
                             "an embedded model name, a .gguf, an HF model directory or a hub id") from e
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if tok.chat_template is None:
            raise ModelError(f"tokenizer of {self.base} has no chat template; fix: train from an instruction-tuned model")
        self.tok = tok
        self.use_cpu = not lib.torch.cuda.is_available() or _env_true("ACCELERATE_USE_CPU")
        device = "cpu" if self.use_cpu else "cuda"
        self.dtype = resolve_dtype(cfg.dtype, device, training=True)
        bnb = None if cfg.quantization == "none" else bitsandbytes_config(cfg.quantization, self.dtype, device)
        rows = to_prompt_completion(self.pairs)
        self.tokenized, self.trunc = tokenize_rows(tok, rows, [p.example_id for p in self.pairs], cfg.max_length,
                                                   cfg.too_long)
        if self.weights is not None:
            self.tokenized = [{**row, "weight": w} for row, w in zip(self.tokenized, self.weights)]
        model = _load_model(self.base_dir, cfg, self.dtype, bnb)
        if self.init_adapter is not None:
            model = lib.PeftModel.from_pretrained(model, str(self.init_adapter), is_trainable=True)
        self.model, self.load_s = model, time.time() - t_load

    def setup_trainer(self) -> None:
        """TRL's SFTTrainer (weighted when the pairs carry weights) with the LoRA config, the run's arguments, the
        checkpoint to resume from and the loss / optimizer callbacks."""
        lib, cfg = _libs(), self.cfg
        peft_config = None
        if cfg.method == "lora" and self.init_adapter is None:
            tm = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
            peft_config = lib.LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                         target_modules=tm, bias="none", task_type="CAUSAL_LM")
        self.liger = cfg.liger_kernel if cfg.liger_kernel is not None else (
            not self.use_cpu and importlib.util.find_spec("liger_kernel") is not None)
        self.args = args = _sft_args(lib.SFTConfig, cfg, self.out_dir / "checkpoints", self.use_cpu, self.dtype,
                                     self.liger, self.progress)
        self.ckpt_dir = self.out_dir / "checkpoints"
        key = checkpoints.run_key(cfg.trainer_json(), str(self.base) + _adapter_key(self.init_adapter),
                                  self.tokenized, args.world_size)
        self.resume = checkpoints.prepare(self.ckpt_dir, key, args.process_index == 0)
        self.opt_seen: dict = {}
        trainer_cls = lib.SFTTrainer if self.weights is None else weighted_trainer(lib.SFTTrainer)
        self.trainer = trainer_cls(model=self.model, args=args, train_dataset=lib.Dataset.from_list(self.tokenized),
                                   processing_class=self.tok, peft_config=peft_config,
                                   callbacks=[_loss_logger(self.out_dir / "loss.jsonl"), checkpoints.marker_callback(),
                                              _optimizer_probe(self.opt_seen)])
        if not self.progress:  # no per-step log dicts on stdout
            self.trainer.remove_callback(lib.transformers.trainer_callback.PrinterCallback)
        self.trainable = sum(p.numel() for p in self.trainer.model.parameters() if p.requires_grad)

    def train(self) -> dict:
        """The optimizer steps (resumed from the last checkpoint of the same run); this rank's record."""
        args, trainer = self.args, self.trainer
        self.is_main = trainer.is_world_process_zero()
        if self.is_main:  # stale records of an earlier run with more ranks; the others write theirs after training
            shutil.rmtree(self.out_dir / "ranks", ignore_errors=True)
        seen = _SeenCounter()
        hook = trainer.model.register_forward_pre_hook(seen, with_kwargs=True)
        t0 = time.time()
        self.result = trainer.train(resume_from_checkpoint=str(self.resume) if self.resume else None)
        self.train_s = time.time() - t0
        hook.remove()
        self.resumed_from = int(self.resume.name.split("-")[1]) if self.resume else 0
        record = {"rank": args.process_index, "local_rank": args.local_process_index, "world_size": args.world_size,
                  "pid": os.getpid(), "host": os.uname().nodename, "resumed_from_step": self.resumed_from,
                  "steps": int(self.result.global_step), "examples_seen": seen.rows, "tokens_seen": seen.tokens,
                  "padded_tokens_seen": seen.padded_tokens, "distinct_rows": sorted(seen.hashes),
                  "train_time_s": round(self.train_s, 2), "device": str(args.device), "writes_model": self.is_main}
        (self.out_dir / "ranks").mkdir(parents=True, exist_ok=True)
        (self.out_dir / "ranks" / f"rank{args.process_index}.json").write_text(json.dumps(record, indent=2) + "\n")
        return record

    def save(self) -> bool:
        """The adapter and/or the merged model (the main process writes; FSDP / ZeRO gather on every rank).
        False on the other ranks."""
        cfg, trainer, out = self.cfg, self.trainer, self.out_dir
        sharded = bool(getattr(trainer, "is_fsdp_enabled", False) or getattr(trainer, "is_deepspeed_enabled", False))
        if sharded:  # every rank takes part in gathering the weights, the main process writes them
            dest = out / ("adapter" if cfg.method == "lora" else "merged")
            with _disk_guard(dest):
                trainer.save_model(str(dest))
        trainer.accelerator.wait_for_everyone()
        if not self.is_main:
            return False
        model = trainer.model
        model.eval()
        if cfg.method == "lora" and not sharded:
            _save(model, self.tok, out / "adapter")
        if cfg.method == "lora" and cfg.save_merged:
            if sharded or cfg.quantization != "none":  # no merge in place (sharded or quantized): reload on the base
                lib = _libs()
                model = lib.PeftModel.from_pretrained(lib.transformers.AutoModelForCausalLM.from_pretrained(
                    self.base_dir, dtype=getattr(lib.torch, self.dtype)), out / "adapter")
            _save(model.merge_and_unload(), self.tok, out / "merged")
        elif cfg.method == "full" and not sharded:
            _save(model, self.tok, out / "merged")
        return True

    def summarize(self) -> dict:
        """``train_summary.json``: steps, losses, time, memory, tokens, the ranks; the finished run's checkpoints
        are removed (nothing to resume)."""
        cfg, out, result, train_s = self.cfg, self.out_dir, self.result, self.train_s
        ranks = [json.loads(p.read_text()) for p in sorted((out / "ranks").glob("rank*.json"))]
        losses = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines() if line.strip()]
        steps, w = int(result.global_step), self.weights
        summary = {
            "base": str(self.base), "base_dir": str(self.base_dir), "method": cfg.method, "n_pairs": len(self.pairs),
            "steps": steps, "final_loss": losses[-1]["loss"] if losses else None,
            "first_loss": losses[0]["loss"] if losses else None, "train_loss": float(result.training_loss),
            "train_time_s": round(train_s, 2), "s_per_step": round(train_s / max(1, steps), 3),
            # the first step carries one-off warm-up costs; this is the rate later steps run at
            "s_per_step_after_first": round((losses[-1]["elapsed_s"] - losses[0]["elapsed_s"]) / (len(losses) - 1), 3)
            if len(losses) > 1 and cfg.logging_steps == 1 else None,
            "load_time_s": round(self.load_s, 2), "peak_rss_bytes": peak_rss_bytes(),
            "trainable_params": int(self.trainable), "threads": _libs().torch.get_num_threads(),
            "config": cfg.trainer_json(), "world_size": self.args.world_size, "dtype": self.dtype,
            "device": str(self.args.device), "quantization": cfg.quantization, "resumed_from_step": self.resumed_from,
            "liger_kernel": self.liger, **self.trunc.to_json(), **self.opt_seen,
            **({"weighted": True, "mean_weight": round(sum(w) / len(w), 4)} if w is not None else {}),
            **({"init_adapter": str(self.init_adapter)} if self.init_adapter is not None else {}),
            "examples_seen": sum(r["examples_seen"] for r in ranks),
            **_token_rates(ranks, steps - self.resumed_from, train_s),
            "ranks": [{k: r[k] for k in ("rank", "pid", "host", "steps", "examples_seen")} for r in ranks],
            "adapter_dir": str(out / "adapter") if cfg.method == "lora" else None,
            "merged_dir": str(out / "merged") if (cfg.method == "full" or cfg.save_merged) else None,
        }
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        shutil.rmtree(out / "trainer", ignore_errors=True)  # left by versions before checkpoints
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)  # finished: nothing to resume
        return summary


def _sft_args(sft_config: Any, cfg: TrainConfig, output_dir: Path, use_cpu: bool, dtype: str, liger: bool,
              progress: bool) -> Any:
    """TRL's ``SFTConfig`` for the run: the section's keys, checkpoints every ``save_steps``, no evaluation."""
    ckpt = "activation_checkpointing" if "activation_checkpointing" in sft_config.__dataclass_fields__ \
        else "gradient_checkpointing"  # renamed in transformers 5.x
    return sft_config(
        **{ckpt: cfg.gradient_checkpointing}, **_sampling_arg(sft_config, cfg.group_by_length),
        output_dir=str(output_dir), per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, max_length=cfg.max_length,
        logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed, optim=cfg.optim,
        save_strategy="steps", save_steps=save_steps_arg(cfg.save_steps), save_total_limit=cfg.save_total_limit,
        eval_strategy="no", report_to=[], use_cpu=use_cpu, **trainer_precision(dtype),
        padding_free=cfg.padding_free, use_liger_kernel=liger, disable_tqdm=not progress, dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # DDP: every trainable weight is used each step (LoRA and full)
        completion_only_loss=True, remove_unused_columns=True)


def _save(model: Any, tok: Any, dest: Path) -> None:
    with _disk_guard(dest):
        model.save_pretrained(dest)
        tok.save_pretrained(dest)


def train_lora(pairs: list[TrainPair], base: str, out_dir: Path, cfg: TrainConfig = TrainConfig(),
               progress: bool = True, init_adapter: Path | None = None) -> dict:
    """Train on ``pairs`` starting from ``base`` (embedded name, .gguf, HF dir or hub id): :class:`LoRARecipe`
    run top to bottom. Returns the summary (on a non-main rank of ``accelerate launch``: its record)."""
    return LoRARecipe(pairs, base, out_dir, cfg, progress, init_adapter).run()


def _token_rates(ranks: list[dict], steps_run: int, train_s: float) -> dict:
    """Training tokens (all ranks; padding excluded) per optimizer step and per second, and the share of the
    computed tokens that were padding, over the steps this invocation ran."""
    tokens = sum(r.get("tokens_seen", 0) for r in ranks)
    padded = sum(r.get("padded_tokens_seen", 0) for r in ranks)
    return {"tokens_seen": tokens, "tokens_per_step": round(tokens / steps_run, 1) if steps_run else None,
            "tokens_per_s": round(tokens / train_s, 1) if train_s > 0 else None,
            "padding_share": round(1 - tokens / padded, 4) if padded else None}
