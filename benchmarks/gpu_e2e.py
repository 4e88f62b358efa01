"""One whole ``s2distill run`` on a GPU with the transformers backend, killed with ``kill -9`` in
training and resumed: every GPU code path of the pipeline executes once.

A random-init model of the Qwen2.5-0.5B shape (bf16 on the GPU; a tiny one on the CPU with
``--smoke``) with the real Qwen2.5 tokenizer answers unlabeled questions from a JSONL file written
here. Its answers are noise, so the run uses the ``exact`` answer format (the first line is the
answer) and no curation filter (``curate.name=none``): what is measured is that sampling, curation,
bf16 LoRA training with checkpoints, the kill and the resume, and the distilled evaluation run on
CUDA, and how long each stage takes, not accuracy.

    PYTHONPATH=src python3 benchmarks/gpu_e2e.py --tokenizer DIR --out $OUT      # on the GPU machine
    PYTHONPATH=src python3 benchmarks/gpu_e2e.py --smoke --out /tmp/e2e            # the CPU rehearsal

Writes ``gpu_e2e.json`` (and ``.md``) to ``benchmarks/results`` (``--out`` too): stage times of
both invocations, the step the resumed training started from, the logged steps (each once) and
the report's system rows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
from common import RESULTS, write_result  # noqa: E402
from gpu_train import build_model, default_tokenizer  # noqa: E402

SRC = HERE.parent / "src"


def write_data(path: Path, n: int) -> None:
    """Word problems with their answers (the run reads only ``question``; ``answer`` is gold for eval)."""
    rows = [{"id": f"q{i}", "question": f"Tom has {i % 17 + 2} apples and buys {i % 5 + 3} more. How many apples now?",
             "answer": str(i % 17 + 2 + i % 5 + 3)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def config(model_dir: Path, data: Path, smoke: bool) -> str:
    n_train, n_eval = (24, 8) if smoke else (160, 40)
    return f"""name: gpu_e2e
seed: 0
model: {model_dir}
backend:
  name: transformers
  device: auto            # cuda where torch sees a GPU
  dtype: auto             # bf16 on a bf16 GPU
  batch_size: 64
task:
  name: dataset
  n_train: {n_train}
  n_eval: {n_eval}
  options:
    path: {data}
    question_field: question
    answer_field: answer
    id_field: id
    answer_format: exact
    eval_fraction: {n_eval / (n_train + n_eval):.3f}
method:
  name: cot
  n: 4
  temperature: 0.7
  max_tokens: {8 if smoke else 48}
  few_shot: 0
curate:
  name: none
train:
  method: lora
  dtype: auto
  gradient_checkpointing: true
  per_device_batch_size: {2 if smoke else 8}
  gradient_accumulation_steps: 1
  max_steps: {12 if smoke else 200}
  save_steps: {3 if smoke else 20}
  max_length: 256
eval:
  systems: [system1, system2, system2_maj, distilled]
  k: 4
  max_tokens_system1: 8
