"""The Task contract (s2distill.tasks.base): a task subclasses Task; optional abilities are mixins the
consumers test with isinstance, and a missing one is an error naming the fix."""
from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from s2distill.checks import load_checked
from s2distill.errors import ConfigError
from s2distill.methods.cot import shots
from s2distill.perturb import InputPerturbation, can_swap
from s2distill.tasks import TASKS
from s2distill.tasks import make_task
from s2distill.tasks.base import (FewShot, FileInputs, LocalData, Pairwise, Perturbable, RephraseFewShot,
                                  SourceFingerprint, Sycophancy, Task)
from s2distill.types import Example


@dataclass
class NoOptions:
    pass


class Duck:  # has the methods, is not a Task
    Options = NoOptions

    def __init__(self, options):
        pass

    def load(self, split, n, seed=0):
        return []

    def extract(self, text):
        return text


class Half(Task):  # a Task without extract
    Options = NoOptions

    def __init__(self, options):
        pass

    def load(self, split, n, seed=0):
        return []


class Plain(Task):  # the whole required contract, no optional ability
    Options = NoOptions

    def __init__(self, options):
        pass

    def load(self, split, n, seed=0):
        return [Example(f"{split}{i}", f"q{i}", "1") for i in range(max(n, 0))]

    def extract(self, text):
        return text.strip() or None


@pytest.fixture
def plugin_module(monkeypatch):
    mod = types.ModuleType("contract_tasks")
    mod.Duck, mod.Half, mod.Plain = Duck, Half, Plain
    monkeypatch.setitem(sys.modules, "contract_tasks", mod)
    return mod


def test_a_task_must_subclass_task(plugin_module):
    with pytest.raises(ConfigError, match="not a subclass of s2distill.tasks.base.Task; fix: `class MyTask\\(Task\\)`"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "contract_tasks:Duck"}})
    with pytest.raises(ConfigError, match="needs extract"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "contract_tasks:Half"}})
    cfg = load_checked(data={"backend": {"name": "fake"}, "task": {"name": "contract_tasks:Plain"}, "method": {"few_shot": 0}})
    assert isinstance(make_task(cfg.task), Task)


def test_a_missing_ability_is_an_error_naming_the_fix(plugin_module):
    task = Plain(NoOptions())
    with pytest.raises(ConfigError, match="needs a task with worked exemplars.*set method.few_shot=0"):
        shots(task, 2)
    assert shots(task, 0) == []
    with pytest.raises(ConfigError, match="needs a Perturbable task.*use curate.name=self_consistency"):
        InputPerturbation()(task, [], [])
    assert not can_swap(task)
    with pytest.raises(ConfigError, match="eval.both_orders needs a pairwise judge task"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "contract_tasks:Plain"},
                          "method": {"few_shot": 0}, "eval": {"both_orders": True}})


def test_the_built_in_tasks_declare_their_abilities():
    has = {name: {m.__name__ for m in (FewShot, RephraseFewShot, Perturbable, Pairwise, Sycophancy, LocalData,
                                       FileInputs, SourceFingerprint) if issubclass(TASKS.get(name), m)}
           for name in TASKS.names()}
    assert has["judge"] >= {"Pairwise", "Perturbable", "LocalData"} and "FewShot" not in has["judge"]
    assert has["last_letter"] >= {"RephraseFewShot", "FewShot", "Perturbable"}
    assert has["coin_flip"] >= {"RephraseFewShot", "Perturbable"}
    assert has["triviaqa_opinion"] >= {"Sycophancy"}
    assert has["dataset"] >= {"FileInputs", "SourceFingerprint", "RephraseFewShot", "LocalData"}
    assert has["arithmetic"] >= {"FewShot", "LocalData"} and "Perturbable" not in has["arithmetic"]
    assert all(issubclass(TASKS.get(n), Task) for n in TASKS.names())


class LooseCurator:  # a callable with the right shape, not a Curator
    def __init__(self, **_):
        pass

    def __call__(self, task, examples, traces):
        return [], []


def test_a_curator_must_subclass_curator(plugin_module):
    from s2distill.curate import Curator, Expanding, NoFilter
    from s2distill.perturb import InputPerturbation

    plugin_module.LooseCurator = LooseCurator
    with pytest.raises(ConfigError, match="not a subclass of s2distill.curate.Curator; fix: `class MyCurator"):
        load_checked(data={"backend": {"name": "fake"}, "curate": {"name": "contract_tasks:LooseCurator"}})

    class Mine(NoFilter):
        name = "mine"

    plugin_module.Mine = Mine
    cfg = load_checked(data={"backend": {"name": "fake"}, "curate": {"name": "contract_tasks:Mine"}})
    assert cfg.curate.name == "contract_tasks:Mine" and issubclass(Mine, Curator)
    assert issubclass(InputPerturbation, Expanding) and not issubclass(NoFilter, Expanding)


