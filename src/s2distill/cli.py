"""``s2distill``: subcommands only parse arguments and call the pipeline."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, S2DistillError

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


def _cmd_run(args) -> int:
    from .config import load_config
    from .pipeline import Pipeline
    from .report import to_markdown

    cfg = load_config(args.config, args.overrides)  # the Pipeline checks its components
    report = Pipeline(cfg, run_dir=args.run_dir, progress=not args.no_progress).run(until=args.until)
    if report:
        print(to_markdown(report))
        html = Path(report["run_dir"]) / "report.html"
        if html.is_file():
            print(f"HTML report: {html} (open it in a browser; rebuild: s2distill report {args.run_dir or 'RUN_DIR'} --html)")
    return 0


def _cmd_experiment(args) -> int:
    from .experiment import load_experiment, render, run_experiment

    exp = load_experiment(args.spec, args.var)
    if args.list:
        from .experiment import plan

        print(plan(exp, args.overrides, args.results))
        return 0
    res, out = run_experiment(exp, only=args.runs or (), overrides=args.overrides, render_only=args.render,
                              results=args.results)
    print(render(res))
    print(f"wrote {out / exp.name}.json, .md and .html")
    return 0


def _cmd_demo(args) -> int:
    args.config = str(DEMO_CONFIG)
    return _cmd_run(args)


def _cmd_validate(args) -> int:
    from .checks import load_checked
    from .tasks import check_data

    if args.explain:
        from .config import RunConfig
        from .keys import explain

        print(explain(RunConfig, args.explain))
        return 0
    if not args.config:
        raise ConfigError("s2distill validate needs a config (e.g. s2distill validate configs/demo.yaml), "
                          "or --explain KEY")
    cfg = load_checked(args.config, args.overrides)
    data = check_data(cfg)  # the task's files, read as the run's data stage reads them (no engine starts)
    print(f"ok: {args.config} (task={cfg.task.name}, method={cfg.method.name}, backend={cfg.backend.name}, "
          f"curator={cfg.curate.name}, model={cfg.model}"
          + (f", teacher={cfg.teacher.model} on {cfg.teacher.backend.name})" if cfg.teacher else ")"))
    print(data)
    return 0


def _cmd_report(args) -> int:
    from .report import load_report, to_markdown

    if args.html or args.out:
        from .html_report import write_run_html

        print(f"wrote {write_run_html(args.run_dir, args.out)}")
        return 0
    print(to_markdown(load_report(args.run_dir)))
    return 0


def _cmd_compare(args) -> int:
    from .compare import compare_markdown, write_compare_html

    print(compare_markdown(args.run_dirs))
    if args.html:
        print(f"wrote {write_compare_html(args.run_dirs, args.html)}")
    return 0


def _cmd_eval(args) -> int:
    from .eval_data import eval_on_file
    from .report import to_markdown
    from .spotcheck import is_spotcheck_file

    if is_spotcheck_file(args.data):  # labels for the run's own held-out inputs: no model runs
        return _score_spotcheck(args.run_dir, args.data)

    report, out = eval_on_file(args.run_dir, args.data, name=args.name, overrides=args.overrides,
                               answer_field=args.answer_field, progress=not args.no_progress)
    print(to_markdown(report))
    print(f"written to {out}", file=sys.stderr)
    return 0


def _cmd_verdict(args) -> int:
    from .report import verdict_of_run

    v = verdict_of_run(args.run_dir, args.overrides)
    if args.json:
        c = v.get("cascade") or {}
        kind = {"ship": "ship distilled", "cascade": "ship cascade", "keep": "keep System 2"}.get(
            v["decision"], "not settled by the labels" if v.get("settled_by") else "no label-free answer")
        print(json.dumps({"kind": kind, "decision": v["decision"], "line": v["line"], "threshold": c.get("threshold"),
                          "signal": c.get("signal"), "coverage": c.get("coverage"), "bound": c.get("bound"),
                          "risk": c.get("risk"),
                          "token_ratio": c.get("token_ratio"), "token_saving": v.get("token_saving"),
                          "settled_by": v.get("settled_by", "label-free"), "n_labeled": v.get("n_labeled"),
                          "reasons": v.get("reasons"), "serve_instead": v.get("serve_instead")},
                         indent=2))
    else:
        print(v["line"])
    if v.get("fix"):
        print(f"fix: {v['fix']}", file=sys.stderr)
    return {"ship": 0, "cascade": 0, "keep": 1}.get(v["decision"], 2)


def _cmd_spotcheck(args) -> int:
    from .spotcheck import draw

    if args.labels:
        return _score_spotcheck(args.run_dir, args.labels)
    path, n = draw(args.run_dir, args.n, args.seed, args.out)
    print(f"wrote {n} inputs to label to {path}: fill in each 'gold' (keep the other fields), then\n"
          f"  s2distill spotcheck {args.run_dir} --labels {path}")
    return 0


def _score_spotcheck(run_dir, labels) -> int:
    """Keep the labels in the run (``spotcheck/labels.jsonl``) and rebuild its report: every system's accuracy
    from them, and the verdict they settle (no model runs)."""
    import shutil

    from .checks import load_checked
    from .html_report import write_report
    from .rundir import RunDir, write_json
    from .spotcheck import markdown, read_labels

    read_labels(labels)  # a row without its label fails here, before anything is written
    run = Path(run_dir)
    kept = run / "spotcheck" / "labels.jsonl"
    kept.parent.mkdir(parents=True, exist_ok=True)
    if Path(labels).resolve() != kept.resolve():
        shutil.copyfile(labels, kept)
    report = write_report(RunDir(run), load_checked(run / "config.yaml"), log=lambda m: print(m, file=sys.stderr))
    res = report.get("spotcheck")
    if not res:
        from .systems import MAJ, add_fix

        print(f"{run} has no System 2 maj@k evaluation to combine the labels with; fix: {add_fix(MAJ)}",
              file=sys.stderr)
        return 2
    write_json(run / "spotcheck" / "report.json", res)
    print(markdown(res))
    print(f"labels kept in {kept}; report.md, report.json and `s2distill verdict` now use them", file=sys.stderr)
    return 0


def _cmd_continue(args) -> int:
    from .continual import run_round, start
    from .report import rounds_markdown, to_markdown
    from .rundir import read_json

    new = start(args.run_dir, args.data, args.run_dir_new, from_parent_adapter=args.from_parent_adapter)
    info = read_json(new / "round.json")
    c = info["inputs"]
    print(f"[continue] round {info['round']} in {new}: {c['parent']} inputs of the parent + {c['added']} new "
          f"({c['duplicates']} duplicates, {c['held_out_dropped']} held-out inputs left out); "
          f"{info['reused_samples']} System 2 samples reused (from {args.data} and earlier rounds)", file=sys.stderr)
    report = run_round(new, args.overrides, progress=not args.no_progress)
    print(to_markdown(report))
    print("\n".join(rounds_markdown(report.get("rounds"))[1:]), file=sys.stderr)
    return 0


def _cmd_serve(args) -> int:
    from .serve import serve

    serve(args.run_dir, host=args.host, port=args.port, route=args.route, threshold=args.threshold,
          api_key_env=args.api_key_env, log=lambda s: print(s, file=sys.stderr, flush=True), explore=args.explore)
    return 0


def _cmd_train(args) -> int:
    from .checks import load_checked
    from .pipeline import Pipeline

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir / 'config.yaml'} not found; fix: pass a run directory made by `s2distill run`")
    accel = args.num_processes is not None or args.cpu or args.accelerate_config is not None
    flags = {"name": args.launcher or ("accelerate" if accel else None), "num_processes": args.num_processes,
             "config_file": args.accelerate_config, "cpu": True if args.cpu else None}
    cfg = load_checked(run_dir / "config.yaml", [*args.overrides, *(f"train.launcher.{k}={v}" for k, v in flags.items()
                                                                  if v is not None)])
    Pipeline(cfg, run_dir=run_dir, progress=not args.no_progress).train_only()
    print(f"trained: {run_dir / 'model'} (summary: {run_dir / 'model' / 'train_summary.json'})")
    return 0


def _cmd_ls(args) -> int:
    from .models import ALIASES, EMBEDDED, EXTRAS
    from .backends import BACKENDS
    from .curate import CURATORS
    from .methods import METHODS
    from .tasks import TASKS

    for reg in (TASKS, METHODS, BACKENDS, CURATORS):
        print(f"{reg.kind}s: {', '.join(reg.names())}")
    print("embedded models:")
    for m in EMBEDDED.values():
        aliases = [a for a, n in ALIASES.items() if n == m.name]
        pip_extra = f"; pip install 's2distill[{EXTRAS[m.name]}]'" if m.name in EXTRAS else ""
        print(f"  {m.name}{' (' + ', '.join(aliases) + ')' if aliases else ''}: {m.description}"
              f"{f', {m.size / 1e9:.2f} GB' if m.size else ''}{pip_extra}")
    return 0


def _cmd_model(args) -> int:
    from .models import resolve_model

    print(resolve_model(args.name))
    return 0


def _cmd_pairs(args) -> int:
    from .checks import load_checked
    from .judge_pairs import gsm8k_pairs, load_rows, mt_bench_pairs
    from .pipeline import default_backend_factory
    from .rundir import write_jsonl

    cfg = load_checked(data={"model": args.model, "backend": {"name": args.backend}}, overrides=args.overrides)
    if args.kind == "gsm8k":
        rows = load_rows(args.data, ("question", "answer"))[: args.n]
    else:
        rows = load_rows(args.data, ("turns",))[: args.n]
    with default_backend_factory(cfg, "base", {}) as backend:
        out = (gsm8k_pairs(backend, rows, samples=args.samples, seed=args.seed) if args.kind == "gsm8k"
               else mt_bench_pairs(backend, rows, seed=args.seed))
    write_jsonl(Path(args.out), out)
    print(f"wrote {len(out)} pairs from {len(rows)} questions to {args.out}; use them with "
          f"task.name=judge task.options.source=pairs task.options.path={args.out}")
    return 0


def _cmd_export(args) -> int:
    from .export import export_run

    out = export_run(args.run_dir, args.to, args.out, force=args.force, dtype=args.dtype)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) if out.is_dir() else out.stat().st_size
    print(f"wrote {args.to} of {args.run_dir} to {out} ({size / 2**20:.1f} MiB)")
    return 0


def _run_args(sp: argparse.ArgumentParser, with_config: bool = True) -> None:
    if with_config:
        sp.add_argument("config", help="experiment YAML (see configs/)")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. method.n=8 task.n_train=200")
    sp.add_argument("--run-dir", help="run directory (default: runs/<name>)")
    sp.add_argument("--until", help="stop after this stage (data, generate, curate, eval, train)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_run_commands(sub: Any) -> None:
    """run, demo, validate: a config in, a run (or a check) out."""
    sp = sub.add_parser("run", help="run (or resume) an experiment")
    _run_args(sp)
    sp.set_defaults(fn=_cmd_run)
    sp = sub.add_parser("demo", help="distil CoT into System 1 on the embedded model, end to end")
    _run_args(sp, with_config=False)
    sp.set_defaults(fn=_cmd_demo)
    sp = sub.add_parser("experiment", help="several runs from one spec file (configs, overrides, rows, columns), "
                                           "one table across them; resumable")
    sp.add_argument("spec", help="the experiment YAML, e.g. benchmarks/experiments/distill_arithmetic.yaml")
    sp.add_argument("overrides", nargs="*", help="key=value overrides for every run")
    sp.add_argument("--runs", nargs="+", metavar="RUN", help="run only these runs (the result shows every finished one)")
    sp.add_argument("--render", action="store_true", help="run nothing: write the result from the finished runs")
    sp.add_argument("--results", metavar="DIR", help="where NAME.json/.md/.html go (default: the spec's results:)")
    sp.add_argument("--var", action="append", default=[], metavar="K=V", help="a value for ${K} in the overrides")
    sp.add_argument("--list", action="store_true", help="print the runs (folder, config, overrides, finished or not) "
                                                        "and run nothing")
    sp.set_defaults(fn=_cmd_experiment)
    sp = sub.add_parser("validate", help="check a config and the task's data files without running it (no engine "
                                         "starts): errors are the ones `s2distill run` would stop with")
    sp.add_argument("config", nargs="?", help="the config YAML (not needed with --explain)")
    sp.add_argument("overrides", nargs="*")
    sp.add_argument("--explain", metavar="KEY", help="print what a config key is (type, default, help; a section "
                                                     "lists its keys), e.g. --explain eval.max_disagreement")
    sp.set_defaults(fn=_cmd_validate)


def _add_result_commands(sub: Any) -> None:
    """report, compare, eval, verdict, spotcheck: what a finished run says."""
    sp = sub.add_parser("report", help="print the report of a run directory")
    sp.add_argument("run_dir")
    sp.add_argument("--html", action="store_true", help="write a self-contained HTML report (default RUN_DIR/report.html)")
    sp.add_argument("--out", help="where to write the HTML report (implies --html)")
    sp.set_defaults(fn=_cmd_report)
    sp = sub.add_parser("compare", help="one table and one accuracy-vs-tokens plot across run directories")
    sp.add_argument("run_dirs", nargs="+")
    sp.add_argument("--html", metavar="FILE", help="also write the comparison as a self-contained HTML page")
    sp.set_defaults(fn=_cmd_compare)
    sp = sub.add_parser("eval", help="score a finished run's System 1, System 2 and distilled model on new inputs "
                                     "(written to RUN_DIR/evals/<name>/, resumable)")
    sp.add_argument("run_dir")
    sp.add_argument("--data", required=True, metavar="FILE",
                    help="file of inputs, read with the run's field mapping (task.options question_field or template, "
                         "id_field, answer_field, answer_format, ...; Example JSONL for tasks without one); gold "
                         "optional; inputs the run trained on are counted in a warning, not called held-out")
    sp.add_argument("--answer-field", metavar="NAME", help="the gold field of FILE, instead of the run's "
                                                           "task.options.answer_field (for this file only)")
    sp.add_argument("--name", help="output folder under RUN_DIR/evals (default: <file stem>-<content hash>)")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.k=8")
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    sp.set_defaults(fn=_cmd_eval)


def _add_round_commands(sub: Any) -> None:
    """continue, serve, train: a run's next round, its service, its model again."""
    sp = sub.add_parser("continue", help="the next distillation round: the run's unlabeled inputs plus new ones "
                                         "(a serve inbox, whose System 2 samples are reused, or any unlabeled file), "
                                         "trained from the base model, evaluated on the same held-out inputs")
    sp.add_argument("run_dir", help="the run (or round) to continue")
    sp.add_argument("--data", required=True, metavar="FILE",
                    help="RUN_DIR/serve/inbox.jsonl or a file of unlabeled inputs in the run's format")
    sp.add_argument("--run-dir", dest="run_dir_new", metavar="NEW",
                    help="the round's directory (default: RUN_DIR-r<round>, next to RUN_DIR)")
    sp.add_argument("--from-parent-adapter", action="store_true",
                    help="train from the parent's LoRA adapter instead of the frozen base model (System 2, "
                         "curation and calibration still use the base model)")
    sp.add_argument("overrides", nargs="*", help="key=value overrides for this round, e.g. train.epochs=3")
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    sp.set_defaults(fn=_cmd_continue)
    sp = sub.add_parser("verdict", help="print 'ship distilled', 'ship cascade', 'keep System 2' or 'no label-free "
                                        "answer' for a run (exit 0 either ship, 1 keep, 2 no answer or no verdict)")
    sp.add_argument("run_dir", help="a run directory, or one of its evals/<name> folders")
    sp.add_argument("--json", action="store_true", help="the verdict as JSON: kind, threshold, coverage, bound (and "
                                                                  "what it bounds: eval.cascade_risk)")
    sp.add_argument("overrides", nargs="*", help="e.g. eval.max_disagreement=0.05 eval.confident_share=0.8")
    sp.set_defaults(fn=_cmd_verdict)
    sp = sub.add_parser("spotcheck", help="draw informative held-out inputs for you to label (-n), or score a "
                                          "labeled spot-check file (--labels): accuracy with few labels, unbiased")
    sp.add_argument("run_dir")
    sp.add_argument("-n", type=int, default=20, help="about how many inputs to label (default 20)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", help="where to write the inputs to label (default RUN/spotcheck/to_label.jsonl)")
    sp.add_argument("--labels", help="a labeled spot-check file: score every system with it (no model runs)")
    sp.set_defaults(fn=_cmd_spotcheck)

    sp = sub.add_parser("serve", help="serve a trained run as an OpenAI-compatible API through its cascade "
                                      "(distilled model first, System 2 below the calibrated confidence)")
    sp.add_argument("run_dir")
    sp.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--route", choices=["cascade", "system1", "system2"], default="cascade",
                    help="cascade (default), or one path for every request (A/B)")
    sp.add_argument("--threshold", type=float, help="override the calibrated confidence threshold")
    sp.add_argument("--api-key-env", help="require 'Authorization: Bearer $NAME' (the key read from this variable)")
    sp.add_argument("--explore", type=float, default=0.0, metavar="RATE",
                    help="also send this share of the inputs System 1 answered to System 2 in the background, "
                         "for the inbox the next round learns from (default 0)")
    sp.set_defaults(fn=_cmd_serve)

    sp = sub.add_parser("train", help="(re)train a run directory's model from its curate/pairs.jsonl")
    sp.add_argument("run_dir")
    sp.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=50")
    sp.add_argument("--launcher", choices=["local", "accelerate"], help="default: the run's train.launcher.name")
    sp.add_argument("--num-processes", type=int, help="accelerate: processes in all")
    sp.add_argument("--cpu", action="store_true", help="accelerate: CPU processes (gloo) even where GPUs are visible")
    sp.add_argument("--accelerate-config", help="accelerate: your accelerate config YAML, used as-is")
    sp.add_argument("--no-progress", action="store_true", help="no progress bars")
    sp.set_defaults(fn=_cmd_train)


