"""Distributed fine-tuning through ``accelerate launch`` (DDP on CPUs or GPUs, FSDP, DeepSpeed ZeRO).

The driver writes an accelerate config YAML (or uses yours as-is), starts
``accelerate launch --config_file X -m s2distill.train_worker ...`` as a subprocess, streams its
output to ``out_dir/accelerate.log``, and reads back the ``train_summary.json`` that rank 0 wrote.
Every rank runs :func:`s2distill.train.train_lora`; only the main process writes the model.
Nothing here imports torch: the argv and config builders are pure functions.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..config import _ACCELERATE_NAMES, DISTRIBUTED, LAUNCHERS, MIXED_PRECISION  # noqa: F401
from ..config import AccelerateOptions as LaunchOptions
from ..errors import ConfigError, ModelError

__all__ = ["LaunchOptions", "LAUNCHERS", "accelerate_config", "write_accelerate_config",
           "launch_argv", "launch_env", "worker_args", "run_launch", "train_accelerate", "options_from_section"]

WORKER_MODULE = "s2distill.train.worker"
LOG_NAME = "accelerate.log"


def options_from_section(train: Any) -> LaunchOptions:
    """The accelerate options of a config's ``train`` section: its launcher section (``train.launcher``)."""
    return train.launcher


def _visible_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def accelerate_config(opts: LaunchOptions, gpus: int = 0) -> dict:
    """The accelerate config (as a dict) for ``opts`` on a machine with ``gpus`` visible GPUs."""
    cpu = opts.cpu or gpus == 0
    if cpu and opts.kind in ("fsdp", "deepspeed"):
        raise ConfigError(f"distributed_type={opts.kind} needs GPUs and none is visible; fix: "
                          "train.launcher.distributed_type=ddp train.launcher.cpu=true, or run on a GPU machine")
    n = opts.num_processes or (2 if cpu else gpus * opts.num_machines)
    if not cpu and n // opts.num_machines > gpus:
        raise ConfigError(f"{n // opts.num_machines} processes per machine but {gpus} visible GPU(s); fix: "
                          f"train.launcher.num_processes={gpus * opts.num_machines}, or train.launcher.cpu=true")
    if opts.kind == "NO" or (opts.kind == "ddp" and n == 1):
        dtype = "NO"
    elif opts.kind == "ddp":
        dtype = "MULTI_CPU" if cpu else "MULTI_GPU"
    else:
        dtype = opts.kind.upper()
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "debug": False, "distributed_type": dtype, "downcast_bf16": "no",
        "machine_rank": opts.machine_rank, "main_training_function": "main", "mixed_precision": opts.mixed_precision,
        "num_machines": opts.num_machines, "num_processes": n, "rdzv_backend": "static", "same_network": True,
        "tpu_env": [], "tpu_use_cluster": False, "tpu_use_sudo": False, "use_cpu": cpu,
        # 0: accelerate picks a free port (one machine; concurrent runs do not collide)
        "main_process_port": opts.main_process_port if opts.main_process_port is not None else 0,
    }
    if opts.main_process_ip:
        cfg["main_process_ip"] = opts.main_process_ip
    if not cpu:
        cfg["gpu_ids"] = "all"
    if dtype == "FSDP":
        cfg["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_offload_params": opts.offload,
            "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_activation_checkpointing": False,
        }
    elif dtype == "DEEPSPEED":
        off = "cpu" if opts.offload else "none"
        cfg["deepspeed_config"] = {
            "zero_stage": opts.zero_stage, "offload_optimizer_device": off, "offload_param_device": off,
            "zero3_init_flag": False, "zero3_save_16bit_model": opts.zero_stage == 3,
        }
    return cfg


def write_accelerate_config(cfg: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _needs_torchrun(cfg: dict) -> bool:
    """accelerate's ``--cpu`` launcher starts ONE process (more only through mpirun), so several CPU
    processes go through its torchrun launcher (``--multi_gpu``); ACCELERATE_USE_CPU keeps them on gloo."""
    return cfg.get("distributed_type") == "MULTI_CPU" and int(cfg.get("num_processes") or 1) > 1


def worker_args(pairs: Path, base: str, out_dir: Path, config_json: Path, progress: bool = True) -> list[str]:
    return ["--pairs", str(pairs), "--base", str(base), "--out", str(out_dir), "--config", str(config_json),
            *([] if progress else ["--no-progress"])]


def launch_argv(config_file: Path, args: Sequence[str], cfg: dict | None = None, module: str = WORKER_MODULE,
                python: str | None = None) -> list[str]:
    """``accelerate launch --config_file X [--multi_gpu] -m MODULE ARGS`` (``cfg``: the config's content)."""
    argv = [python or sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file)]
    if cfg is not None and _needs_torchrun(cfg):
        argv.append("--multi_gpu")
    return [*argv, "-m", module, *args]


