"""``s2distill experiment SPEC.yaml``: several runs from one spec file, one table across them.

An experiment is a YAML file (``benchmarks/experiments/*.yaml`` are the project's own; a user writes theirs
the same way)::

    name: depth                       # the result: RESULTS/depth.json, .md, .html
    title: Does CoT distil at every depth?
    config: configs/demo.yaml         # each run's config unless the run names its own
    overrides: [task.n_eval=80]       # every run; ${var} is replaced from ``vars`` (and --var k=v)
    runs:
      - {name: d1, overrides: [task.options.depth=1], labels: {depth: 1}}
      - {name: d2, overrides: [task.options.depth=2], labels: {depth: 2}, cache_from: d1}
    columns: [run, {key: depth, path: labels.depth}, system, n, accuracy, ci95, tokens]

Every run is a normal pipeline run in ``run_root/<name>`` (finished stages are reused, so an experiment can
be stopped and started again; finished runs are kept in ``RESULTS/<name>.partial.json``, or read back from a
committed ``RESULTS/<name>.json`` where there is no partial file). The table has one
row per system of every run, or the rows ``rows:`` picks (``{label, run, system}``); a column is a built-in
name (:data:`BUILTIN`) or ``{key, header, path, format, roles}``, where ``path`` reads the report row
(``row.accuracy``), the run's report (``report.curation.kept``; ``{role}`` is the row's system), the run's
labels (``labels.depth``), another system's row of the same run (``system.system2.accuracy``) or the row's
label (``label``). Paths in the spec are relative to the working directory (a run's config is also looked for
beside the spec file). The JSON keeps every value the table shows and the spec itself, so the markdown is
rendered again from the JSON alone (:func:`render`). ``grid:`` repeats every run and row per setting.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .errors import ConfigError
from .keys import check_keys, did_you_mean
from .tables import Table, ci, num, pct

__all__ = ["BUILTIN", "Column", "Experiment", "RowSpec", "RunSpec", "figure", "load_experiment", "plan", "render",
           "result_of", "run_experiment"]

FORMATS: dict[str, Callable] = {
    "pct": pct, "ci": ci, "num": num, "int": lambda v: "-" if v is None else str(int(v)),
    "str": lambda v: "-" if v is None else str(v), "g": lambda v: "-" if v is None else format(v, "g"),
    "gib": lambda v: "-" if v is None else f"{v / 2**30:.2f}",
    "acc_ci_n": lambda v: f"{pct(v['accuracy'])} ({ci(v['ci95'])}), n={v['n']}" if v else "-",
    "rate_ci": lambda v: f"{pct(v['rate'])} ({ci(v['ci95'])})" if v else "-",
    "wordings": lambda v: " / ".join(pct(a) for a in v["accuracy_per_wording"]) + f" ({pct(v['spread'])})" if v else "-",
}


@dataclass(frozen=True)
class Column:
    key: str  # the value's name in the JSON rows
    header: str = ""  # the table's header (default: the key)
    path: str = ""  # where the value is read: row.X, report.X, labels.X, label (default: row.<key>)
    format: str = "str"  # one of FORMATS
    roles: tuple[str, ...] = ()  # only on these systems' rows (e.g. curation counts on the distilled model's)
    expr: str = ""  # a value computed from the row's other columns, e.g. "abs(estimate - accuracy)" (see _eval)

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ConfigError(f"column '{self.key}': format '{self.format}' is not one of {', '.join(FORMATS)}"
                              f"{did_you_mean(self.format, list(FORMATS))}")
        if self.expr:
            _check_expr(self.expr, self.key)
        for alt in (self.path or "row").split(" or "):
            if alt.split(".")[0] not in ("row", "report", "labels", "label", "system"):
                raise ConfigError(f"column '{self.key}': path '{self.path}' must start with row., report., labels., "
                                  "system.<name>. or be 'label' (alternatives: 'a or b')")


_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.IfExp, ast.Constant, ast.Name,
               ast.Load, ast.Call, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.Gt, ast.GtE, ast.Lt, ast.LtE,
               ast.Eq, ast.NotEq, ast.And, ast.Or, ast.Not)
_EXPR_FUNCS = {"abs": abs, "min": min, "max": max, "round": round}


def _check_expr(expr: str, key: str) -> ast.Expression:
    """An expression of the row's column keys, numbers, strings, arithmetic, comparisons, ``x if c else y`` and
    abs/min/max/round: nothing else parses (no attribute, no subscript, no other call)."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ConfigError(f"column '{key}': expr '{expr}' does not parse ({e.msg})") from None
    for node in ast.walk(tree):
        if not isinstance(node, _EXPR_NODES) or isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in _EXPR_FUNCS):
            raise ConfigError(f"column '{key}': expr '{expr}' uses {type(node).__name__}; fix: column keys, numbers, "
                              f"+ - * /, comparisons, x if c else y and {', '.join(_EXPR_FUNCS)} only")
    return tree


