"""Training and in-process generation on one GPU: the project's path against plain TRL.

For random-init models of the real Qwen2.5 0.5B / 1.5B / 7B architectures (built from a config
written here: nothing is downloaded), LoRA r=16 on all linear layers, the same fixed synthetic
prompt-completion rows (~380 tokens each) for both trainers:

* ``s2distill``: :func:`s2distill.train.train_lora` with ``train.dtype=auto``;
* ``trl_bf16``: plain TRL ``SFTTrainer`` on bf16 weights with ``bf16=True``;
* ``s2distill_qlora``: the project's path with ``train.quantization=4bit`` (7B shape);
* the ``transformers`` backend's generation throughput on the GPU vs on the CPU (0.5B shape).

Both trainers run with gradient checkpointing on (TRL's default) unless ``--no-gc``. Reported:
s/step over the timed steps (after ``--warmup`` steps), tokens/s and peak GPU memory
(``torch.cuda.max_memory_allocated``, reset before each run). The JSON is rewritten after every part,
and a failing part is recorded with its error while the next one runs.

    PYTHONPATH=src python3 benchmarks/gpu_train.py [--out DIR] [--only 0.5B,1.5B,7B,qlora,generate]
    PYTHONPATH=src python3 benchmarks/gpu_train.py --smoke --out /tmp/x   # tiny model on the CPU: every code path
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from common import RESULTS, write_result  # noqa: E402

QWEN25 = {  # the published Qwen2.5 configs (hidden size, layers, heads, kv heads, MLP width, tied embeddings)
    "0.5B": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, tie_word_embeddings=True),
    "1.5B": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, tie_word_embeddings=True),
    "7B": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
               intermediate_size=18944, tie_word_embeddings=False),
}
COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
              hidden_act="silu", use_sliding_window=False)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
            tie_word_embeddings=True)
BATCH = {"0.5B": 32, "1.5B": 32, "7B": 16, "tiny": 2}
PARTS = ("0.5B", "1.5B", "7B", "qlora", "generate")
MAX_LENGTH = 512
WORDS = ("apple river stone cloud seven market yellow engine quiet number garden ladder silver window "
         "button forest orange planet candle bridge winter copper pocket thunder").split()


def default_tokenizer() -> str:
    from s2distill.models import resolve_hf_model

    return resolve_hf_model("default")


def synthetic_pairs(n: int, prompt_words: int = 290, answer_words: int = 50) -> list:
    """Fixed rows: a long question and a ~60-token answer, 380 tokens per row with the Qwen2.5 chat template."""
    import random

    from s2distill.types import TrainPair

    rng = random.Random(0)
    out = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        a = " ".join(rng.choice(WORDS) for _ in range(answer_words))
        out.append(TrainPair(example_id=f"row{i}", messages=({"role": "user", "content": f"Count the words: {q}?"},),
                             target=f"The answer is {a}."))
    return out


def build_model(shape: str, tok_dir: str, dest: Path, device: str) -> Path:
    """A random-init model of ``shape`` saved (bf16 on a GPU, fp32 on the CPU) with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tok_dir)
    arch = TINY if shape == "tiny" else QWEN25[shape]
    extra = {"vocab_size": len(tok)} if shape == "tiny" else {}
    cfg = Qwen2Config(**{**COMMON, **arch, **extra}, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):  # initialised on the GPU, directly in bf16: seconds even for 7B
        model = Qwen2ForCausalLM._from_config(cfg, dtype=dtype)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    del model
    _free()
    return dest


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _timing(elapsed: list[float], warmup: int) -> float:
    """Seconds per step over the steps after ``warmup`` (elapsed = wall time at the end of each step)."""
    if len(elapsed) <= warmup:
        raise RuntimeError(f"only {len(elapsed)} steps logged, need more than {warmup} warm-up steps")
    return (elapsed[-1] - elapsed[warmup - 1]) / (len(elapsed) - warmup) if warmup else elapsed[-1] / len(elapsed)


