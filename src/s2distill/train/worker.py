"""What every rank of ``accelerate launch`` runs: load the pairs, call :func:`s2distill.train.train_lora`.

    python -m s2distill.train.worker --pairs RUN/curate/pairs.jsonl --base MODEL --out RUN/model --config train.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import S2DistillError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m s2distill.train.worker", description=__doc__.splitlines()[0])
    p.add_argument("--pairs", required=True, help="TrainPair JSONL (read only)")
    p.add_argument("--base", required=True, help="model to fine-tune (embedded name, .gguf, HF dir or hub id)")
    p.add_argument("--out", required=True, help="output dir (rank 0 writes adapter/, loss.jsonl, train_summary.json)")
    p.add_argument("--config", required=True, help="TrainConfig JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        from ..rundir import read_jsonl
        from . import TrainConfig, train_lora
        from ..types import TrainPair

        cfg = TrainConfig.from_json(json.loads(Path(args.config).read_text()))
        pairs = [TrainPair.from_json(d) for d in read_jsonl(Path(args.pairs))]
        train_lora(pairs, args.base, Path(args.out), cfg, progress=not args.no_progress)
    except S2DistillError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        _close_process_group()
    return 0


def _close_process_group() -> None:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001, S110 - best effort at exit
        pass


if __name__ == "__main__":
    sys.exit(main())