def _eval(expr: str, key: str, values: dict):
    """``expr`` over ``values`` (a row's columns); None when a value it names is None or missing."""
    tree = _check_expr(expr, key)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_EXPR_FUNCS)
    if any(values.get(n) is None for n in names):
        return None
    return eval(compile(tree, key, "eval"), {"__builtins__": {}, **_EXPR_FUNCS}, dict(values))  # noqa: S307 - checked


BUILTIN = {c.key: c for c in (
    Column("label", "row", "label"), Column("run", "run", "labels.run"), Column("system", "system", "row.system"),
    Column("n", "n", "row.n", "int"), Column("accuracy", "accuracy %", "row.accuracy", "pct"),
    Column("ci95", "95% CI", "row.ci95", "ci"), Column("tokens", "mean generated tokens", "row.mean_generated_tokens", "num"),
    Column("calls", "calls per answer", "row.calls_per_answer", "num"),
    Column("agreement_with_system2", "agreement with System 2 %", "report.label_free.{role}.agreement", "pct"),
    Column("kept", "kept for training", "report.curation.kept", "int", ("distilled",)),
    Column("targets_correct", "targets correct (checked afterwards)",
           "report.curation.quality_checked_afterwards.correct_targets", "int", ("distilled",)),
    Column("train_steps", "LoRA steps", "report.train.steps", "int", ("distilled",)),
)}


@dataclass(frozen=True)
class RunSpec:
    name: str
    config: str = ""  # default: the experiment's
    overrides: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict)  # values for the table (``labels.X``), e.g. {depth: 1}
    cache_from: str = ""  # start with this run's sample cache (identical requests are answered from it)
    run_name: str = ""  # the config's ``name`` (default: <experiment>-<run>, in a grid <setting>-<run>)
    base_only: bool = False  # the base model's evaluations only: no sampling of train inputs, no training


