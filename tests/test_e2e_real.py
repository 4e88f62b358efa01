"""End to end on the real embedded model: llama-server generation, curation, real LoRA
steps through TRL, LoRA GGUF export, and the distilled model served by llama-server."""
import json

import pytest
from conftest import requires_server

from s2distill.config import load_config
from s2distill.pipeline import Pipeline
from s2distill.rundir import read_jsonl

pytestmark = [requires_server, pytest.mark.slow]


def test_demo_pipeline_tiny_real(tmp_path):
    pytest.importorskip("trl")
    cfg = load_config("configs/demo.yaml", [
        "name=e2e", "task.n_train=8", "task.n_eval=4", "method.n=2", "method.max_tokens=96",
        "curate.min_agreement=0.5", "curate.min_votes=1", "backend.parallel=4", "eval.k=2",
        "train.max_steps=2", "train.per_device_batch_size=2", "train.gradient_accumulation_steps=1"])
    report = Pipeline(cfg, run_dir=tmp_path, progress=False).run()
    rows = {r["role"]: r for r in report["rows"]}
    assert set(rows) == {"system1", "system2", "system2_maj", "distilled"}
    assert all(r["n"] == 4 for r in rows.values())
    assert rows["system2"]["mean_generated_tokens"] > 3 * rows["system1"]["mean_generated_tokens"]
    assert rows["distilled"]["mean_generated_tokens"] < rows["system2"]["mean_generated_tokens"]
    assert rows["system2_maj"]["calls_per_answer"] == 2
    loss = read_jsonl(tmp_path / "model" / "loss.jsonl")
    assert len([r for r in loss if "loss" in r]) == 2
    assert (tmp_path / "model" / "distilled-lora.gguf").stat().st_size > 1_000_000
    assert (tmp_path / "model" / "adapter" / "adapter_config.json").exists()
    summary = json.loads((tmp_path / "model" / "train_summary.json").read_text())
    assert summary["steps"] == 2
    # every sample of the run is in the cache exactly once
    keys = [json.loads(line)["key"] for line in open(tmp_path / "cache" / "samples.jsonl")]
    assert len(keys) == len(set(keys)) == 8 * 2 + 4 + 4 + 4 * 2 + 4
    # a second run skips everything
    logs = []
    Pipeline(cfg, run_dir=tmp_path, progress=False, log=logs.append).run()
    assert not any("running" in m for m in logs)
    # label-free numbers and a verdict, from the maj@k samples the run drew
    lf = report["label_free"]
    assert lf["distilled"]["n"] == 4 and 0 <= lf["distilled"]["agreement"] <= 1
    assert 0 < lf["system2_maj"]["mean_vote_share"] <= 1 and report["verdict"]["decision"] in ("ship", "cascade", "keep", "no_answer")
    # the trained run on new, unlabeled inputs (real llama-server, base and base + LoRA GGUF); resumable
    from s2distill.eval_data import eval_on_file
    from s2distill.tasks.arithmetic import ArithmeticTask

    data = tmp_path / "new.jsonl"
    data.write_text("".join(json.dumps({"id": e.id, "question": e.question}) + "\n"
                            for e in ArithmeticTask().load("eval", 7, 5)[4:]))
    rep, out = eval_on_file(tmp_path, data, progress=False)
    rows = {r["role"]: r for r in rep["rows"]}
    assert set(rows) == {"system1", "system2", "system2_maj", "distilled"}
    assert all(r["n"] == 3 and r["accuracy"] is None for r in rows.values())
    assert rep["label_free"]["distilled"]["n"] == 3 and rep["verdict"]["decision"] in ("ship", "cascade", "keep", "no_answer")
    assert (out / "report.md").read_text().count("Verdict:") == 1
    n_cached = len((tmp_path / "cache" / "samples.jsonl").read_text().splitlines())
    logs = []
    eval_on_file(tmp_path, data, progress=False, log=logs.append)
    assert not any("running" in m for m in logs)
    assert len((tmp_path / "cache" / "samples.jsonl").read_text().splitlines()) == n_cached
