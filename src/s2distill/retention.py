"""What distillation cost elsewhere: retention of the base model's behaviour, in every report.

Two measurements after training (stage ``retention``, ``eval/retention.json``; ``eval.retention: false``
turns it off):

* **KL divergence** between the base and the distilled model, per token: each prompt is continued greedily
  by the base model (``eval.retention_tokens`` new tokens), then both models score that continuation
  (teacher-forced) and KL(base || distilled) is averaged over the continuation's tokens. On the first
  ``eval.retention_prompts`` held-out inputs (their System 1 prompts) and as many prompts of a general set
  shipped in the package (100 everyday instructions written for the project, ``data/general_prompts.txt``). One model in memory: the adapter is switched off for the base model's logits. Needs the
  PEFT adapter the train stage wrote and the base model's HF weights (the embedded models have them);
  otherwise the part says why it is missing.
* **System 1 accuracy on other tasks**, base vs distilled (``eval.retention_tasks``, default last letter
  and coin flip, ``eval.retention_n`` inputs each), with the run's System 1 prompt: what the distilled
  model can no longer do that the base model could. A drop above ``eval.max_retention_drop`` is named in
  the verdict.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

GENERAL = Path(__file__).parent / "data" / "general_prompts.txt"


def general_prompts(n: int | None = None) -> list[str]:
    """The shipped general prompts (the first ``n``)."""
    lines = [x.strip() for x in GENERAL.read_text(encoding="utf-8").splitlines()]
    out = [x for x in lines if x and not x.startswith("#")]
    return out[:n] if n is not None else out


def kl_divergence(model: str, adapter: str | Path, sets: dict[str, Sequence[Sequence[dict]]], max_new_tokens: int = 16,
                  batch_size: int = 8, threads: int | None = None) -> dict[str, dict]:
    """Per prompt set (name -> prompts as chat messages): the mean per-token KL(base || distilled) over the base
    model's greedy continuation of each prompt, ``{"kl", "tokens", "prompts"}``. The model is loaded once (CPU,
    fp32); the adapter is switched off for the base's logits."""
    import torch
    import transformers
    from peft import PeftModel

    from .models import resolve_hf_model

    if threads:
        torch.set_num_threads(threads)
    path = resolve_hf_model(model)
    tok = transformers.AutoTokenizer.from_pretrained(path, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    base = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    net = PeftModel.from_pretrained(base, str(adapter)).eval()
    return {name: _kl(net, tok, prompts, max_new_tokens, batch_size) for name, prompts in sets.items()}


def _kl(net, tok, prompts, max_new_tokens: int, batch_size: int) -> dict:
    import torch

    total, count = 0.0, 0
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        texts = [tok.apply_chat_template([dict(m) for m in p], add_generation_prompt=True, tokenize=False)
                 if getattr(tok, "chat_template", None) else "\n\n".join(m["content"] for m in p) + "\n" for p in batch]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        n_prompt = enc["input_ids"].shape[1]
        with torch.no_grad(), net.disable_adapter():
            seq = net.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        gen = seq[:, n_prompt:]
        # the continuation's tokens up to and including the first end-of-sequence (or pad) token
        stop = (gen == tok.pad_token_id) | (gen == (tok.eos_token_id if tok.eos_token_id is not None else -1))
        after = torch.cumsum(stop.int(), dim=1) - stop.int()
        valid = (after == 0)
        mask = torch.cat([enc["attention_mask"], valid.long()], dim=1)
        keep = gen.shape[1] + 1  # the output head only where the continuation is predicted (the vocabulary is large)
        with torch.no_grad():
            with net.disable_adapter():
                lb = net(input_ids=seq, attention_mask=mask, logits_to_keep=keep).logits[:, :-1].log_softmax(-1)
            ld = net(input_ids=seq, attention_mask=mask, logits_to_keep=keep).logits[:, :-1].log_softmax(-1)
        kl = (lb.exp() * (lb - ld)).sum(-1)  # per position
        total += float(kl[valid].sum())
        count += int(valid.sum())
    return {"kl": total / count if count else None, "tokens": count, "prompts": len(prompts)}


def other_tasks(cfg, generate) -> dict:
    """System 1 accuracy of base and distilled on ``eval.retention_tasks``; ``generate(weights, desc, fn,
    total)`` runs ``fn(backend)`` on the engine of ``weights`` (base, distilled) and returns its traces."""
    import dataclasses

    from .config import TaskConfig
    from .evaluate import score_traces, summarize, system_run
    from .methods import METHODS
    from .tasks import make_task

    _, params = system_run(cfg, "system1")
    tasks = {name: make_task(TaskConfig(name=name, n_eval=cfg.eval.retention_n, seed=cfg.task.seed,
                                        system_prompt=cfg.task.system_prompt)) for name in cfg.eval.retention_tasks}
    inputs = {name: t.load("eval", cfg.eval.retention_n, cfg.task.seed) for name, t in tasks.items()}
    out = {name: {"n": len(exs)} for name, exs in inputs.items()}
    for weights, key in (("base", "before"), ("distilled", "after")):  # one engine at a time: every task on it
        for name, task in tasks.items():
            exs = inputs[name]
            traces = generate(weights, f"retention {name} ({weights})",
                              lambda b, t=task, e=exs: METHODS.get("direct")(t, e, b, dataclasses.replace(params),
                                                                            cfg.method), len(exs))
            out[name][key] = summarize(score_traces(key, task, exs, traces))["accuracy"]
    for row in out.values():
        row["drop"] = None if row["before"] is None or row["after"] is None else row["before"] - row["after"]
    return out


def summary(part: dict | None, max_drop: float) -> dict | None:
    """The largest drop over the other tasks, and whether it exceeds ``max_drop``."""
    if not part:
        return None
    drops = {k: v["drop"] for k, v in (part.get("other_tasks") or {}).items() if v.get("drop") is not None}
    worst = max(drops, key=drops.get) if drops else None
    return {"worst_task": worst, "worst_drop": drops.get(worst) if worst else None, "max_drop": max_drop,
            "exceeded": bool(worst and drops[worst] > max_drop + 1e-12)}


def verdict_note(part: dict | None, max_drop: float) -> str | None:
    """A sentence for the verdict when the retention drop exceeds ``eval.max_retention_drop``; else None."""
    s = summary(part, max_drop)
    if not s or not s["exceeded"]:
        return None
    row = part["other_tasks"][s["worst_task"]]
    return (f"retention: System 1 accuracy on {s['worst_task']} fell {100 * s['worst_drop']:.1f} points "
            f"({100 * row['before']:.1f}% -> {100 * row['after']:.1f}%, n={row['n']}) > eval.max_retention_drop "
            f"{100 * max_drop:.1f}")


def kl_line(part: dict) -> str:
    """The KL sentence of the retention part."""
    def kl(x):
        return "-" if not isinstance(x, dict) or x.get("kl") is None else f"{x['kl']:.4f} ({x['tokens']} tokens)"

    return ("Retention (what distillation cost elsewhere): mean per-token KL(base || distilled) over the base model's "
            f"greedy continuation: held-out task prompts {kl(part.get('kl_task'))}, general prompts "
            f"{kl(part.get('kl_general'))}" + (f" ({part['kl_unavailable']})" if part.get("kl_unavailable") else "") + ".")


def table(part: dict | None):
    """System 1 on the other tasks, base vs distilled, as a :class:`~s2distill.tables.Table` (None without)."""
    from .tables import Table

    if not part or not part.get("other_tasks"):
        return None

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    return Table(["other task", "n", "System 1 base %", "distilled %", "drop (points)"],
                 [[k, str(v["n"]), pct(v["before"]), pct(v["after"]), pct(v["drop"])]
                  for k, v in part["other_tasks"].items()], align="lrrrr")


def markdown(part: dict | None) -> list[str]:
    if not part:
        return []
    t = table(part)
    return ["", kl_line(part)] + (["", t.markdown()] if t is not None else [])


__all__ = ["GENERAL", "general_prompts", "kl_divergence", "kl_line", "markdown", "other_tasks", "summary", "table",
           "verdict_note"]