@dataclass(frozen=True)
class RowSpec:
    label: str
    run: str
    system: str
    each: str = ""  # report.<path> of a list (or one mapping): one row per item, its ``row.X`` columns read the item

    def __post_init__(self):
        if self.each and not self.each.startswith("report."):
            raise ConfigError(f"row '{self.label}': each '{self.each}' must be a report path (report.X.Y); "
                              "fix: e.g. each: report.stepwise.stages")

    @property
    def key(self) -> str:
        """Where a finished run keeps this row's items (``each`` rows only)."""
        return f"{self.system}|{self.each}|{self.label}"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    runs: tuple[RunSpec, ...]
    intro: str = ""  # under the title; {key} is filled from ``setup``
    config: str = ""
    overrides: tuple[str, ...] = ()
    vars: dict = field(default_factory=dict)
    setup: dict = field(default_factory=dict)  # {key: config key} read from the first run's config, for the intro
    run_root: str = ""  # default: runs/experiments/<name>
    results: str = ""  # default: the run root
    rows: tuple[RowSpec, ...] = ()  # default: every system of every run
    columns: tuple[Column, ...] = ()  # default: run, system, n, accuracy, ci95, tokens
    notes: tuple[str, ...] = ()
    run_lines: bool = True  # a line per run under the table: inputs, curation, training
    plot: dict = field(default_factory=dict)  # {x, y, ci, y_label}: column keys of the accuracy-vs-tokens plot
    grid: tuple[dict, ...] = ()  # settings: every run and row is repeated per setting (see :func:`_expand`)
    source: str = ""  # the spec file (a config path not found from the working directory is tried beside it)

    def __post_init__(self):
        names = [r.name for r in self.runs]
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"experiment '{self.name}': runs need unique names (got {names}); fix: name each run")
        for r in self.runs:
            if not (r.config or self.config):
                raise ConfigError(f"run '{r.name}' has no config; fix: give the experiment or the run a config: path")
            if r.cache_from and r.cache_from not in names[:names.index(r.name)]:
                raise ConfigError(f"run '{r.name}': cache_from '{r.cache_from}' is not a run before it ({names})")
        for row in self.rows:
            if row.run not in names:
                raise ConfigError(f"row '{row.label}': run '{row.run}' is not one of {names}{did_you_mean(row.run, names)}")

    @property
    def root(self) -> Path:
        """Where the runs' folders go."""
        return Path(self.run_root or Path("runs") / "experiments" / self.name)

    @property
    def table_columns(self) -> tuple[Column, ...]:
        return self.columns or tuple(BUILTIN[k] for k in ("run", "system", "n", "accuracy", "ci95", "tokens"))


def _column(c) -> Column:
    if isinstance(c, str):
        if c not in BUILTIN:
            raise ConfigError(f"unknown column '{c}'{did_you_mean(c, list(BUILTIN))}; fix: one of {', '.join(BUILTIN)}, "
                              "or {key, header, path, format}")
        return BUILTIN[c]
    check_keys(c, [f.name for f in fields(Column)], lambda k: f"unknown column key '{k}'")
    return Column(**{**c, "roles": tuple(c.get("roles", ()))})


GRID_KEYS = ("name", "labels", "overrides", "config")


def _expand(data: dict, where: str) -> dict:
    """A grid of settings: each run becomes ``<setting>/<run>`` (its folder run_root/<setting>/<run>, its config's
    name ``<setting>-<run>``) with the setting's overrides first and the label ``setting``; each row is repeated
    per setting. A setting: ``{name, labels, overrides, config}``."""
    grid, out_runs, out_rows = data.get("grid") or [], [], []
    for g in grid:
        check_keys(g, GRID_KEYS, lambda k: f"{where}: unknown grid key '{k}'")
        if not g.get("name"):
            raise ConfigError(f"{where}: a grid setting needs a name")
        for r in data["runs"]:
            out_runs.append({**r, "name": f"{g['name']}/{r['name']}",
                             "run_name": r.get("run_name") or f"{g['name']}-{r['name']}",
                             "config": r.get("config") or g.get("config", ""),
                             "overrides": [*g.get("overrides", ()), *r.get("overrides", ())],
                             "labels": {"setting": g["name"], **(g.get("labels") or {}), **(r.get("labels") or {})},
                             **({"cache_from": f"{g['name']}/{r['cache_from']}"} if r.get("cache_from") else {})})
        out_rows += [{**row, "run": f"{g['name']}/{row['run']}"} for row in data.get("rows", ())]
    return {**data, "runs": out_runs, "rows": out_rows, "grid": tuple(grid)} if grid else data


