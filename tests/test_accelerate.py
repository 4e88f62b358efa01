"""Distributed fine-tuning through ``accelerate launch``: config and argv building (pure), the
train-stage fingerprint, and real 2-process CPU (gloo DDP) runs on a tiny Qwen2 (no download)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from s2distill.config import load_config
from s2distill.errors import ConfigError, ModelError
from s2distill.train.launch import (LaunchOptions, accelerate_config, launch_argv, launch_env, options_from_section,
                              run_launch, worker_args, write_accelerate_config)
from s2distill.types import TrainPair, stable_hash

W = worker_args(Path("run/curate/pairs.jsonl"), "Qwen/x", Path("run/model"), Path("run/model/train_config.json"),
                progress=False)


# -- pure: config and argv ----------------------------------------------------------------------------------------
def test_ddp_on_cpu_goes_through_torchrun(tmp_path: Path) -> None:
    cfg = accelerate_config(LaunchOptions(cpu=True, num_processes=2), gpus=8)
    assert cfg["distributed_type"] == "MULTI_CPU" and cfg["use_cpu"] is True and cfg["num_processes"] == 2
    assert cfg["num_machines"] == 1 and cfg["main_process_port"] == 0  # 0: accelerate picks a free port
    f = write_accelerate_config(cfg, tmp_path / "acc.yaml")
    assert yaml.safe_load(f.read_text()) == cfg
    argv = launch_argv(f, W, cfg, python="py")
    # accelerate's --cpu launcher starts one process; its torchrun launcher starts num_processes
    assert argv[:6] == ["py", "-m", "accelerate.commands.launch", "--config_file", str(f), "--multi_gpu"]
    assert "--cpu" not in argv
    assert argv[6:9] == ["-m", "s2distill.train.worker", "--pairs"]
    assert argv[-1] == "--no-progress" and argv[argv.index("--base") + 1] == "Qwen/x"
    env = launch_env(cfg, base={"PYTHONPATH": "/x"})
    assert env["ACCELERATE_USE_CPU"] == "true" and int(env["OMP_NUM_THREADS"]) >= 1
    src = str(Path(__file__).resolve().parents[1] / "src")
    assert env["PYTHONPATH"].split(os.pathsep) == [src, "/x"] and env["PYTHONUNBUFFERED"] == "1"


def test_ddp_on_gpus_and_cpu_fallback() -> None:
    cfg = accelerate_config(LaunchOptions(), gpus=4)
    assert (cfg["distributed_type"], cfg["num_processes"], cfg["use_cpu"], cfg["gpu_ids"]) == ("MULTI_GPU", 4, False, "all")
    assert "--multi_gpu" not in launch_argv(Path("c.yaml"), W, cfg)  # the config says MULTI_GPU itself
    assert "ACCELERATE_USE_CPU" not in launch_env(cfg, base={})
    assert accelerate_config(LaunchOptions(num_processes=1), gpus=4)["distributed_type"] == "NO"
    cpu = accelerate_config(LaunchOptions(), gpus=0)  # no GPU visible: CPU processes
    assert (cpu["distributed_type"], cpu["num_processes"], cpu["use_cpu"]) == ("MULTI_CPU", 2, True)
    assert accelerate_config(LaunchOptions(distributed_type="MULTI_GPU", num_processes=2), gpus=2)["distributed_type"] \
        == "MULTI_GPU"  # accelerate's own names work too
    with pytest.raises(ConfigError, match="3 processes per machine but 2 visible GPU.*num_processes=2"):
        accelerate_config(LaunchOptions(num_processes=3), gpus=2)


def test_fsdp_config() -> None:
    cfg = accelerate_config(LaunchOptions(distributed_type="fsdp", num_processes=8, mixed_precision="bf16",
                                          offload=True), gpus=8)
    assert cfg["distributed_type"] == "FSDP" and cfg["mixed_precision"] == "bf16" and cfg["num_processes"] == 8
    fsdp = cfg["fsdp_config"]
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # rank 0 can write an ordinary adapter / model
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_offload_params"] is True
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert "--multi_gpu" not in launch_argv(Path("c.yaml"), W, cfg) and "deepspeed_config" not in cfg


def test_deepspeed_config() -> None:
    cfg = accelerate_config(LaunchOptions(distributed_type="deepspeed", zero_stage=3, num_processes=2), gpus=2)
    ds = cfg["deepspeed_config"]
    assert cfg["distributed_type"] == "DEEPSPEED" and ds["zero_stage"] == 3 and ds["zero3_save_16bit_model"] is True
    assert ds["offload_optimizer_device"] == ds["offload_param_device"] == "none"
    off = accelerate_config(LaunchOptions(distributed_type="deepspeed", offload=True), gpus=1)["deepspeed_config"]
    assert off["zero_stage"] == 2 and off["offload_optimizer_device"] == "cpu"


def test_multi_machine_config() -> None:
    opts = LaunchOptions(num_processes=16, num_machines=2, machine_rank=1, main_process_ip="10.0.0.1",
                         main_process_port=29501)
    cfg = accelerate_config(opts, gpus=8)
    assert (cfg["num_processes"], cfg["num_machines"], cfg["machine_rank"]) == (16, 2, 1)
    assert (cfg["main_process_ip"], cfg["main_process_port"]) == ("10.0.0.1", 29501)
    with pytest.raises(ConfigError, match="main_process_ip and main_process_port"):
        LaunchOptions(num_machines=2)
    with pytest.raises(ConfigError, match="divide evenly"):
        LaunchOptions(num_processes=3, num_machines=2, main_process_ip="h", main_process_port=1)


def test_option_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown distributed_type 'dpp'; did you mean 'ddp'"):
        LaunchOptions(distributed_type="dpp")
    with pytest.raises(ConfigError, match="fsdp on GPUs only; fix"):
        LaunchOptions(distributed_type="fsdp", cpu=True)
    with pytest.raises(ConfigError, match="needs GPUs and none is visible; fix"):
        accelerate_config(LaunchOptions(distributed_type="deepspeed"), gpus=0)
    with pytest.raises(ConfigError, match="unknown accelerate option 'num_machine'; did you mean 'num_machines'"):
        LaunchOptions.from_dict({"num_machine": 2})
    with pytest.raises(ConfigError, match="mixed_precision 'bf61'; did you mean 'bf16'"):
        LaunchOptions(mixed_precision="bf61")
    with pytest.raises(ConfigError, match="accelerate config file not found"):
        LaunchOptions(config_file=str(tmp_path / "nope.yaml"))


def test_user_config_file_is_used_as_is(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    text = "distributed_type: MULTI_GPU\nnum_processes: 4\nmy_comment_key: kept\n"
    mine.write_text(text)
    content = yaml.safe_load(mine.read_text())
    argv = launch_argv(mine, W, content, python="py")
    assert argv[3:5] == ["--config_file", str(mine)] and "--multi_gpu" not in argv
    assert mine.read_text() == text


def test_config_section_validation() -> None:
    with pytest.raises(ConfigError, match="unknown train.launcher.name 'acelerate'; did you mean 'accelerate'"):
        load_config(data={"train": {"launcher": "acelerate"}})
    with pytest.raises(ConfigError, match="did you mean 'main_process_port'"):
        load_config(data={"train": {"launcher": {"name": "accelerate", "main_proces_port": 1}}})
    with pytest.raises(ConfigError, match="unknown distributed_type 'fdsp'"):
        load_config(data={"train": {"launcher": {"name": "accelerate", "distributed_type": "fdsp"}}})
    cfg = load_config(data={"train": {"launcher": {"name": "accelerate", "num_processes": 2, "cpu": True,
                                                   "mixed_precision": "bf16", "main_process_port": 29555}}})
    opts = options_from_section(cfg.train)
    assert (opts.num_processes, opts.cpu, opts.mixed_precision, opts.main_process_port) == (2, True, "bf16", 29555)
    # the flat keys and the nested accelerate mapping of older configs: the same section, with a FutureWarning
    with pytest.warns(FutureWarning, match="train.accelerate.mixed_precision -> train.launcher.mixed_precision"):
        old = load_config(data={"train": {"launcher": "accelerate", "num_processes": 2, "cpu": True,
                                          "accelerate": {"mixed_precision": "bf16", "main_process_port": 29555}}})
    assert old.train.launcher == cfg.train.launcher
    # overrides: the shorthand name keeps the section's other keys; a key under a shorthand name
    c = load_config(data={"train": {"launcher": {"num_processes": 3}}}, overrides=["train.launcher=accelerate"])
    assert (c.train.launcher.name, c.train.launcher.num_processes) == ("accelerate", 3)
    c = load_config(data={"train": {"launcher": "accelerate"}}, overrides=["train.launcher.num_processes=4"])
    assert (c.train.launcher.name, c.train.launcher.num_processes) == ("accelerate", 4)


def test_local_fingerprint_unchanged(tmp_path: Path) -> None:
    """Configs from before the accelerate options keep their train fingerprint (no retraining after upgrade)."""
    from s2distill.pipeline import Pipeline

    old_keys = ["enabled", "base_model", "method", "lora_r", "lora_alpha", "lora_dropout", "target_modules",
                "learning_rate", "epochs", "max_steps", "per_device_batch_size", "gradient_accumulation_steps",
                "max_length", "gradient_checkpointing", "threads", "launcher"]  # save_merged: left out when False

    def fp(**train) -> str:
        cfg = load_config(data={"name": "fp", "backend": {"name": "fake"}, "train": train})
        p = Pipeline(cfg, run_dir=tmp_path / "run", progress=False, log=lambda s: None)
        p.fp["curate"] = "c"
        p.rd.stage_done = lambda name, f: True  # type: ignore[method-assign]  # only the fingerprint is wanted
        p.stage_train()
        return p.fp["train"]

    cfg = load_config(data={"name": "fp", "backend": {"name": "fake"}})
    t = {**dataclasses.asdict(cfg.train), **dataclasses.asdict(cfg.train.fit), "launcher": cfg.train.launcher.name}
    old = stable_hash({"curate": "c", "train": {k: t[k] for k in old_keys}, "model": cfg.model, "seed": cfg.seed,
                       "backend": "fake"})
    assert fp() == old
    local = {"launcher": {"num_processes": 4, "cpu": True}}
    assert fp(**local) == old  # launcher local: accelerate options change nothing
    assert fp(launcher="accelerate") != old
    assert fp(launcher={"name": "accelerate", "num_processes": 4}) != fp(launcher={"name": "accelerate",
                                                                                    "num_processes": 2})
    with pytest.warns(FutureWarning, match="train.num_processes -> train.launcher.num_processes"):
        assert fp(num_processes=4, cpu=True) == old  # the flat keys of older configs, read with a warning


def test_cli_train_parses_and_needs_a_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from s2distill.cli import build_parser, main

    a = build_parser().parse_args(["train", "runs/x", "train.max_steps=5", "--num-processes", "2", "--cpu"])
    assert (a.run_dir, a.num_processes, a.cpu, a.launcher, a.overrides) == ("runs/x", 2, True, None, ["train.max_steps=5"])
    assert main(["train", str(tmp_path)]) == 2
    assert "config.yaml not found; fix" in capsys.readouterr().err


def test_failed_launch_shows_fix_and_tail(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(60): print('line', i)\nprint('error: bad thing happened')\nsys.exit(3)"
    with pytest.raises(ModelError) as ei:
        run_launch([sys.executable, "-c", script], tmp_path / "x.log")
    msg = str(ei.value)
    assert "accelerate launch failed (exit 3); the worker said: bad thing happened" in msg
    assert "fix: " in msg and str(tmp_path / "x.log") in msg
    assert "line 59" in msg and "line 10\n" not in msg  # the tail, not the whole log
    assert "line 0\n" in (tmp_path / "x.log").read_text()  # the whole log is kept
    with pytest.raises(ModelError, match="fix: lower train.per_device_batch_size"):
        run_launch([sys.executable, "-c", "print('CUDA out of memory'); raise SystemExit(1)"], tmp_path / "y.log")
    crash = "print('[rank1]: Traceback...'); print('[rank1]: KeyError: boom'); raise SystemExit(1)"
    with pytest.raises(ModelError, match=r"the worker said: KeyError: boom; fix: read the log"):
        run_launch([sys.executable, "-c", crash], tmp_path / "z.log")


# -- real: two CPU processes over gloo ----------------------------------------------------------------------------
def _pairs() -> list[TrainPair]:
    qs = [("What is 2 + 3?", "5"), ("What is 7 - 4?", "3"), ("What is 6 * 2?", "12"), ("What is 9 + 9?", "18")]
    return [TrainPair(example_id=str(i), messages=({"role": "user", "content": q},), target=f"The answer is {a}.")
            for i, (q, a) in enumerate(qs)]


def _run_dir(root: Path, base: Path) -> Path:
    from s2distill.rundir import RunDir, write_jsonl

    cfg = load_config(data={"name": "acc", "backend": {"name": "fake"},
                            "train": {"base_model": str(base), "max_steps": 3, "per_device_batch_size": 2,
                                      "gradient_accumulation_steps": 1, "learning_rate": 1e-3, "lora_r": 4,
                                      "lora_alpha": 8, "threads": 1}})
    rd = RunDir(root)
    (root / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_jsonl(root / "curate" / "pairs.jsonl", _pairs())
    rd.mark_done("curate", "curate-fp", ["curate/pairs.jsonl"], 0.0)
    return root


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.slow
def test_cli_train_two_cpu_ranks(tiny_base: Path, tmp_path: Path) -> None:
    """``s2distill train RUN --cpu --num-processes 2``: two gloo ranks train, rank 0 alone writes the model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from s2distill.cli import main

    rd = _run_dir(tmp_path / "run", tiny_base)
    pairs_sha = _sha(rd / "curate" / "pairs.jsonl")
    assert main(["train", str(rd), "--cpu", "--num-processes", "2", "--no-progress"]) == 0
    model = rd / "model"

    ranks = [json.loads((model / "ranks" / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert sorted(p.name for p in (model / "ranks").iterdir()) == ["rank0.json", "rank1.json"]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert len({r["pid"] for r in ranks} | {os.getpid()}) == 3  # two worker processes, neither is the driver
    assert all(r["steps"] == 3 and r["examples_seen"] == 3 * 2 and r["device"].startswith("cpu") for r in ranks)
    assert len(set(ranks[0]["distinct_rows"]) | set(ranks[1]["distinct_rows"])) == 4  # the ranks share out the data
    assert [r["writes_model"] for r in ranks] == [True, False]

    summary = json.loads((model / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3 and summary["examples_seen"] == 12
    assert [r["rank"] for r in summary["ranks"]] == [0, 1]
    losses = [json.loads(x) for x in (model / "loss.jsonl").read_text().splitlines()]
    assert [x["step"] for x in losses] == [1, 2, 3]  # one writer: no line twice
    assert sorted(p.name for p in model.iterdir()) == ["accelerate.log", "accelerate_config.yaml", "adapter",
                                                       "loss.jsonl", "ranks", "train_config.json",
                                                       "train_summary.json"]
    assert yaml.safe_load((model / "accelerate_config.yaml").read_text())["distributed_type"] == "MULTI_CPU"
    manifest = json.loads((rd / "manifest.json").read_text())
    assert manifest["stages"]["train"]["summary"]["world_size"] == 2
    assert _sha(rd / "curate" / "pairs.jsonl") == pairs_sha

    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), model / "adapter").eval()
    lora_b = [p for n, p in peft.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: the adapter was trained
    with torch.no_grad():
        assert torch.isfinite(peft(torch.tensor([[1, 2, 3]])).logits).all()

    # same config and pairs again: the stage is skipped, no launch
    log = (model / "accelerate.log").stat().st_mtime
    assert main(["train", str(rd), "--cpu", "--num-processes", "2", "--no-progress"]) == 0
    assert (model / "accelerate.log").stat().st_mtime == log


@pytest.mark.slow
def test_failing_launch_keeps_pairs_and_shows_log_tail(tmp_path: Path) -> None:
    from s2distill.train.launch import train_accelerate
    from s2distill.rundir import write_jsonl
    from s2distill.train import TrainConfig

    pytest.importorskip("trl")
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl(pairs, _pairs())
    before = _sha(pairs)
    with pytest.raises(ModelError) as ei:
        train_accelerate(pairs, str(tmp_path / "no-such-model"), tmp_path / "model", TrainConfig(max_steps=1),
                         LaunchOptions(cpu=True, num_processes=2), progress=False, log=lambda s: None)
    msg = str(ei.value)
    assert "accelerate launch failed (exit" in msg and "the worker said:" in msg and "fix: " in msg
    assert "the worker said: cannot load the base model" in msg and "fix: set train.base_model" in msg
    assert "s2distill.train.worker FAILED" in msg.split("--- last")[1]  # the log tail: torchrun's report
    assert (tmp_path / "model" / "accelerate.log").is_file()
    assert _sha(pairs) == before
