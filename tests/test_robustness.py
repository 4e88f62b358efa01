"""Robustness evaluation: System 1 and the distilled model on reworded instructions."""
import pytest

from s2distill.backends.fake import FakeBackend
from s2distill.checks import load_checked
from s2distill.errors import ConfigError
from s2distill.pipeline import Pipeline
from s2distill.report import to_markdown
from s2distill.rundir import read_jsonl
from s2distill.tasks.coin_flip import ENDINGS, coin_answer, parse_question


def wording_sensitive(req, j):
    """Right only when the question ends with the Kojima wording; otherwise always 'yes'."""
    text = req.messages[-1]["content"]
    q = text.split("\n")[0]
    parsed = parse_question(q)
    if parsed and ENDINGS[0] in q:
        return coin_answer([f for _, f in parsed[0]])
    return "yes"


def cfg(**eval_over):
    return load_checked(data={
        "name": "rob", "backend": {"name": "fake"}, "task": {"name": "coin_flip", "n_train": 4, "n_eval": 20},
        "method": {"name": "direct", "n": 1, "max_tokens": 8}, "curate": {"name": "none"}, "train": {"enabled": False},
        "eval": {"systems": ["system1"], "rewordings": 3, **eval_over}})


def test_rewordings_scored_per_wording_with_spread(tmp_path):
    c = cfg()
    factory = lambda cfg, weights, trained: FakeBackend(wording_sensitive, model_id="fake")  # noqa: E731
    report = Pipeline(c, run_dir=tmp_path, backend_factory=factory, log=lambda s: None, progress=False).run()
    rob = report["robustness"]["system1"]
    accs = rob["accuracy_per_wording"]
    assert len(accs) == 4 and accs[0] == 1.0  # the configured (Kojima) wording
    assert all(a == 0.5 for a in accs[1:])  # balanced yes/no: always "yes" is right half the time
    assert rob["spread"] == pytest.approx(0.5)
    records = read_jsonl(tmp_path / "eval" / "system1.reworded.jsonl")
    assert len(records) == 60 and {r["meta"]["wording"] for r in records} == {0, 1, 2}
    assert len({r["example_id"] for r in records}) == 60  # each reworded input has its own id
    assert "spread" in to_markdown(report)


def test_adding_rewordings_later_keeps_the_main_eval(tmp_path):
    factory = lambda cfg, weights, trained: FakeBackend(wording_sensitive, model_id="fake")  # noqa: E731
    Pipeline(cfg(rewordings=0), run_dir=tmp_path, backend_factory=factory, log=lambda s: None, progress=False).run()
    logs = []
    Pipeline(cfg(rewordings=2), run_dir=tmp_path, backend_factory=factory, log=logs.append, progress=False).run()
    assert any(m.startswith("[eval_system1] unchanged, skipped") for m in logs)
    assert any(m.startswith("[eval_system1_reworded] running") for m in logs)


def test_rewordings_need_a_task_that_can_reword():
    with pytest.raises(ConfigError, match="at most 0"):
        load_checked(data={"backend": {"name": "fake"}, "task": {"name": "arithmetic"}, "eval": {"rewordings": 2}})
    with pytest.raises(ConfigError, match="at most 4"):
        cfg(rewordings=9)