def _parse(data: dict, where: str) -> Experiment:
    known = [f.name for f in fields(Experiment)]
    check_keys(data, known, lambda k: f"{where}: unknown experiment key '{k}'")
    if not data.get("name") or not data.get("title") or not data.get("runs"):
        raise ConfigError(f"{where}: an experiment needs name, title and runs; fix: see `s2distill experiment --help`")
    data = _expand(data, where)
    runs = []
    for r in data["runs"]:
        check_keys(r, [f.name for f in fields(RunSpec)], lambda k: f"{where}: unknown run key '{k}'")
        runs.append(RunSpec(**{**r, "overrides": tuple(r.get("overrides", ()))}))
    rows = []
    for r in data.get("rows", ()):
        check_keys(r, ["label", "run", "system", "each"], lambda k: f"{where}: unknown row key '{k}'")
        rows.append(RowSpec(**r))
    return Experiment(**{**data, "runs": tuple(runs), "rows": tuple(rows), "overrides": tuple(data.get("overrides", ())),
                         "columns": tuple(_column(c) for c in data.get("columns", ())),
                         "notes": tuple(data.get("notes", ()))})


def load_experiment(path: str | Path, var: Sequence[str] = ()) -> Experiment:
    """The spec at ``path``; ``var``: ``k=v`` values for ``${k}`` in the overrides (they replace ``vars``)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"experiment spec {p} not found; fix: pass a YAML file (e.g. benchmarks/experiments/*.yaml)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML ({e}); fix: quote a value that holds ${{...}}, [, ] or :") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: an experiment spec is a mapping (name, title, runs, ...)")
    for v in var:
        if "=" not in v:
            raise ConfigError(f"--var {v}: write it as key=value")
        k, _, val = v.partition("=")
        data["vars"] = {**(data.get("vars") or {}), k: val}
    return _parse({**data, "source": str(p)}, str(p))


def _subst(text: str, vars_: dict) -> str:
    def one(m):
        if m.group(1) not in vars_:
            raise ConfigError(f"${{{m.group(1)}}} is not a var (vars: {', '.join(vars_) or 'none'}); fix: add it to "
                              "the spec's vars or pass --var NAME=VALUE")
        return str(vars_[m.group(1)])

    return re.sub(r"\$\{(\w+)\}", one, text)


def _read(path: str, ctx: dict):
    """The value at ``path`` in ``ctx`` (``a or b``: the first alternative that is there)."""
    for alt in path.split(" or "):
        head, *rest = alt.split(".")
        obj = ctx.get(head)
        for part in rest:
            obj = obj.get(part.replace("{role}", ctx["role"])) if isinstance(obj, dict) else None
        if obj is not None:
            return obj
    return None


def _values(exp: Experiment, ctx: dict) -> dict:
    role = ctx["role"]
    vals = {c.key: _read(c.path or f"row.{c.key}", ctx) if not c.roles or role in c.roles else None
            for c in exp.table_columns if not c.expr}
    for c in exp.table_columns:  # computed columns, in order (one may use an earlier one)
        if c.expr:
            vals[c.key] = _eval(c.expr, c.key, vals) if not c.roles or role in c.roles else None
    return {c.key: vals[c.key] for c in exp.table_columns}


def run_values(exp: Experiment, report: dict, labels: dict) -> dict:
    """Every column's value for each system of one run's report: {role: {"system", "values"}}."""
    systems = {x["role"]: x for x in report.get("rows", [])}
    return {r["role"]: {"system": r["system"], "values": _values(exp, {
        "row": r, "report": report, "labels": labels, "role": r["role"], "label": r["system"], "system": systems})}
        for r in report.get("rows", [])}


def each_values(exp: Experiment, run: str, report: dict, labels: dict) -> dict:
    """The items of the run's ``each`` rows: {row key: [{"label", "values"}]} (an item's label: the row's label
    with the item's fields filled in)."""
    systems = {x["role"]: x for x in report.get("rows", [])}
    out = {}
    for spec in (r for r in exp.rows if r.each and r.run == run):
        items = _read(spec.each, {"report": report, "role": spec.system})
        items = [items] if isinstance(items, dict) else items or []
        out[spec.key] = []
        for it in items:
            try:
                label = spec.label.format(**it)
            except (KeyError, IndexError, ValueError) as e:
                raise ConfigError(f"row '{spec.label}': the items of {spec.each} have no field {e}; fix: name one of "
                                  f"{', '.join(it)}") from None
            out[spec.key].append({"label": label, "values": _values(exp, {
                "row": it, "report": report, "labels": labels, "role": spec.system, "label": label, "system": systems})})
    return out