"""


def _complete_steps(run: Path) -> list[int]:
    return sorted(int(p.parent.name.split("-")[1])
                  for p in (run / "model" / "checkpoints").glob("checkpoint-*/s2distill_complete"))


def _cmd(cfg: Path, run: Path) -> list[str]:
    return [sys.executable, "-m", "s2distill.cli", "run", str(cfg), "--run-dir", str(run), "--no-progress"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny random model on the CPU: the code paths, quickly")
    ap.add_argument("--out", help="also write gpu_e2e.json/.md here")
    ap.add_argument("--tokenizer", help="HF directory with the Qwen2.5 tokenizer (default: the embedded model's)")
    ap.add_argument("--work", help="working directory (default: a temporary one, removed at the end)")
    args = ap.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("no CUDA GPU visible to torch: nothing to measure here (run with --smoke for the CPU rehearsal)")
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_e2e_"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"smoke": args.smoke, "gpu": torch.cuda.get_device_name(0) if cuda else None,
                 "torch": torch.__version__, "cuda": torch.version.cuda}
    results_dir = Path(args.out) if args.smoke and args.out else (work if args.smoke else RESULTS)
    also = Path(args.out) if args.out and results_dir != Path(args.out) else None

    def save() -> None:
        write_result("gpu_e2e", res, markdown(res), results=results_dir, also=also)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        t0 = time.time()
        shape = "tiny" if args.smoke else "0.5B"
        model_dir = build_model(shape, args.tokenizer or default_tokenizer(), work / "model", "cuda" if cuda else "cpu")
        res["model"] = {"shape": shape, "build_s": round(time.time() - t0, 1)}
        data = work / "questions.jsonl"
        write_data(data, 200)
        cfg = work / "gpu_e2e.yaml"
        cfg.write_text(config(model_dir, data, args.smoke))
        run = work / "run"
        log1 = open(work / "first.log", "w")  # noqa: SIM115
        t1 = time.time()
        proc = subprocess.Popen(_cmd(cfg, run), stdout=log1, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        killed_after = None
        while proc.poll() is None:
            done = _complete_steps(run)
            if done:  # a complete checkpoint exists: kill the whole process group, as a crash would
                killed_after = max(done)
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait()
        log1.close()
        res["first"] = {"wall_s": round(time.time() - t1, 1), "returncode": proc.returncode,
                        "killed_after_checkpoint": killed_after, "stages": _stage_times(run),
                        "log_tail": (work / "first.log").read_text()[-1500:]}
        save()
        if killed_after is None:
            raise SystemExit(f"the run ended (rc {proc.returncode}) before a checkpoint could be killed:\n"
                             + res["first"]["log_tail"])
        t2 = time.time()
        second = subprocess.run(_cmd(cfg, run), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        summary = json.loads((run / "model" / "train_summary.json").read_text()) \
            if (run / "model" / "train_summary.json").is_file() else {}
        steps = [json.loads(x)["step"] for x in (run / "model" / "loss.jsonl").read_text().splitlines() if x.strip()] \
            if (run / "model" / "loss.jsonl").is_file() else []
        report = json.loads((run / "report.json").read_text()) if (run / "report.json").is_file() else {}
        res["resume"] = {"wall_s": round(time.time() - t2, 1), "returncode": second.returncode,
                         "stages": _stage_times(run), "resumed_from_step": summary.get("resumed_from_step"),
                         "steps": summary.get("steps"), "examples_seen": summary.get("examples_seen"),
                         "train_device": summary.get("device"), "train_dtype": summary.get("dtype"),
                         "logged_steps_unique_and_contiguous": bool(steps) and steps == list(range(1, max(steps) + 1)),
                         "log_tail": second.stdout[-1500:]}
        res["systems"] = [{"system": r.get("role"), "n": r.get("n"), "mean_generated_tokens":
                           round(r.get("mean_generated_tokens") or 0, 1), "wall_s_per_answer": r.get("wall_s_per_answer")}
                          for r in report.get("rows", [])]
        res["ok"] = (second.returncode == 0 and res["resume"]["resumed_from_step"] == killed_after
                     and res["resume"]["logged_steps_unique_and_contiguous"] and bool(res["systems"]))
        save()
        print(markdown(res))
        return 0 if res["ok"] else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def _stage_times(run: Path) -> dict:
    """Seconds of each finished stage, as the run's ``manifest.json`` records them."""
    p = run / "manifest.json"
    if not p.is_file():
        return {}
    try:
        return {k: v.get("wall_s") for k, v in json.loads(p.read_text()).get("stages", {}).items()}
    except json.JSONDecodeError:
        return {}


def markdown(res: dict) -> str:
    lines = [f"# One pipeline end to end on {res.get('gpu') or 'the CPU (smoke)'}: kill -9 in training, then resume", "",
             f"torch {res.get('torch')}, CUDA {res.get('cuda')}; model: random-init {res.get('model', {}).get('shape')} "
             "Qwen2.5 shape with the real tokenizer (answers are noise: code paths and times, not accuracy).", ""]
    for part in ("first", "resume"):
        p = res.get(part)
        if not p:
            continue
        extra = (f", killed after checkpoint step {p.get('killed_after_checkpoint')}" if part == "first"
                 else f", resumed from step {p.get('resumed_from_step')} of {p.get('steps')}, "
                      f"logged steps each once: {p.get('logged_steps_unique_and_contiguous')}, "
                      f"trained on {p.get('train_device')} in {p.get('train_dtype')}")
        lines.append(f"- {part}: {p.get('wall_s')} s, exit {p.get('returncode')}{extra}")
        if p.get("stages"):
            lines.append("  stages (s): " + ", ".join(f"{k} {v}" for k, v in p["stages"].items()))
    if res.get("systems"):
        lines += ["", "| system | n | mean generated tokens | s per answer |", "|---|---:|---:|---:|"]
        lines += [f"| {s['system']} | {s['n']} | {s['mean_generated_tokens']} | {s['wall_s_per_answer']} |"
                  for s in res["systems"]]
    lines += ["", f"ok: {res.get('ok')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
