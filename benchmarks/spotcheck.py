"""Do 20 spot-check labels give the verdict that all the labels give?

    python benchmarks/spotcheck.py [--runs RUN ...] [--draws 200] [-n 20] [--make-own-yes-no]

For each finished run (default: every run under runs/cascade/, and runs/spotcheck/own_yes_no when it exists;
``--make-own-yes-no`` first makes that one: examples/own_yes_no.jsonl, where the 0.5B's few-shot CoT is
consistent but often wrong) the verdict all the labels give (every held-out input labeled: the exact
accuracies, the same decision rule as ``spotcheck.settle``) is compared with the verdict of ``--draws``
independent spot-checks of about ``-n`` labels each (``s2distill spotcheck RUN -n 20``, the drawn inputs
labeled from the run's gold, or, for the own-data file, from the answers benchmarks/own_data.py knows), and
with the label-free verdict. No model runs except for ``--make-own-yes-no``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from common import RESULTS, Table, pct, write_result  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.rundir import read_json, read_jsonl  # noqa: E402
from s2distill.spotcheck import _predictions, draw, score, settle, tokens_of  # noqa: E402
from s2distill.tasks import make_task  # noqa: E402

OWN_YES_NO = ROOT / "runs" / "spotcheck" / "own_yes_no"
OWN_OVERRIDES = ["task.options.path=examples/own_yes_no.jsonl", "task.options.question_field=claim",
                 "task.options.id_field=key", "task.options.answer_format=yes_no",
                 "task.options.exemplars_path=examples/own_yes_no_exemplars.jsonl", "task.options.eval_fraction=0.67",
                 "task.n_train=40", "task.n_eval=80", "eval.cascade_fallback=greedy"]
KIND = {"ship": "ship distilled", "cascade": "ship cascade", "keep": "keep System 2", "no_answer": "not settled",
        None: "none"}


def make_own_yes_no() -> None:
    from s2distill.pipeline import Pipeline

    cfg = load_config(ROOT / "configs" / "own_data.yaml", OWN_OVERRIDES)
    Pipeline(cfg, run_dir=OWN_YES_NO, progress=False).run()


def gold_of(run: Path) -> dict[str, str]:
    """Each held-out input's right answer: the run's gold, or (own-data files carry none) own_data.py's."""
    rows = list(read_jsonl(run / "data" / "eval.jsonl"))
    if all(r.get("gold") not in (None, "") for r in rows):
        return {str(r["id"]): str(r["gold"]) for r in rows}
    from own_data import answers

    truth = answers()
    return {str(r["id"]): truth[r["question"]] for r in rows}


def all_labels(run: Path, task, report: dict, gold: dict[str, str]) -> dict:
    """Every system's exact accuracy over all held-out inputs, and the verdict they give (zero-width intervals)."""
    preds = _predictions(run, task, report.get("cascade"))
    acc = {s: sum(bool(task.score(p[i], gold[i])) for i in p) / len(p) for s, p in preds.items() if p}
    diffs = {}
    for ref in ("system2", "system2_maj"):
        for cand in ("distilled", "cascade", "system1"):
            if ref in acc and cand in acc:
                d = acc[ref] - acc[cand]
                diffs[f"{ref}-{cand}"] = {"estimate": d, "ci95": [d, d]}
    res = {"n_labeled": len(gold), "systems": {s: {"estimate": a, "ci95": [a, a]} for s, a in acc.items()},
           "differences": diffs}
    return {"accuracy": acc, "verdict": settle(res, report["verdict"].get("max_disagreement", 0.10),
                                               tokens_of(report["rows"], report.get("cascade")), report.get("cascade"))}