def run_info(cfg, report: dict) -> dict:
    c, t = report.get("curation") or {}, report.get("train") or {}
    q = c.get("quality_checked_afterwards") or {}
    return {"n_train": cfg.task.n_train, "n_eval": cfg.task.n_eval, "kept": c.get("kept"), "rejected": c.get("rejected"),
            "targets_correct": q.get("correct_targets"), "targets_checked": q.get("checked"),
            "train_steps": t.get("steps"), "peak_rss_bytes": t.get("peak_rss_bytes"),
            "stages_wall_s": report.get("stages_wall_s")}


def _one_run(exp: Experiment, spec: RunSpec, root: Path, overrides: Sequence[str], log, factory) -> tuple[dict, object]:
    from .config import load_config
    from .pipeline import Pipeline
    from .report import build_report
    from .systems import BASE

    ov = [_subst(o, exp.vars) for o in (*exp.overrides, *spec.overrides, *overrides)]
    path = Path(_subst(spec.config or exp.config, exp.vars))
    if not path.is_absolute() and not path.exists() and exp.source and (Path(exp.source).parent / path).exists():
        path = Path(exp.source).parent / path  # a config beside the spec file
    cfg = load_config(path, [f"name={spec.run_name or f'{exp.name}-{spec.name}'}", *ov])
    p = Pipeline(cfg, run_dir=root / spec.name, log=log, **({"backend_factory": factory} if factory else {}))
    if spec.cache_from:
        share_cache(root / spec.cache_from, p.rd.path)
    note = None
    try:
        report = p.evaluate_base(tuple(x for x in cfg.eval.systems if x in BASE)) if spec.base_only else p.run()
    except ConfigError as e:  # e.g. curation kept nothing: the rows of the stages that ran still stand
        note, report = f"{spec.name}: not trained ({e})", build_report(p.rd, p.cfg, p.task)
    labels = {"run": spec.name, **spec.labels}
    return {"overrides": ov, "config": spec.config or exp.config, "labels": labels, "note": note,
            "info": run_info(cfg, report), "systems": run_values(exp, report, labels),
            "each": each_values(exp, spec.name, report, labels)}, cfg


def share_cache(src_run: Path, dst_run: Path) -> None:
    """Start run folder ``dst_run`` with ``src_run``'s samples (identical requests are answered from the cache);
    a run that has its own cache keeps it."""
    src, dst = Path(src_run) / "cache" / "samples.jsonl", Path(dst_run) / "cache" / "samples.jsonl"
    if src.exists() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _setup(exp: Experiment, cfg) -> dict:
    out = {}
    for k, key in exp.setup.items():
        obj = cfg
        for part in key.split("."):
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
        out[k] = obj
    return out


def plan(exp: Experiment, overrides: Sequence[str] = (), results: str | Path | None = None) -> str:
    """What ``s2distill experiment`` would run: each run's folder, config and overrides, and whether it finished."""
    root = exp.root
    partial = Path(results or exp.results or root) / f"{exp.name}.partial.json"
    committed = partial.with_name(f"{exp.name}.json")
    done = json.loads(partial.read_text()) if partial.is_file() else \
        _finished_runs(json.loads(committed.read_text())) if committed.is_file() else {}
    lines = [f"{exp.name}: {len(exp.runs)} runs, results in {partial.parent}"]
    for r in exp.runs:
        ov = " ".join(_subst(o, exp.vars) for o in (*exp.overrides, *r.overrides, *overrides))
        state = "finished" if r.name in done else "to run"
        lines.append(f"  {r.name} [{state}{', base only' if r.base_only else ''}] {root / r.name}: "
                     f"{_subst(r.config or exp.config, exp.vars)} {ov}".rstrip())
    return "\n".join(lines)