def launch_env(cfg: dict, base: dict[str, str] | None = None) -> dict[str, str]:
    """The launcher's environment: workers import this s2distill, CPU runs stay on gloo with a fair share of cores."""
    env = dict(os.environ if base is None else base)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([src, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cfg.get("use_cpu"):
        env["ACCELERATE_USE_CPU"] = "true"
        per_machine = max(1, int(cfg.get("num_processes") or 1) // int(cfg.get("num_machines") or 1))
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // per_machine)))
    return env


_HINTS = (
    ("out of memory", ("lower train.per_device_batch_size or train.max_length, set train.fit.gradient_checkpointing=true, "
                       "or shard the model with train.launcher.distributed_type=fsdp / deepspeed")),
    ("No module named 'deepspeed'", "pip install deepspeed, or use train.launcher.distributed_type=fsdp"),
    ("No module named", "install the train extras where the workers run: pip install 's2distill[train]'"),
    ("Address already in use", "set train.launcher.main_process_port to a free port (or leave it unset on one machine)"),
    ("EADDRINUSE", "set train.launcher.main_process_port to a free port (or leave it unset on one machine)"),
    ("imed out", ("check that main_process_ip:main_process_port is reachable from every machine and that "
                  "every machine started its launcher (num_machines, machine_rank)")),
    ("NCCL", "check the GPUs every process sees (CUDA_VISIBLE_DEVICES, num_processes) or try train.launcher.cpu=true"),
)


_EXCEPTION = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:[A-Za-z_][\w.]*)?(?:Error|Exception)(?::\s.*)?)$")
_LAUNCHER_ERRORS = ("ChildFailedError", "CalledProcessError")  # the launcher's own report of a failed rank


def _fix_for(tail: str) -> str:
    for needle, fix in _HINTS:
        if needle in tail:
            return fix
    return ("read the log; train.launcher=local runs the same training in one process, which tells a "
            "distributed-setup problem from a training one")


def run_launch(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
               echo: Callable[[str], None] | None = None, tail_lines: int = 40) -> None:
    """Run ``argv``, copying its output to ``log_path`` (and ``echo``) line by line; a non-zero exit
    raises ModelError with the fix and the log's last lines."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=tail_lines)
    said: str | None = None  # the first rank's own words: s2distill's "error: ..." or an exception line
    with open(log_path, "w") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    errors="replace", bufsize=1, env=env, start_new_session=True)
        except OSError as e:
            raise ModelError(f"cannot start `{argv[0]}`: {e}; fix: check the Python environment "
                             "(pip install 's2distill[train]')") from e
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                fh.flush()
                tail.append(line.rstrip("\n"))
                if line.startswith("error: ") and (said is None or not said.startswith("error: ")):
                    said = line.strip()
                elif said is None and (m := _EXCEPTION.match(line.strip())) and \
                        not any(e in m.group(1) for e in _LAUNCHER_ERRORS):
                    said = m.group(1)
                if echo is not None:
                    echo(line.rstrip("\n"))
            rc = proc.wait()
        except BaseException:  # Ctrl-C or the driver dying: take every rank down with us
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            raise
    if rc != 0:
        text = "\n".join(tail)
        said = said.removeprefix("error: ") if said else None
        first = f"; the worker said: {said}" if said else ""
        fix = "" if said and "fix:" in said else f"; fix: {_fix_for((said or '') + chr(10) + text)}"
        raise ModelError(f"accelerate launch failed (exit {rc}){first}{fix}; the pairs and every earlier stage are "
                         f"kept. Full log: {log_path}\n--- last {len(tail)} lines ---\n{text}")


def train_accelerate(pairs_path: Path, base: str, out_dir: Path, cfg: Any, opts: LaunchOptions = LaunchOptions(),
                     progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Train like :func:`s2distill.train.train_lora`, over ``accelerate launch``; returns rank 0's summary.

    ``cfg`` is a :class:`s2distill.train.TrainConfig`; ``pairs_path`` a JSONL of TrainPairs (only read).
    """
    pairs_path, out_dir = Path(pairs_path), Path(out_dir)
    if not pairs_path.is_file():
        raise ConfigError(f"no train pairs at {pairs_path}; fix: run the curate stage first")
    try:
        import accelerate  # noqa: F401
    except ImportError as e:
        raise ModelError(f"{e}; fix: pip install 's2distill[train]' (accelerate)") from e
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_json = out_dir / "train_config.json"
    cfg_json.write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    if opts.config_file:
        config_file = Path(opts.config_file)
        try:
            content = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_file}: invalid YAML: {e}") from None
    else:
        content = accelerate_config(opts, _visible_gpus())
        config_file = write_accelerate_config(content, out_dir / "accelerate_config.yaml")
    argv = launch_argv(config_file, worker_args(pairs_path, base, out_dir, cfg_json, progress), content)
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    say(f"[train] accelerate launch: {content.get('distributed_type')} x{content.get('num_processes')} "
        f"({'cpu' if content.get('use_cpu') else 'gpu'}), log: {out_dir / LOG_NAME}")
    t0 = time.time()
    run_launch(argv, out_dir / LOG_NAME, launch_env(content), echo=say if progress else None)
    summary_path = out_dir / "train_summary.json"
    if not summary_path.is_file() or summary_path.stat().st_mtime < t0:
        raise ModelError(f"accelerate launch exited 0 but rank 0 wrote no {summary_path}; fix: read {out_dir / LOG_NAME}")
    return json.loads(summary_path.read_text())
