"""Train a tiny model with checkpoints (for the kill -9 resume test); optionally slowed per step so a
test can kill it between checkpoints: python train_kill_worker.py BASE OUT SLOW_S"""
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))

from resume_train_setup import CFG, pairs  # noqa: E402

from s2distill.train import train_lora  # noqa: E402

base, out, slow = sys.argv[1], sys.argv[2], float(sys.argv[3])
if slow:
    import transformers

    step = transformers.Trainer.training_step

    def slowed(self, *a, **kw):  # real training steps, each made slower so the kill lands mid-run
        time.sleep(slow)
        return step(self, *a, **kw)

    transformers.Trainer.training_step = slowed
summary = train_lora(pairs(), base, out, CFG, progress=False)
print("resumed_from_step", summary["resumed_from_step"], "examples_seen", summary["examples_seen"], flush=True)