def run_experiment(exp: Experiment, only: Sequence[str] = (), overrides: Sequence[str] = (), render_only: bool = False,
                   results: str | Path | None = None, log=None, backend_factory=None) -> tuple[dict, Path]:
    """Run the experiment's runs (``only``: these), keep each finished one in ``RESULTS/<name>.partial.json``, then
    write the result from every finished run; returns (result JSON, results folder). ``backend_factory``: as for
    ``Pipeline`` (default: the engines the configs name)."""
    from .results import write_result

    root = exp.root
    out = Path(results or exp.results or root)
    partial, committed = out / f"{exp.name}.partial.json", out / f"{exp.name}.json"
    prev = json.loads(committed.read_text()) if committed.is_file() else {}
    done = json.loads(partial.read_text()) if partial.is_file() else _finished_runs(prev)
    names = [r.name for r in exp.runs]

    def picks(x: str, name: str) -> bool:  # a run's name, or a grid setting's (all its runs)
        return name == x or name.startswith(x + "/")

    def picked(name: str) -> bool:
        return any(picks(x, name) for x in only)

    if bad := [x for x in only if not any(picks(x, n) for n in names)]:
        raise ConfigError(f"--runs {bad[0]}: not a run of {exp.name}{did_you_mean(bad[0], names)} (runs: {names})")
    for spec in exp.runs if not render_only else ():
        if only and not picked(spec.name):
            continue
        done[spec.name], cfg = _one_run(exp, spec, root, overrides, log, backend_factory)
        done[spec.name]["setup"] = _setup(exp, cfg)
        out.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(done, indent=2))
    if not done:
        raise ConfigError(f"{exp.name}: no run has finished yet; fix: run it without --render first")
    res = result_of(exp, {n: done[n] for n in names if n in done}, list(overrides))
    if prev.get("notes_added_after_the_run"):  # a person's notes stay with the table they were written about
        res["notes_added_after_the_run"] = prev["notes_added_after_the_run"]
    written = write_result(exp.name, res, render(res), figure(res), out, Path.cwd())
    return written, out


def _finished_runs(res: dict) -> dict:
    """The runs of a committed result, as the partial file keeps them: on a machine without the partial file
    (a fresh clone), running some of an experiment's runs adds them to the committed table, not replaces it."""
    if res.get("script") != "experiment":
        return {}
    done: dict = {}
    for n, r in res.get("runs", {}).items():
        note = next((x for x in res.get("run_notes", []) if x.startswith(f"{n}: ")), None)
        done[n] = {**r, "note": note, "setup": res.get("setup", {}), "systems": {}, "each": {}}
    for row in res.get("rows", []):
        if row["run"] in done and row.get("each"):  # an item of an ``each`` row
            key = RowSpec(row["template"], row["run"], row["role"], row["each"]).key
            done[row["run"]]["each"].setdefault(key, []).append({"label": row["label"], "values": row["values"]})
        elif row["run"] in done:
            label = row["label"]
            system = label[len(row["run"]) + 2:] if label.startswith(f"{row['run']}: ") else row["role"]
            done[row["run"]]["systems"][row["role"]] = {"system": system, "values": row["values"]}
    return done


