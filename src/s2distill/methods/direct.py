"""System 1: ask for the answer only."""
from __future__ import annotations

from . import Method, single_step


def run(task, examples, backend, params, cfg=None):
    return single_step("direct", "answer", task, examples, backend, [task.system1_messages(e) for e in examples],
                       params)


METHOD = Method("direct", run)
