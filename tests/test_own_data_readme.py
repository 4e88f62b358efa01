"""The README's "Your own data" commands, run as written, on the fake backend (fast; the real-model
walkthrough is benchmarks/own_data.py). Only the file name is replaced and the engine swapped."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["backend.name=fake", "train.enabled=false", "eval.systems=[system1,system2,system2_maj]"]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Your own data", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("s2distill ")]


def cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "s2distill.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_readme_own_data_run_and_report_commands_on_fake_backend(tmp_path):
    run_cmd, eval_cmd, report_cmd = readme_commands()
    assert run_cmd.startswith("s2distill run configs/own_data.yaml") and "--data" in eval_cmd
    mine = tmp_path / "my_questions.jsonl"  # a user's file: their own field name, no answers
    mine.write_text("".join(json.dumps({"text": f"A box has {i} pens and gets {i + 3} more. How many pens now?"}) + "\n"
                            for i in range(30)))
    args = shlex.split(run_cmd)[1:]
    args = [a.replace("my_questions.jsonl", str(mine)) for a in args]
    res = cli([*args, *FAST, "task.n_train=12", "task.n_eval=5", "--run-dir", str(tmp_path / "own_data"),
               "--no-progress"])
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "own_data"
    train = [json.loads(line) for line in open(run / "data" / "train.jsonl")]
    assert len(train) == 12 and all(t["gold"] is None for t in train)
    assert train[0]["question"].startswith("A box has ")
    first = json.loads(open(run / "traces" / "train.jsonl").readline())
    msgs = first["samples"][0]["calls"][0]["messages"]
    assert len(msgs) == 7 and msgs[0]["content"].startswith("A bakery has 14 trays")  # 3 worked exemplars + question
    assert 'finish with "The answer is <number>."' in msgs[-1]["content"]
    pairs = [json.loads(line) for line in open(run / "curate" / "pairs.jsonl")]
    assert len(pairs) == 12 and pairs[0]["target"] == "42"  # the fake model always says 42
    report = cli(shlex.split(report_cmd.replace("runs/own_data", str(run)))[1:])
    assert report.returncode == 0 and "| system1 | 5 |" in report.stdout and "cot_maj@4" in report.stdout, report.stderr
    # `s2distill eval RUN --data FILE`: new inputs in the user's own format (field 'text'), mapped like the run's
    more = tmp_path / "more_questions.jsonl"
    more.write_text("".join(json.dumps({"text": f"A shelf holds {i} cups and {i + 1} plates. How many items?"}) + "\n"
                            for i in range(4)))
    eargs = [a.replace("runs/own_data", str(run)).replace("more_questions.jsonl", str(more))
             for a in shlex.split(eval_cmd)[1:]]
    ev = cli([*eargs, "--no-progress"])
    assert ev.returncode == 0, ev.stderr[-3000:]
    (out,) = (run / "evals").iterdir()
    evald = [json.loads(line) for line in open(out / "eval" / "system1.jsonl")]
    assert len(evald) == 4 and all(r["gold"] is None for r in evald)
    assert "| system1 | 4 |" in ev.stdout