def result_of(exp: Experiment, done: dict, overrides: list[str]) -> dict:
    """The result JSON: the spec, each finished run's info and the table's rows (values, not strings)."""
    picks = exp.rows or [RowSpec(f"{n}: {s['system']}", n, role) for n, d in done.items() for role, s in d["systems"].items()]
    rows = []
    for p in (p for p in picks if p.run in done):  # a run not finished yet has no rows
        if p.each:  # one row per item (none when the run's report has no such list)
            items = [(it["label"], dict(it["values"]), {"each": p.each, "template": p.label})
                     for it in (done[p.run].get("each") or {}).get(p.key, [])]
        else:
            s = done[p.run]["systems"].get(p.system)
            items = [(p.label, dict(s["values"]) if s else {c.key: None for c in exp.table_columns}, {})]
        for label, vals, each in items:
            for c in exp.table_columns:  # the row's own label, and a run's labels on a row it did not run
                if c.path == "label":
                    vals[c.key] = label
            rows.append({"label": label, "run": p.run, "role": p.system, **each, "values": vals})
    first = next(iter(done.values()))
    notes = [d["note"] for d in done.values() if d.get("note")]
    return {"script": "experiment", "experiment": _spec_json(exp), "setup": first.get("setup", {}), "rows": rows,
            "runs": {n: {k: d[k] for k in ("config", "overrides", "labels", "info")} for n, d in done.items()},
            "run_notes": notes, "overrides": overrides}


def _spec_json(exp: Experiment) -> dict:
    d = asdict(exp)
    d["columns"] = [asdict(c) for c in exp.table_columns]
    return d


def _run_line(name: str, info: dict) -> str:
    if info.get("kept") is None and info.get("train_steps") is None:  # the base model's evaluations only
        return f"- {name}: evaluation only" + (f" ({info['n_eval']} held-out inputs)" if info.get("n_eval") else "")
    parts = [f"{info['n_train']} unlabeled inputs"]
    if info.get("kept") is not None:
        q = f" ({info['targets_correct']}/{info['targets_checked']} targets correct, checked afterwards)" \
            if info.get("targets_checked") else ""
        parts.append(f"kept {info['kept']} after curation{q}")
    if info.get("train_steps") is not None:
        rss = info.get("peak_rss_bytes")
        parts.append(f"{info['train_steps']} LoRA steps" + (f", peak RSS {rss / 2**30:.2f} GiB" if rss else ""))
    # a stepwise curriculum's train_stage{k}/eval_stage{k} run inside the train stage: counted in its time
    wall = sum(v for k, v in (info.get("stages_wall_s") or {}).items() if v and not re.fullmatch(r"(train|eval)_stage\d+", k))
    if wall:
        parts.append(f"stages {wall / 60:.1f} min")
    return f"- {name}: " + "; ".join(parts)


def render(res: dict) -> str:
    """The markdown of an experiment's result, from its JSON alone."""
    e = res["experiment"]
    cols = [Column(**{**c, "roles": tuple(c["roles"])}) for c in e["columns"]]
    body = [[FORMATS[c.format](r["values"].get(c.key)) for c in cols] for r in res["rows"]]
    align = "".join("r" if c.format in ("pct", "num", "int", "g", "gib") else "l" for c in cols)
    lines = [f"# {e['title']}", ""]
    if e["intro"]:
        lines += [e["intro"].strip().format(**res.get("setup", {})), ""]
    lines.append(Table([c.header or c.key for c in cols], body, align=align).markdown())
    bullets = [f"- {n}" for n in (*res.get("run_notes", []), *e["notes"])]
    if e["run_lines"]:
        bullets += [_run_line(n, r["info"]) for n, r in res["runs"].items()]
    return "\n".join(lines + ([""] + bullets if bullets else []))


def figure(res: dict) -> str:
    """The accuracy-vs-tokens plot of the rows (``plot``: which column keys are x, y and the interval)."""
    from .svgplot import Point, accuracy_tokens_svg, color_of

    pl = res["experiment"].get("plot") or {}
    x, y, c = pl.get("x", "tokens"), pl.get("y", "accuracy"), pl.get("ci", "ci95")
    pts = [Point(label=r["label"], x=r["values"][x], y=r["values"][y], lo=(r["values"].get(c) or [None])[0],
                 hi=(r["values"].get(c) or [None, None])[1], color=color_of(r["role"], i))
           for i, r in enumerate(res["rows"]) if r["values"].get(x) is not None and r["values"].get(y) is not None]
    return accuracy_tokens_svg(pts, width=760, height=440, y_label=pl.get("y_label", "accuracy % (95% CI)")) if pts else ""
