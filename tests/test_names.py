"""Names say what they hold (issue 15): no parameter of the package is called ``extra`` (the free-form
engine flags are ``server_args``, a pip optional-dependency group is a ``pip_extra``) or ``role`` (a backend
is built for its ``weights``: base, teacher or distilled; ``role`` is only a report row's system key)."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "s2distill"


def test_no_parameter_named_extra_or_role():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                a = node.args
                for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
                    if arg.arg in ("extra", "role"):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno} {arg.arg}")
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id == "extra":
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.id} =")
    assert not found, found
