"""Cost of the paper's GSM8K CoT distillation setup, from measured token counts and stated throughputs.

    python benchmarks/cost_model.py [--throughputs 71.4 1000 2500 5000]

Token counts per answer are MEASURED: the GSM8K rows of benchmarks/results/distill_arithmetic.json
(embedded 0.5B, 3-shot CoT). An 8B model writes CoT of a similar order but not the same length:
rerun your own 30-question eval and pass --cot-tokens to use your model's number.
Throughputs are PARAMETERS, not measurements, except 71.4 tok/s, which is what the embedded 0.5B
gave through the llamacpp backend on this 2-core CPU (zero-shot CoT, benchmarks/results/throughput.md). The setup (7,473 unlabeled train
questions x 8 CoT samples, 1,319 test questions, System 1 + greedy CoT + maj@8 + distilled eval)
is the paper's (Yu et al. 2024, Table 6) as written in configs/gsm8k_paper.yaml.
"""
from __future__ import annotations

import argparse

from common import Table, experiment_rows, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--throughputs", type=float, nargs="+", default=[71.4, 1000, 2500, 5000],
                    help="aggregate generated tokens/s of the serving stack")
    ap.add_argument("--cot-tokens", type=float, help="mean generated tokens per CoT answer (default: measured)")
    ap.add_argument("--train", type=int, default=7473)
    ap.add_argument("--test", type=int, default=1319)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--k", type=int, default=8, help="maj@k samples at eval")
    args = ap.parse_args()

    g = {r["role"]: r for r in experiment_rows("distill_arithmetic") if r["task"] == "gsm8k"}
    cot = args.cot_tokens or g["system2"]["tokens"]
    s1 = g["system1"]["tokens"]
    dist = g["distilled"]["tokens"]
    gen = args.train * args.samples * cot
    ev = args.test * (s1 + cot + args.k * cot + dist)
    total = gen + ev
    table = [{"tokens_per_s": t, "generate_h": gen / t / 3600, "eval_h": ev / t / 3600, "total_h": total / t / 3600}
             for t in args.throughputs]
    res = {"cot_tokens_per_answer": cot, "system1_tokens": s1, "distilled_tokens": dist, "train_questions": args.train,
           "samples": args.samples, "test_questions": args.test, "k": args.k, "generate_tokens": gen,
           "eval_tokens": ev, "total_tokens": total, "table": table,
           "source_of_token_counts": "benchmarks/results/distill_arithmetic.json (gsm8k rows, measured)"}
    md = render(res)
    write_result("cost_model", res, md)
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    cot, s1, dist, k = res["cot_tokens_per_answer"], res["system1_tokens"], res["distilled_tokens"], res["k"]
    gen, ev, total = res["generate_tokens"], res["eval_tokens"], res["total_tokens"]
    table = Table(["serving throughput (generated tok/s)", "generate stage h", "eval h", "total h"],
                  [[f"{r['tokens_per_s']:,g}", f"{r['generate_h']:.2f}", f"{r['eval_h']:.2f}", f"{r['total_h']:.2f}"]
                   for r in res["table"]], align="rrrr")
    lines = ["# Cost model: GSM8K CoT distillation at the paper's scale", "",
             f"Generated tokens: train {res['train_questions']:,} questions x {res['samples']} CoT samples x {cot:.1f} "
             f"tokens = {gen / 1e6:.2f} M; eval {res['test_questions']:,} questions x (System 1 {s1:.1f} + CoT {cot:.1f} "
             f"+ maj@{k} {k} x {cot:.1f} + distilled {dist:.1f}) = {ev / 1e6:.2f} M; total {total / 1e6:.2f} M.", "",
             table.markdown()]
    lines += ["", "Per-answer token counts are measured (embedded 0.5B, 3-shot CoT, benchmarks/results/"
              "distill_arithmetic.json); throughputs are parameters: only 71.4 tok/s was measured (embedded 0.5B, "
              "llamacpp backend, zero-shot CoT, this 2-core CPU: benchmarks/results/throughput.md; few-shot "
              "prompts ran at 24-28 tok/s there). Hours scale as 1 / throughput; with N engines behind Ray Data, divide by N."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