def _add_tool_commands(sub: Any) -> None:
    """ls, pairs, export, model: the toolkit around runs."""
    sp = sub.add_parser("ls", help="list tasks, methods, backends, curators and embedded models")
    sp.set_defaults(fn=_cmd_ls)
    sp = sub.add_parser("pairs", help="build judge pairs from the model's own answers (GSM8K: labelled; "
                                      "MT-bench: consistency only)")
    sp.add_argument("kind", choices=["gsm8k", "mt_bench"])
    sp.add_argument("--data", required=True, help="GSM8K dir/test.jsonl, or MT-bench dir/question.jsonl")
    sp.add_argument("--out", required=True, help="output JSONL")
    sp.add_argument("--n", type=int, default=40, help="questions to answer")
    sp.add_argument("--samples", type=int, default=4, help="GSM8K: answers per question")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--model", default="default")
    sp.add_argument("--backend", default="llamacpp")
    sp.add_argument("overrides", nargs="*", help="backend.key=value overrides")
    sp.set_defaults(fn=_cmd_pairs)
    sp = sub.add_parser("export", help="write a run's result as adapter, merged HF model, GGUF, LoRA GGUF or "
                                       "chat dataset")
    sp.add_argument("run_dir")
    sp.add_argument("--to", required=True, choices=["adapter", "merged", "gguf", "lora-gguf", "dataset"],
                    help="adapter: PEFT dir; merged: HF model dir; gguf: one standalone GGUF (llama-export-lora); "
                         "lora-gguf: llama.cpp LoRA; dataset: chat JSONL (TRL, LLaMA-Factory, axolotl)")
    sp.add_argument("--out", required=True, help="output path (a directory for adapter/merged, else a file)")
    sp.add_argument("--force", action="store_true", help="replace --out if it exists")
    sp.add_argument("--dtype", choices=["bfloat16", "float16", "float32"],
                    help="merged: weights dtype (default: the base's own, bfloat16 for GGUF bases)")
    sp.set_defaults(fn=_cmd_export)
    sp = sub.add_parser("model", help="assemble an embedded model and print its path")
    sp.add_argument("name", nargs="?", default="default")
    sp.set_defaults(fn=_cmd_model)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="s2distill", description="Distil System 2 prompting into System 1 answers.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for add in (_add_run_commands, _add_result_commands, _add_round_commands, _add_tool_commands):
        add(sub)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line; key=value overrides may come before or after the options
    (``run cfg.yaml --run-dir runs/x method.n=8`` as well as ``run cfg.yaml method.n=8 --run-dir runs/x``)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    stray = [r for r in rest if r.startswith("-") or "=" not in r]
    if rest and (stray or not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}"
                     + ("" if hasattr(args, "overrides") else " (this command takes no key=value overrides)"))
    if rest:
        args.overrides = [*args.overrides, *rest]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return args.fn(args)
    except S2DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
