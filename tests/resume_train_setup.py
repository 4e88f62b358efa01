"""The training run that tests/test_train_resume.py kills and reruns (shared with its worker script)."""
from s2distill.train import TrainConfig
from s2distill.types import TrainPair

# 24 optimizer steps of 2 rows, a checkpoint every 4 steps; lora_dropout > 0 so the restored RNG state matters
CFG = TrainConfig(max_steps=24, per_device_batch_size=2, gradient_accumulation_steps=1, learning_rate=5e-3,
                  lora_r=4, lora_alpha=8, lora_dropout=0.1, save_steps=4, save_total_limit=2, threads=1, seed=3)


def pairs() -> list[TrainPair]:
    qs = [(f"What is {a} + {b}?", str(a + b)) for a, b in [(2, 3), (7, 4), (6, 2), (9, 9), (8, 2), (5, 5), (1, 7), (4, 4)]]
    return [TrainPair(example_id=str(i), messages=({"role": "user", "content": q},), target=f"The answer is {a}.")
            for i, (q, a) in enumerate(qs)]