def run_project(model_dir: Path, pairs: list, batch: int, steps: int, warmup: int, gc_on: bool, work: Path,
                quantization: str = "none") -> dict:
    from s2distill.train import TrainConfig, train_lora

    cfg = TrainConfig(max_steps=steps, per_device_batch_size=batch, gradient_accumulation_steps=1,
                      max_length=MAX_LENGTH, lora_r=16, lora_alpha=32, target_modules="all-linear",
                      gradient_checkpointing=gc_on, quantization=quantization, save_steps=10_000, dtype="auto")
    out = work / f"project-{quantization}"
    _reset_peak()
    summary = train_lora(pairs[:batch * steps], str(model_dir), out, cfg, progress=False)
    peak = _peak_gib()
    elapsed = [json.loads(x)["elapsed_s"] for x in (out / "loss.jsonl").read_text().splitlines() if x.strip()]
    shutil.rmtree(out, ignore_errors=True)
    _free()
    return {"s_per_step": _timing(elapsed, warmup), "peak_gib": peak, "dtype": summary["dtype"],
            "device": summary["device"], "truncated_rows": summary["truncated_rows"]}


def run_trl(model_dir: Path, pairs: list, batch: int, steps: int, warmup: int, gc_on: bool, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from s2distill.train import to_prompt_completion

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.t0, self.elapsed = 0.0, []

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t0 = time.time()

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                self.elapsed.append(time.time() - self.t0)

    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(model_dir)
    _reset_peak()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    ckpt = "activation_checkpointing" if "activation_checkpointing" in SFTConfig.__dataclass_fields__ \
        else "gradient_checkpointing"  # renamed in transformers 5.x
    args = SFTConfig(output_dir=str(work / "trl"), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                     max_steps=steps, learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[],
                     bf16=True, max_length=MAX_LENGTH, seed=0, use_cpu=not cuda, disable_tqdm=True,
                     dataloader_num_workers=0, **{ckpt: gc_on})
    timer = Timer()
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(to_prompt_completion(pairs[:batch * steps])),
                         processing_class=tok, callbacks=[timer],
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.train()
    peak = _peak_gib()
    del trainer, model
    shutil.rmtree(work / "trl", ignore_errors=True)
    _free()
    return {"s_per_step": _timing(timer.elapsed, warmup), "peak_gib": peak, "dtype": "bfloat16",
            "device": "cuda" if cuda else "cpu"}


def run_generate(model_dir: Path, device: str, n_prompts: int, max_tokens: int) -> dict:
    from s2distill.backends.transformers import TransformersBackend
    from s2distill.types import GenRequest, SamplingParams

    b = TransformersBackend(model=str(model_dir), device=device, dtype="auto", batch_size=n_prompts)
    reqs = [GenRequest(({"role": "user", "content": f"Tell me about {w} number {i}."},),
                       SamplingParams(max_tokens=max_tokens, temperature=0.0)) for i, w in enumerate(WORDS[:n_prompts])]
    list(b.iter_generate(reqs[:1]))  # warm-up
    t0 = time.time()
    comps = [c for _, _, c in b.iter_generate(reqs)]
    wall = time.time() - t0
    tokens = sum(c.completion_tokens for c in comps)
    out = {"device": b.device, "dtype": b.dtype, "prompts": n_prompts, "tokens": tokens, "wall_s": round(wall, 3),
           "tokens_per_s": round(tokens / wall, 1)}
    b.close()
    _free()
    return out


def avg_row_tokens(tok_dir: str, pairs: list) -> float:
    from transformers import AutoTokenizer

    from s2distill.train import to_prompt_completion
    from s2distill.train.rows import tokenize_row

    tok = AutoTokenizer.from_pretrained(tok_dir)
    rows = to_prompt_completion(pairs[:16])
    return sum(min(MAX_LENGTH, len(tokenize_row(tok, r)[0])) for r in rows) / len(rows)


def markdown(res: dict) -> str:
    lines = [f"# GPU training: s2distill vs plain TRL ({res.get('gpu') or 'no GPU'})", "",
             f"LoRA r=16 all-linear, random-init Qwen2.5 shapes, {res['row_tokens']:.0f} tokens/row, "
             f"{res['steps']} steps ({res['warmup']} warm-up), gradient checkpointing "
             f"{'on' if res['gradient_checkpointing'] else 'off'} for both trainers.", "",
             "| shape | batch | mode | s/step | tokens/s | peak GiB | note |", "|---|---:|---|---:|---:|---:|---|"]
    for r in res["rows"]:
        f = (lambda k, fmt: "-" if r.get(k) is None else format(r[k], fmt))
        lines.append(f"| {r['shape']} | {r.get('batch', '-')} | {r['mode']} | {f('s_per_step', '.3f')} | "
                     f"{f('tokens_per_s', '.0f')} | {f('peak_gib', '.1f')} | {r.get('error') or r.get('note') or ''} |")
    lines += ["", f"ratio_vs_trl_bf16 (s/step at {'7B' if not res['smoke'] else 'tiny'}, s2distill / TRL): "
              f"{res.get('ratio_vs_trl_bf16')}; by shape: {res.get('ratio_vs_trl_bf16_by_shape')}",
              f"peak_gib_7b_lora: {res.get('peak_gib_7b_lora')}, peak_gib_7b_qlora: {res.get('peak_gib_7b_qlora')}"]
    if res.get("generate"):
        lines += ["", "| generation (transformers backend) | device | dtype | tokens | s | tokens/s |",
                  "|---|---|---|---:|---:|---:|"]
        for g in res["generate"]:
            lines.append(f"| {g.get('shape')} | {g.get('device')} | {g.get('dtype', '-')} | {g.get('tokens', '-')} | "
                         f"{g.get('wall_s', '-')} | {g.get('tokens_per_s', '-')} {g.get('error') or ''}|")
    if res.get("notes"):
        lines += [""] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines)


