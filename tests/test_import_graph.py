"""The package's import graph: no cycle, and no module imports a module of a higher layer.

Every import counts, also the lazy ones inside functions (they are how heavy or optional
modules are kept off ``import s2distill``, not a licence to reach upward), and so does
``importlib.import_module("s2distill.x")``. For the layers, a string naming a package module
(``"s2distill.tasks.gsm8k:GSM8KTask"``, a registry's table or a launcher's ``-m`` target) counts as an
import of that module too: it is one, made when the string is resolved. The cycle test leaves those
strings out (resolved at lookup, they cannot make an import cycle at load time). A new module must be
placed in a layer here.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "s2distill"

# Lowest first. A module may import modules of its own layer or of a lower one. Packages
# (backends, tasks, methods) name all their modules.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("types and helpers", ("s2distill", "errors", "systems", "types", "keys", "registry", "voting", "atomic", "tables", "svgplot",
                           "html_assets")),
    ("models/rundir/config", ("models", "rundir", "config", "teacher", "precision", "stages")),
    ("backends/tasks/methods/curate", ("backends", "tasks", "methods", "curate", "perturb", "distributed",
                                       "judge_pairs")),
    # train/ is a package: recipe, config, rows, weighted, checkpoints, launch, worker
    ("train/evaluate", ("train", "evaluate", "label_free", "cascade", "spotcheck", "export", "stepwise",
                        "fingerprints", "rounds", "retention", "checks", "stepwise_train")),
    # the report is built from a run directory and its resolved config (no pipeline object), so it
    # sits under the pipeline, whose last stage writes it
    ("report", ("report", "report_types", "html_report", "compare", "mdpage", "results")),
    ("pipeline", ("pipeline",)),
    ("commands", ("eval_data", "serve", "continual", "experiment", "cli")),
]


def _name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    short = module.removeprefix("s2distill.") if module != "s2distill" else "s2distill"
    for i, (_, names) in enumerate(LAYERS):
        if short in names or short.split(".")[0] in names and "." in short:
            return i
    raise AssertionError(f"module {module} is in no layer; place it in tests/test_import_graph.py LAYERS")


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    return skip


_MODULE_STRING = re.compile(r"s2distill(\.[A-Za-z_]\w*)*(:[A-Za-z_][\w.]*)?")


def _string_target(node: ast.AST, files: dict) -> str | None:
    """The package module a string constant names (``"s2distill.tasks.gsm8k:GSM8KTask"``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.fullmatch(node.value):
        module = node.value.partition(":")[0]
        return module if module in files else None
    return None


def import_graph(strings: bool = True, src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package modules it imports. ``strings``: also the modules that string constants name."""
    files = {_name(p, src): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_nodes(tree)
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from . import checkpoints` imports a module
                    out.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in files else target)
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module")
                  and node.args and isinstance(node.args[0], ast.Constant)):
                out.add(str(node.args[0].value))
            elif strings and (target := _string_target(node, files)):
                out.add(target)
        graph[mod] = {m for m in out if m in files and m != mod}
    return graph


def test_every_module_has_a_layer_and_no_import_goes_up():
    graph = import_graph()
    up = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
          for m, targets in sorted(graph.items()) for t in sorted(targets) if _layer(t) > _layer(m)]
    assert not up, "upward imports:\n" + "\n".join(up)


def test_no_import_cycle():
    graph = import_graph(strings=False)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_walker_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "s2distill.train.checkpoints" in graph["s2distill.train.recipe"]  # `from . import checkpoints`
    assert "s2distill.registry" in graph["s2distill.backends.pool"]  # inside a function
    assert _layer("s2distill.backends.llamacpp") == _layer("s2distill.tasks.gsm8k") < _layer("s2distill.pipeline")


def test_the_walker_sees_importlib_and_string_targets(tmp_path):
    """A planted upward import through importlib, or through a registry-style string, is an import."""
    planted = tmp_path / "s2distill"
    planted.mkdir()
    (planted / "types.py").write_text('import importlib\n\ndef f():\n    return importlib.import_module("s2distill.pipeline")\n')
    (planted / "errors.py").write_text('TABLE = {"x": "s2distill.pipeline:Pipeline"}\n')
    (planted / "pipeline.py").write_text("")
    graph = import_graph(src=planted)
    assert graph["s2distill.types"] == {"s2distill.pipeline"}
    assert graph["s2distill.errors"] == {"s2distill.pipeline"}
    assert import_graph(strings=False, src=planted)["s2distill.errors"] == set()


def test_no_module_reaches_into_another_objects_private_attributes():
    """``obj._name`` only on ``self`` / ``cls`` / ``super()`` (a subclass extending its base's hook): what another
    module needs is public (e.g. ``Pipeline.run_stage`` and ``Pipeline.generate``, which the stepwise curriculum
    and ``eval --data`` run their stages with)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                    and ast.unparse(node.value) != "super()"):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {ast.unparse(node)}")
    assert not found, found


def test_no_function_is_over_60_lines():
    """A function reads on one screen; a longer one splits along its steps (the training recipe's methods,
    the CLI's command groups, the report's parts)."""
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long


def test_a_stage_inside_a_stage_uses_the_stage_runner_protocol_only():
    """The stepwise curriculum receives the run as a StageRunner: it touches no other member of the pipeline,
    and the Pipeline has every member the protocol names."""
    from s2distill.pipeline import Pipeline
    from s2distill.stages import MEMBERS, StageRunner

    used = {node.attr for node in ast.walk(ast.parse((SRC / "stepwise_train.py").read_text()))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "runner"}
    assert used and used <= set(MEMBERS), used - set(MEMBERS)
    assert set(MEMBERS) == {*StageRunner.__annotations__, *(m for m in vars(StageRunner) if not m.startswith("_"))}
    attrs = set(Pipeline.__init__.__code__.co_names) | set(dir(Pipeline))
    assert set(MEMBERS) <= attrs, set(MEMBERS) - attrs