def check(run: Path, draws: int, n: int) -> dict:
    cfg = load_config(run / "config.yaml")
    task = make_task(cfg.task)
    report = read_json(run / "report.json")
    lf = report["verdict"].get("label_free_verdict", report["verdict"])
    gold = gold_of(run)
    truth = all_labels(run, task, report, gold)
    want = truth["verdict"]["decision"]
    tokens = tokens_of(report["rows"], report.get("cascade"))
    acc = truth["accuracy"]
    ref = max((r for r in ("system2", "system2_maj") if acc.get(r) is not None), key=lambda r: acc[r])

    def within(decision) -> bool:
        """A ship of the other candidate that all the labels also put within eval.max_disagreement of System 2
        (e.g. the cascade where the distilled model alone would do): safe, it only saves less."""
        cand = {"ship": "distilled", "cascade": "cascade"}.get(decision)
        return cand is not None and acc.get(cand) is not None and acc[ref] - acc[cand] <= cfg.eval.max_disagreement

    got, labels, covered = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(draws):
            path, k = draw(run, n, seed, out=Path(tmp) / f"draw{seed}.jsonl")
            rows = [json.loads(x) for x in path.read_text().splitlines()]
            path.write_text("".join(json.dumps({**r, "gold": gold[str(r["id"])]}) + "\n" for r in rows))
            res = score(run, path, task, report.get("cascade"), cfg.eval.max_disagreement, tokens)
            got.append(res["verdict"]["decision"])
            labels.append(k)
            lo, hi = res["systems"]["distilled"]["ci95"]
            covered += lo - 1e-9 <= truth["accuracy"]["distilled"] <= hi + 1e-9
    return {"run": str(run.relative_to(ROOT)), "n_eval": len(gold), "accuracy_all_labels": truth["accuracy"],
            "verdict_all_labels": want, "verdict_all_labels_line": truth["verdict"]["line"],
            "verdict_label_free": lf["decision"], "draws": draws, "n": n,
            "labels_mean": statistics.mean(labels), "labels_range": [min(labels), max(labels)],
            "spotcheck_verdicts": {KIND[d]: got.count(d) for d in dict.fromkeys(got)},
            "same": sum(d == want for d in got) / draws,
            "not_settled": sum(d == "no_answer" for d in got) / draws,
            "other_ship_within": sum(d != want and within(d) for d in got) / draws,
            "different": sum(d not in (want, "no_answer") and not within(d) for d in got) / draws,
            "distilled_ci_coverage": covered / draws}


def render(res: dict) -> str:
    body = []
    for r in res["rows"]:
        a = r["accuracy_all_labels"]
        body.append([r["run"].split("/")[-1], f"{r['n_eval']} ({r['draws']} draws)", pct(a.get("system2")), pct(a.get("system2_maj")),
                     pct(a.get("distilled")), pct(a.get("cascade")), KIND[r["verdict_label_free"]],
                     KIND[r["verdict_all_labels"]], f"{r['labels_mean']:.1f} ({r['labels_range'][0]}-{r['labels_range'][1]})",
                     pct(r["same"]), pct(r.get("other_ship_within", 0.0)), pct(r["not_settled"]), pct(r["different"]),
                     pct(r["distilled_ci_coverage"])])
    t = Table(["run", "held-out n (spot-checks drawn)", "System 2 acc %", "maj@k acc %", "distilled acc %", "cascade acc %",
               "label-free verdict", "verdict with all labels", "labels drawn (mean, range)",
               "spot-check verdict = all labels %", "ships the other candidate, also within the margin %",
               "not settled %", "different %", "distilled 95% CI covers %"],
              body, align="lrrrrrlllrrrrr")
    return "\n".join([
        "# Spot-check: do about 20 labels give the verdict all the labels give?", "",
        f"Per finished run, independent spot-checks (`s2distill spotcheck RUN -n {res['n']}`; how many per run in "
        "the second column), drawn "
        "inputs labeled from the run's gold), each scored with the stratified prediction-powered estimator and "
        "settled by the rule of `spotcheck.settle` (ship the cheapest of distilled and cascade within "
        "eval.max_disagreement of the better System 2 with 95% confidence, keep when every one is surely further "
        "below, else not settled); the same rule on all held-out labels gives the reference verdict. 'different' "
        "is a spot-check verdict that contradicts all the labels (ships a system the labels put further below, or keeps "
        "where they ship); 'not settled' asks for more labels; shipping the cascade where all the labels would ship the "
        "distilled model alone (both within the margin by all the labels) is counted apart: safe, it saves less.", "",
        t.markdown()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--make-own-yes-no", action="store_true")
    args = ap.parse_args(argv)
    if args.make_own_yes_no:
        make_own_yes_no()
    runs = [Path(r).resolve() for r in args.runs] if args.runs else sorted(
        p for p in [*(ROOT / "runs" / "cascade").glob("*"), OWN_YES_NO] if (p / "report.json").is_file())
    rows = [check(r, args.draws, args.n) for r in runs]
    prev = RESULTS / "spotcheck.json"
    if prev.is_file():  # committed rows of runs not redrawn now stay (e.g. their run directories are elsewhere)
        done = {r["run"] for r in rows}
        rows = [r for r in json.loads(prev.read_text())["rows"] if r["run"] not in done] + rows
    res = {"rows": rows, "draws": args.draws, "n": args.n}
    write_result("spotcheck", res, render(res), keep_notes=True)
    print((RESULTS / "spotcheck.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
