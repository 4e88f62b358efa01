"""Run a pipeline on a slow fake backend; used by the kill -9 resume test."""
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))

from fakes import arithmetic_oracle, factory  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.pipeline import Pipeline  # noqa: E402

run_dir, log_path, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
cfg = load_config(data={"name": "resume", "backend": {"name": "fake"}, "task": {"n_train": 30, "n_eval": 5},
                        "method": {"n": 4}, "train": {"enabled": False}, "eval": {"systems": ["system1"]}})
Pipeline(cfg, run_dir=run_dir, backend_factory=factory(arithmetic_oracle(), delay, log_path), progress=False).run()