def _summarise(res: dict) -> None:
    reps: dict = {}
    for r in res["rows"]:
        if r.get("s_per_step"):
            reps.setdefault((r["shape"], r["mode"]), []).append(r)
    # repeated runs of one (shape, mode): their mean s/step, their highest peak
    by = {k: {"s_per_step": sum(x["s_per_step"] for x in v) / len(v),
              "peak_gib": max((x["peak_gib"] for x in v if x.get("peak_gib") is not None), default=None)}
          for k, v in reps.items()}
    big = "7B" if not res["smoke"] else "tiny"
    p, t, q = by.get((big, "s2distill")), by.get((big, "trl_bf16")), by.get((big, "s2distill_qlora"))
    res["ratio_vs_trl_bf16"] = round(p["s_per_step"] / t["s_per_step"], 3) if p and t else None
    res["ratio_vs_trl_bf16_by_shape"] = {
        s: round(by[(s, "s2distill")]["s_per_step"] / by[(s, "trl_bf16")]["s_per_step"], 3)
        for s in ("tiny", "0.5B", "1.5B", "7B") if (s, "s2distill") in by and (s, "trl_bf16") in by}
    res["peak_gib_7b_lora"] = p["peak_gib"] if p else None
    res["peak_gib_7b_qlora"] = q["peak_gib"] if q else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny random model, a few steps, on the CPU: every code path")
    ap.add_argument("--out", help="also write gpu_train.json/.md here (the device returns files from $OUT only)")
    ap.add_argument("--only", help=f"comma-separated parts to run, of {','.join(PARTS)} (the others' rows are kept "
                                   "from an earlier result file)")
    ap.add_argument("--tokenizer", help="HF directory with the tokenizer (default: the embedded model's)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-gc", action="store_true", help="gradient checkpointing off for both trainers")
    ap.add_argument("--repeat", type=int, default=1, help="run each shape's trainer pair this many times, the order "
                    "alternating (TRL first on odd repeats), so warm-up and order effects show; s/step is the mean")
    args = ap.parse_args(argv)

    import torch

    from s2distill.errors import S2DistillError

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("no CUDA GPU visible to torch: nothing to measure here (run with --smoke for the CPU code-path check)")
        return 0
    parts = PARTS if not args.only else tuple(p.strip() for p in args.only.split(","))
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"unknown part(s) {bad}; known: {', '.join(PARTS)}")
    results_dir = Path(args.out) if args.smoke and args.out else (Path(tempfile.mkdtemp()) if args.smoke else RESULTS)
    also = Path(args.out) if args.out and results_dir != Path(args.out) else None
    prev_path = next((d / "gpu_train.json" for d in (also, results_dir) if d and (d / "gpu_train.json").is_file()), None)
    prev = json.loads(prev_path.read_text()) if prev_path and args.only else {}
    tok_dir = args.tokenizer or default_tokenizer()
    device = "cuda" if cuda else "cpu"
    steps, warmup = (3, 1) if args.smoke else (args.steps, args.warmup)
    gc_on = not args.no_gc
    if args.smoke:  # short rows, one thread: a code-path check that stays quick on a busy CPU
        torch.set_num_threads(1)
    pairs = synthetic_pairs(max(BATCH.values()) * steps, *((20, 5) if args.smoke else ()))
    row_tokens = avg_row_tokens(tok_dir, pairs)
    keep = lambda r: r.get("part") not in parts  # noqa: E731
    res = {"smoke": args.smoke, "gpu": torch.cuda.get_device_name(0) if cuda else None, "steps": steps,
           "warmup": warmup, "gradient_checkpointing": gc_on, "row_tokens": round(row_tokens, 1), "lora_r": 16,
           "rows": [r for r in prev.get("rows", []) if keep(r)],
           "generate": [g for g in prev.get("generate", []) if g.get("part") not in parts], "notes": []}
    versions = {}
    for pkg in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "liger_kernel", "flash_attn"):
        try:
            from importlib import metadata

            versions[pkg] = metadata.version(pkg.replace("_", "-"))
        except Exception:  # noqa: BLE001
            versions[pkg] = None
    res["versions"] = versions
    if versions["liger_kernel"] is None:
        res["notes"].append("liger-kernel not installed: use_liger_kernel stays off (no fused-loss rows)")
    if versions["flash_attn"] is None:
        res["notes"].append("flash-attn not installed: sdpa attention only (no flash-attention / padding-free rows)")

    def save() -> None:
        _summarise(res)
        write_result("gpu_train", res, markdown(res), results=results_dir, also=also)

    shm = Path("/dev/shm")  # model files in memory: a 15 GiB 7B is written and read back in seconds
    use_shm = not args.smoke and shm.is_dir() and shutil.disk_usage(shm).free > 40 * 2**30
    work = Path(tempfile.mkdtemp(prefix="gpu_train_", dir=shm if use_shm else None))
    # 7B before 1.5B: its ratio and peaks are the numbers the issue asks for, should time run short
    shapes = ["tiny"] if args.smoke else [s for s in ("0.5B", "7B", "1.5B") if s in parts or (s == "7B" and "qlora" in parts)
                                          or (s == "0.5B" and "generate" in parts)]
    try:
        for shape in shapes:
            part = shape if not args.smoke else "tiny"
            t0 = time.time()
            try:
                model_dir = build_model(shape, tok_dir, work / shape, device)
            except Exception as e:  # noqa: BLE001
                res["rows"].append({"part": part, "shape": shape, "mode": "build", "error": f"{type(e).__name__}: {e}"})
                save()
                continue
            print(f"[{shape}] model built and saved in {time.time() - t0:.1f}s", flush=True)
            batch = BATCH[shape]
            modes = []
            if args.smoke or shape in parts:
                pair = [("s2distill", lambda: run_project(model_dir, pairs, batch, steps, warmup, gc_on, work)),
                        ("trl_bf16", lambda: run_trl(model_dir, pairs, batch, steps, warmup, gc_on, work))]
                for rep in range(max(1, args.repeat)):
                    modes += pair if rep % 2 == 0 else pair[::-1]
            if args.smoke or (shape == "7B" and "qlora" in parts):
                modes.append(("s2distill_qlora", lambda: run_project(model_dir, pairs, batch, steps, warmup, True,
                                                                     work, quantization="4bit")))
            for mode, fn in modes:
                row = {"part": "qlora" if mode.endswith("qlora") and not args.smoke else part, "shape": shape,
                       "mode": mode, "batch": batch}
                t1 = time.time()
                try:
                    r = fn()
                    row.update(r, s_per_step=round(r["s_per_step"], 4),
                               tokens_per_s=round(batch * row_tokens / r["s_per_step"], 1))
                except Exception as e:  # noqa: BLE001 - recorded, the next part still runs
                    row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                    if not isinstance(e, S2DistillError):  # the toolkit's own errors say it all in one line
                        traceback.print_exc()
                    _free()
                row["wall_s"] = round(time.time() - t1, 1)
                res["rows"].append(row)
                print(f"[{shape}] {mode}: {row.get('s_per_step', '-')} s/step, peak {row.get('peak_gib', '-')} GiB "
                      f"{row.get('error', '')}", flush=True)
                save()
            if (args.smoke and shape == "tiny") or (shape == "0.5B" and "generate" in parts):
                for dev in (["cuda", "cpu"] if cuda else ["cpu"]):
                    g = {"part": "generate" if not args.smoke else part, "shape": shape, "device": dev}
                    try:
                        g.update(run_generate(model_dir, dev, n_prompts=8 if not args.smoke else 2,
                                              max_tokens=64 if not args.smoke else 8))
                    except Exception as e:  # noqa: BLE001
                        g["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                    res["generate"].append(g)
                    print(f"[{shape}] generate on {dev}: {g.get('tokens_per_s', '-')} tokens/s {g.get('error', '')}",
                          flush=True)
                    save()
                if not cuda:
                    res["notes"].append("generation on the GPU not measured: no CUDA device")
            shutil.rmtree(model_dir, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    save()
    print(markdown(res))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
