"""Training: the student learns to answer directly from the curated pairs.

The package, by file:

* ``recipe.py``: :class:`LoRARecipe`, one fine-tuning run read top to bottom (setup_model, setup_trainer,
  train, save, summarize) on TRL's SFTTrainer with PEFT LoRA (or full fine-tuning); :func:`train_lora` runs it;
* ``config.py``: :class:`TrainConfig`, the trainer's settings (the ``train`` section plus the run's seed);
* ``rows.py``: tokenised prompt-completion rows, prompts truncated from the left;
* ``weighted.py``: soft targets (``curate.weighting=vote_share``: each pair's loss scaled by its vote share);
* ``checkpoints.py``: resumable checkpoints, keyed by what the run trains on;
* ``launch.py`` and ``worker.py``: ``accelerate launch`` (DDP / FSDP / DeepSpeed), every rank running the recipe;
* this module: the training policy of a run (:func:`train_distilled`: a stepwise curriculum, accelerate, or
  this process).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import hf_model_dir
from ..types import TrainPair
from .config import TrainConfig
from .recipe import LoRARecipe, peak_rss_bytes, to_prompt_completion, train_lora

__all__ = ["LoRARecipe", "TrainConfig", "hf_model_dir", "peak_rss_bytes", "settings_of", "summary_notes",
           "to_prompt_completion", "train_distilled", "train_lora"]


# -- the training policy of a run: which trainer, with which settings ------------------------------------

def settings_of(cfg: Any) -> TrainConfig:
    """The trainer's settings from a run config: its ``train`` section's training keys and the run's seed."""
    return TrainConfig.from_section(cfg.train, cfg.seed)


def train_distilled(cfg: Any, pairs_path: Path, out: Path, *, progress: bool = True, log: Callable[[str], None] = print,
                    before: Callable[[], None] | None = None,
                    stepwise: Callable[[list[TrainPair], str, Path, TrainConfig], dict] | None = None,
                    init_adapter: Path | None = None) -> dict:
    """Train the run's student on its curated pairs (JSONL at ``pairs_path``) into ``out``: a stepwise
    curriculum (``stepwise``, which runs its stages), ``accelerate launch`` (every rank reads the pairs file;
    rank 0 writes ``out``) or this process. ``before()`` runs first (e.g. closes engines to free the machine).
    ``init_adapter``: a LoRA adapter to continue from (a continual round's parent; local launcher only).
    Returns the train summary."""
    from ..rundir import read_jsonl

    pairs = [TrainPair.from_json(d) for d in read_jsonl(pairs_path)]
    if not pairs:
        raise ConfigError("curation kept no examples, nothing to train on; lower curate.min_agreement, "
                          "raise method.n or task.n_train (see curate/rejects.jsonl)")
    if before is not None:
        before()
    tcfg, base = settings_of(cfg), cfg.train.base_model or cfg.model
    if init_adapter is not None and (cfg.train.curriculum.name != "none" or cfg.train.launcher.name != "local"):
        raise ConfigError("continuing from the parent's adapter trains in this process only; fix: leave out "
                          "--from-parent-adapter, or set train.curriculum=none and train.launcher=local")
    if init_adapter is not None:
        return train_lora(pairs, base, out, tcfg, progress=progress, init_adapter=init_adapter)
    if cfg.train.curriculum.name == "stepwise" and stepwise is not None:
        return stepwise(pairs, base, out, tcfg)
    if cfg.train.launcher.name == "accelerate":
        from .launch import train_accelerate

        return train_accelerate(pairs_path, base, out, tcfg, cfg.train.launcher, progress=progress, log=log)
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
