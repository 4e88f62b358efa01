"""``s2distill continue RUN_DIR --data FILE``: the next distillation round, from new unlabeled inputs.

A round is a run directory of its own that knows its parent (``round.json``: round number, parent, the
new file and its content hash, how many inputs were added). Its training inputs are the parent's plus the
new ones (de-duplicated by id and by question text; an input that is one of the parent's held-out inputs
is dropped, so evaluation stays held out); its held-out inputs are the parent's own, so rounds compare
like with like. FILE is either ``RUN_DIR/serve/inbox.jsonl`` (what ``s2distill serve`` routed to System 2:
its System 2 samples are reused as the round's samples for those inputs, not generated again) or any file
of unlabeled inputs in the run's format (read like ``s2distill eval --data``). The parent's sample cache
is copied, so System 2 on the parent's inputs and the base model's evaluations cost nothing again.

The reference stays frozen: System 2 always runs on the base model (or the teacher), never on a distilled
round, so curation and the cascade's calibration score against the same reference in every round, and a
round cannot reinforce its own mistakes (vote-based self-training collapses when its reference drifts).
Training starts from the frozen base model on all curated pairs of the round.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from . import fingerprints
from .errors import ConfigError, DataError
from .pipeline import Pipeline
from .stages import Stage
from .rundir import read_json, read_jsonl, write_json, write_jsonl
from .rounds import ROUND_FILE, round_of
from .types import Example, Trace, stable_hash

REUSED = "data/round_reused.jsonl"  # a round's System 2 samples taken from an inbox or an earlier round


def reused_of(run_dir: Path) -> dict[str, Trace]:
    """The System 2 samples a round reuses instead of generating, by input id ({} for a plain run)."""
    path = Path(run_dir) / REUSED
    return {t.example_id: t for t in (Trace.from_json(d) for d in read_jsonl(path))} if path.is_file() else {}


def is_inbox(path: Path) -> bool:
    """Whether ``path`` is a serve inbox (records with the question and its System 2 samples)."""
    try:
        with open(path) as fh:
            first = json.loads(fh.readline())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(first, dict) and "samples" in first and "question" in first and "route" in first


def read_new(task, path: Path) -> tuple[list[Example], dict[str, Trace]]:
    """The new inputs of ``path`` (unlabeled) and, for a serve inbox, their System 2 samples by id."""
    from .serve import read_inbox

    if is_inbox(path):
        exs, traces = [], {}
        for r in read_inbox(path):
            eid = str(r.get("id") or stable_hash(r["question"]))
            if eid in traces:  # the same question served twice: its first samples
                continue
            exs.append(Example(id=eid, question=r["question"]))
            traces[eid] = Trace.from_json({"example_id": eid, "method": r.get("method", ""),
                                           "samples": r.get("samples") or []})
        if not exs:
            raise DataError(f"{path} holds no served inputs yet; fix: serve the run (s2distill serve RUN) and send "
                            "it requests, or pass a file of unlabeled inputs")
        return exs, {i: t for i, t in traces.items() if t.samples}
    from .eval_data import load_inputs

    return [e.unlabeled() for e in load_inputs(task, path)], {}


def merge(parent: list[Example], new: list[Example], held_out: list[Example]) -> tuple[list[Example], dict]:
    """The parent's training inputs and the new ones, de-duplicated by id and question text; new inputs that
    are held-out inputs of the run are dropped (they stay evaluation inputs)."""
    ids, texts = {e.id for e in parent}, {e.question.strip() for e in parent}
    held_ids, held_texts = {e.id for e in held_out}, {e.question.strip() for e in held_out}
    out, dup, held = list(parent), 0, 0
    for e in new:
        q = e.question.strip()
        if e.id in held_ids or q in held_texts:
            held += 1
        elif e.id in ids or q in texts:
            dup += 1
        else:
            out.append(e)
            ids.add(e.id)
            texts.add(q)
    return out, {"parent": len(parent), "new": len(new), "duplicates": dup, "held_out_dropped": held,
                 "added": len(out) - len(parent), "total": len(out)}


def start(parent_dir: str | Path, data: str | Path, run_dir: str | Path | None = None,
          from_parent_adapter: bool = False) -> Path:
    """Make (or resume) the round's directory: its config, ``round.json``, the new inputs (and reused samples),
    the parent's sample cache. ``from_parent_adapter``: train from the parent's LoRA adapter instead of the
    base model. Returns the directory; :func:`run_round` runs it."""
    parent, data = Path(parent_dir), Path(data)
    adapter = parent / "model" / "adapter"
    _check_parent(parent, data, adapter, from_parent_adapter)
    k = round_of(parent) + 1
    new = Path(run_dir) if run_dir else parent.parent / f"{re.sub(r'-r[0-9]+$', '', parent.name)}-r{k}"
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    info_path = new / ROUND_FILE
    if info_path.is_file():
        _check_resume(new, parent, read_json(info_path), sha, from_parent_adapter)
        return new
    if new.exists() and any(new.iterdir()):
        raise ConfigError(f"{new} exists and is not a round of {parent}; fix: pass --run-dir NEW")
    counts, traces, short = _write_inputs(parent, data, new)
    cache = parent / "cache" / "samples.jsonl"
    if cache.is_file():
        (new / "cache").mkdir(exist_ok=True)
        shutil.copyfile(cache, new / "cache" / "samples.jsonl")
    write_json(info_path, {"round": k, "parent": os.path.relpath(parent.resolve(), new.resolve()),
                           "data": str(data), "data_sha256": sha, "inputs": counts,
                           "reused_samples": sum(len(t.samples) for t in traces.values()),
                           "too_few_samples": len(short),
                           **({"init_adapter": os.path.relpath(adapter.resolve(), new.resolve())}
                              if from_parent_adapter else {})})
    return new


def _check_parent(parent: Path, data: Path, adapter: Path, from_parent_adapter: bool) -> None:
    for need in ("config.yaml", "data/train.jsonl", "data/eval.jsonl"):
        if not (parent / need).is_file():
            raise ConfigError(f"{parent} has no {need}; fix: continue from a run directory that `s2distill run "
                              "CONFIG` made (its data stage at least)")
    if not data.is_file():
        raise DataError(f"{data} not found; fix: pass RUN_DIR/serve/inbox.jsonl or a file of unlabeled inputs")
    if from_parent_adapter and not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{parent} has no trained LoRA adapter ({adapter}); fix: finish the parent's train stage "
                          "(s2distill run ... --run-dir PARENT) or leave out --from-parent-adapter")


def _check_resume(new: Path, parent: Path, info: dict, sha: str, from_parent_adapter: bool) -> None:
    """A round directory that exists is resumed only for the same parent, file and adapter choice."""
    if info.get("data_sha256") != sha or Path(new, info["parent"]).resolve() != parent.resolve():
        raise ConfigError(f"{new} is a round of {info['parent']} from another file; fix: pass --run-dir NEW "
                          "for this one")
    if bool(info.get("init_adapter")) != from_parent_adapter:
        raise ConfigError(f"{new} was started {'with' if info.get('init_adapter') else 'without'} "
                          "--from-parent-adapter; fix: pass --run-dir NEW for the other choice")


def _write_inputs(parent: Path, data: Path, new: Path) -> tuple[dict, dict[str, Trace], set[str]]:
    """The round's inputs (the parent's and the new ones, merged) and the System 2 samples it reuses; returns
    the input counts, the reused traces and the ids whose served samples were too few to reuse."""
    from .checks import load_checked
    from .tasks import make_task

    cfg = load_checked(parent / "config.yaml")
    task = make_task(cfg.task)
    exs, traces = read_new(task, data)
    # the parent's own reused samples (a round's inbox inputs are in its traces, not in its sample cache): reused
    # again here, so a chain of rounds never pays twice for what a server drew
    traces = {**reused_of(parent), **traces}
    # a greedy fallback served one sample per input: too few for the curator's vote (method.n); those inputs are
    # sampled afresh, so only a maj@k fallback's samples (eval.k >= method.n) are reused
    short = {i for i, t in traces.items() if len(t.samples) < cfg.method.n}
    traces = {i: t for i, t in traces.items() if i not in short}
    merged, counts = merge([Example.from_json(d) for d in read_jsonl(parent / "data" / "train.jsonl")], exs,
                           [Example.from_json(d) for d in read_jsonl(parent / "data" / "eval.jsonl")])
    (new / "data").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(parent / "config.yaml", new / "config.yaml")
    write_jsonl(new / "data" / "round_train.jsonl", merged)
    kept = {e.id for e in merged}
    write_jsonl(new / REUSED, [t for i, t in traces.items() if i in kept])
    shutil.copyfile(parent / "data" / "eval.jsonl", new / "data" / "round_eval.jsonl")
    return counts, traces, short


class RoundPipeline(Pipeline):
    """A run over a round's directory: its data are the merged inputs :func:`start` wrote, and the System 2
    samples the inbox already holds are reused instead of generated."""

    def data_stage(self) -> Stage:
        info = read_json(self.rd / ROUND_FILE)
        src = self.rd / "data"

        def run(p):
            train = [Example.from_json(d) for d in read_jsonl(src / "round_train.jsonl")]
            evals = [Example.from_json(d) for d in read_jsonl(src / "round_eval.jsonl")]
            write_jsonl(src / "train.jsonl", [e.unlabeled() for e in train])
            write_jsonl(src / "eval.jsonl", evals)
            return ["data/train.jsonl", "data/eval.jsonl"], {"n_train": len(train), "n_eval": len(evals),
                                                             "round": info["round"], **info["inputs"]}

        return Stage("data", "data", (), lambda p: fingerprints.round_data(self.cfg, info["data_sha256"], info["parent"]),
                     run)

    def init_adapter(self) -> tuple[Path, str] | None:
        """With ``--from-parent-adapter``: the parent's adapter, fingerprinted by the parent's train stage."""
        info = read_json(self.rd / ROUND_FILE)
        if not info.get("init_adapter"):
            return None
        from .rundir import RunDir

        parent = (self.rd.path / info["parent"]).resolve()
        st = RunDir(parent).stage_info("train")
        fp = st.get("fingerprint") if st.get("done") else None
        adapter = (self.rd.path / info["init_adapter"]).resolve()
        if not fp or not (adapter / "adapter_config.json").is_file():
            raise ConfigError(f"the parent's adapter {adapter} is gone or unfinished; fix: re-run the parent's "
                              "train stage, or start this round again without --from-parent-adapter")
        return adapter, fp

    def reused_traces(self) -> dict[str, Trace]:
        return reused_of(self.rd.path)


def run_round(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True, log=None,
              backend_factory=None) -> dict:
    """Run a round made by :func:`start` (finished stages are reused, like a run); returns its report."""
    from .checks import load_checked

    rd = Path(run_dir)
    cfg = load_checked(rd / "config.yaml", list(overrides or []))
    kw = {"backend_factory": backend_factory} if backend_factory else {}
    return RoundPipeline(cfg, run_dir=rd, progress=progress, log=log, **kw).run()


__all__ = ["RoundPipeline", "is_inbox", "merge", "read_new", "run_round", "start"]
