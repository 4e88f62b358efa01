"""Replay a finished run on today's code: do its stage fingerprints hold and do its samples come from its cache?

    python benchmarks/cache_replay.py RUN_DIR [key=value ...] [--work runs/replay]

Copies RUN_DIR, forgets every finished stage in the copy's manifest but ``train`` (so every other stage
reruns and asks the engine for its samples again, through the sample cache), and runs the copy's own
``config.yaml`` with the overrides given (e.g. the values that reproduce the behaviour of the code that made
the run). Reports, per stage, the old and new fingerprints, samples generated and cache hits, and every
system's accuracy before and after. A replay that holds: equal fingerprints, 0 samples generated, equal
accuracies.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import Table, pct, write_result  # noqa: E402


def render(res: dict) -> str:
    lines = ["# Cache replay of a finished run on today's code", "",
             f"Run `{res['run']}` (started {res['made_at']}, {res['made_by']}), replayed with `{' '.join(res['overrides']) or '-'}`: "
             f"**{res['generated']} samples generated, {res['cache_hits']} from the cache; fingerprints "
             f"{'all equal' if res['fingerprints_equal'] else 'DIFFER'}; accuracies "
             f"{'all equal' if res['accuracies_equal'] else 'DIFFER'}.**", ""]
    lines += Table(["stage", "fingerprint before", "after", "generated", "cache hits"],
                   [[s["stage"], s["before"], s["after"] + ("" if s["before"] == s["after"] else " (differs)"),
                     "-" if s["generated"] is None else str(s["generated"]),
                     "-" if s["cache_hits"] is None else str(s["cache_hits"])] for s in res["stages"]]).markdown().splitlines()
    lines += [""]
    lines += Table(["system", "n", "accuracy before", "after"],
                   [[a["system"], str(a["n"]), pct(a["before"]) + "%", pct(a["after"]) + "%"]
                    for a in res["accuracy"]]).markdown().splitlines()
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--work", default="runs/replay")
    ap.add_argument("--made-by", default="code of an earlier commit", help="what made the run (e.g. 'git f85a125')")
    args = ap.parse_args()
    from s2distill.config import load_config
    from s2distill.pipeline import Pipeline

    src = Path(args.run_dir)
    dst = Path(args.work) / src.name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    man_path = dst / "manifest.json"
    before = json.loads(man_path.read_text())
    man = dict(before, stages={k: v for k, v in before["stages"].items() if k == "train"})
    man_path.write_text(json.dumps(man, indent=2) + "\n")
    old_report = json.loads((src / "report.json").read_text())
    cfg = load_config(dst / "config.yaml", args.overrides)
    Pipeline(cfg, run_dir=dst, progress=False).run()
    after = json.loads(man_path.read_text())["stages"]
    new_report = json.loads((dst / "report.json").read_text())
    stages = [{"stage": k, "before": v["fingerprint"], "after": after.get(k, {}).get("fingerprint", "-"),
               "generated": after.get(k, {}).get("generated"), "cache_hits": after.get(k, {}).get("cache_hits")}
              for k, v in before["stages"].items()]
    acc_after = {r["system"]: r for r in new_report["rows"]}
    accuracy = [{"system": r["system"], "n": r["n"], "before": r["accuracy"], "after": acc_after[r["system"]]["accuracy"]}
                for r in old_report["rows"] if r["system"] in acc_after]
    env = json.loads((src / "env.json").read_text()) if (src / "env.json").is_file() else {}
    res = {"run": str(src), "made_at": env.get("started_at", "unknown"), "made_by": args.made_by,
           "overrides": args.overrides,
           "stages": stages, "accuracy": accuracy,
           "generated": sum(s["generated"] or 0 for s in stages if s["stage"] != "train"),
           "cache_hits": sum(s["cache_hits"] or 0 for s in stages if s["stage"] != "train"),
           "fingerprints_equal": all(s["before"] == s["after"] for s in stages),
           "accuracies_equal": all(a["before"] == a["after"] for a in accuracy)}
    write_result("cache_replay", res, render(res))
    print(render(res))


if __name__ == "__main__":
    main()