def test_a_curator_takes_its_own_options_from_curate_options(plugin_module):
    """curate.options is parsed by the curator's Options dataclass and passed as keyword arguments; a curator
    without Options refuses a non-empty section."""
    from dataclasses import dataclass

    from s2distill.curate import SelfConsistency, build_curator

    class Strict(SelfConsistency):
        @dataclass(frozen=True)
        class Options:
            min_share: float = 0.9
            label: str = "strict"

        def __init__(self, min_share: float = 0.9, label: str = "", **kw):
            super().__init__(**kw)
            self.min_share, self.label = min_share, label

    plugin_module.Strict = Strict
    cfg = load_checked(data={"backend": {"name": "fake"}, "curate": {"name": "contract_tasks:Strict", "min_votes": 3,
                                                                     "options": {"min_share": 0.8}}})
    cur = build_curator(cfg.curate)
    assert (cur.min_share, cur.label, cur.min_votes) == (0.8, "strict", 3)
    with pytest.raises(ConfigError, match="unknown option curate.options.min_shar for curator .*did you mean 'min_share'"):
        load_checked(data={"backend": {"name": "fake"}, "curate": {"name": "contract_tasks:Strict",
                                                                   "options": {"min_shar": 0.8}}})
    with pytest.raises(ConfigError, match="curator 'self_consistency' takes no curate.options"):
        load_checked(data={"backend": {"name": "fake"}, "curate": {"options": {"x": 1}}})


def test_a_method_is_one_object_and_a_bare_run_function_still_works(plugin_module):
    from s2distill.methods import Method, calls_per_sample, method_of
    from s2distill.methods.prompts import Prompt

    def run(task, examples, backend, params, cfg=None):
        return []

    plugin_module.TWO_STEP = Method("two_step", run, {"ask": Prompt("Q: {question}", ("question",))}, ("prompts",),
                                    steps=lambda cfg: 2)
    plugin_module.bare = run
    cfg = load_checked(data={"backend": {"name": "fake"}, "method": {"name": "contract_tasks:TWO_STEP", "few_shot": 0}})
    assert calls_per_sample(cfg.method) == 2 and method_of("contract_tasks:TWO_STEP").prompts["ask"].default
    with pytest.raises(ConfigError, match="method.options.prompts.ask lacks \\{question\\}"):
        load_checked(data={"backend": {"name": "fake"}, "method": {"name": "contract_tasks:TWO_STEP", "few_shot": 0,
                                                                  "options": {"prompts": {"ask": "no field"}}}})
    bare = load_checked(data={"backend": {"name": "fake"}, "method": {"name": "contract_tasks:bare", "few_shot": 0}})
    assert calls_per_sample(bare.method) == 1 and method_of("contract_tasks:bare").run is run
    assert all(isinstance(method_of(n), Method) for n in ("direct", "cot", "rar", "s2a", "bsm"))


def test_no_module_probes_a_component_with_getattr():
    """Abilities are types: no getattr/hasattr on a task, method, curator or backend object in src/ (the
    consumers use isinstance or the declared attribute)."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "s2distill"
    names = {"task", "curator", "backend", "method", "module", "t"}
    found = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in names):
                found.append(f"{path.relative_to(src)}:{node.lineno} {ast.unparse(node)}")
    assert not found, found


def test_tasks_with_a_shared_answer_format_compose_it():
    """The hint, System 1 instruction, extraction and normalisation of a number, yes/no or file-format task come
    from its AnswerFormat (tasks.base.Formatted), not restated per task."""
    from s2distill.config import TaskConfig
    from s2distill.tasks import make_task
    from s2distill.tasks.answers import answer_format
    from s2distill.tasks.arithmetic import ArithmeticTask
    from s2distill.tasks.base import Formatted
    from s2distill.tasks.coin_flip import CoinFlipTask
    from s2distill.tasks.dataset import DatasetTask
    from s2distill.tasks.gsm8k import GSM8KTask

    for cls in (ArithmeticTask, GSM8KTask, CoinFlipTask, DatasetTask):
        assert issubclass(cls, Formatted) and "extract" not in vars(cls), cls
        assert not {"answer_hint", "answer_kind"} & set(vars(cls)), cls
    number = answer_format("number")
    t = make_task(TaskConfig(name="arithmetic"))
    assert (t.answer_hint, t.direct_instruction, t.answer_kind) == (number.hint, number.instruction, "number")
    assert t.extract("so 3 + 4 = 7. The answer is 7.") == "7" and t.score("7.0", "7")
    d = make_task(TaskConfig(name="dataset", options={"path": "examples/own_yes_no.jsonl", "question_field": "claim",
                                                      "id_field": "key", "answer_format": "yes_no",
                                                      "instruction": "Reply yes or no."}))
    assert (d.answer_hint, d.direct_instruction) == ("<yes or no>", "Reply yes or no.")
