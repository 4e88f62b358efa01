"""The chain of distillation rounds (``s2distill continue``, continual.py): each round's directory holds
``round.json`` naming its parent; this module reads the chain and tabulates it for reports."""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .rundir import read_json

ROUND_FILE = "round.json"


def round_of(run: Path) -> int:
    """The round number of a run directory (1 for a plain run)."""
    f = Path(run) / ROUND_FILE
    return int(read_json(f)["round"]) if f.is_file() else 1


def chain(run_dir: str | Path) -> list[Path]:
    """The run directories of a round's chain, first round first."""
    out, cur = [], Path(run_dir)
    while True:
        out.append(cur)
        f = cur / ROUND_FILE
        if not f.is_file():
            return out[::-1]
        cur = (cur / read_json(f)["parent"]).resolve()
        if cur in out or len(out) > 1000:
            raise ConfigError(f"{run_dir}: the chain of rounds loops at {cur}")


def round_row(run: Path, rep: dict, stages: dict) -> dict:
    """One round's row: inputs, curated pairs, training steps, the distilled model's accuracy (where gold
    exists) and agreement with System 2, the cascade's coverage, accuracy and tokens, the verdict; from its
    report (``rep``) and manifest stages."""
    by = {x["role"]: x for x in rep.get("rows", [])}
    cas = rep.get("cascade") or {}
    best = (cas.get("signals") or {}).get(cas.get("best") or "", {}).get("cascade", {})
    dist = by.get("distilled", {})
    return {"round": round_of(run), "run_dir": str(run), "inputs": stages.get("data", {}).get("n_train"),
            "pairs": stages.get("curate", {}).get("kept"), "steps": (rep.get("train") or {}).get("steps"),
            "distilled_accuracy": dist.get("accuracy"),
            "distilled_agreement": ((rep.get("label_free") or {}).get("distilled") or {}).get("agreement"),
            "system2_accuracy": by.get("system2", {}).get("accuracy"), "cascade_signal": cas.get("best"),
            "cascade_coverage": best.get("coverage"), "cascade_accuracy": best.get("accuracy"),
            "cascade_tokens": best.get("tokens"), "distilled_tokens": dist.get("mean_generated_tokens"),
            "cascade_target": target_of(cas), "verdict": (rep.get("verdict") or {}).get("decision")}


def target_of(cascade: dict) -> dict | None:
    """What a round's guarantee is (risk, bound, confidence, fallback); rounds compare only at the same one."""
    if not cascade:
        return None
    return {k: cascade.get(k) for k in ("risk", "max_disagreement", "delta", "fallback")}


def deployed_tokens(row: dict) -> float | None:
    """Generated tokens per input of what a round's verdict deploys: the distilled model (ship) or its cascade;
    None for keep (System 2 itself) or no answer."""
    return {"ship": row.get("distilled_tokens"), "cascade": row.get("cascade_tokens")}.get(row.get("verdict"))


def round_to_serve(rows: list[dict]) -> dict | None:
    """The earlier round of the chain that deploys the same guarantee as the last round (same held-out inputs,
    reference, target, risk and fallback) for fewer generated tokens per input, or None when the last round is
    the one to serve. A round that trained on more inputs can route worse (a sharper but no better ranked
    confidence): then its parent stays in service until a round beats it."""
    if not rows or rows[-1].get("cascade_target") is None:
        return None
    last = rows[-1]
    mine = deployed_tokens(last)
    same = [r for r in rows[:-1] if r.get("cascade_target") == last["cascade_target"]
            and deployed_tokens(r) is not None]
    best = min(same, key=deployed_tokens, default=None)
    if best is None or (mine is not None and deployed_tokens(best) >= mine):
        return None
    return best


def rounds_table(run_dir: str | Path) -> list[dict]:
    """One :func:`round_row` per round of the chain, first round first."""
    rows = []
    for r in chain(run_dir):
        rep = read_json(r / "report.json") if (r / "report.json").is_file() else {}
        man = read_json(r / "manifest.json")["stages"] if (r / "manifest.json").is_file() else {}
        rows.append(round_row(r, rep, man))
    return rows


__all__ = ["ROUND_FILE", "chain", "deployed_tokens", "round_of", "round_row", "round_to_serve", "rounds_table",
           "target_of"]
