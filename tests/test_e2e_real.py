"""End to end on the real embedded model: llama-server generation, curation, real LoRA
steps through TRL, LoRA GGUF export, and the distilled model served by llama-server."""
import json

import pytest
from conftest import requires_server

from s2distill.config import load_config
from s2distill.pipeline import Pipeline
from s2distill.rundir import read_jsonl

pytestmark = [requires_server, pytest.mark.slow]


CONFIG = [
        "name=e2e", "task.n_train=8", "task.n_eval=4", "method.n=2", "method.max_tokens=96",
        "curate.min_agreement=0.5", "curate.min_votes=1", "backend.parallel=4", "eval.k=2",
        "train.max_steps=2", "train.per_device_batch_size=2", "train.gradient_accumulation_steps=1",
        "eval.cascade_k=2", "eval.retention_tasks=[coin_flip]", "eval.retention_n=4", "eval.retention_prompts=4",
        "eval.retention_tokens=8"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """The demo config, tiny, run once for the tests of this module (each under the per-test time limit)."""
    pytest.importorskip("trl")
    run = tmp_path_factory.mktemp("e2e") / "run"
    cfg = load_config("configs/demo.yaml", CONFIG)
    return run, cfg, Pipeline(cfg, run_dir=run, progress=False).run()


def test_demo_pipeline_tiny_real(real_run):
    tmp_path, cfg, report = real_run
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
    # generate, System 1, System 2, maj@2, distilled, its 2 votes, 1 other task x 4 inputs x (base, distilled)
    assert len(keys) == len(set(keys)) == 8 * 2 + 4 + 4 + 4 * 2 + 4 + 4 * 2 + 4 * 2
    # retention: the real KL between the base and base + adapter on 4 held-out and 4 general prompts
    ret = report["retention"]
    assert ret["kl_task"]["prompts"] == 4 and ret["kl_general"]["prompts"] == 4 and ret["kl_general"]["kl"] >= 0
    assert set(ret["other_tasks"]) == {"coin_flip"} and ret["other_tasks"]["coin_flip"]["n"] == 4
    # a second run skips everything
    logs = []
    Pipeline(cfg, run_dir=tmp_path, progress=False, log=logs.append).run()
    assert not any("running" in m for m in logs)
    # label-free numbers and a verdict, from the maj@k samples the run drew
    lf = report["label_free"]
    assert lf["distilled"]["n"] == 4 and 0 <= lf["distilled"]["agreement"] <= 1
    assert 0 < lf["system2_maj"]["mean_vote_share"] <= 1 and report["verdict"]["decision"] in ("ship", "cascade", "keep", "no_answer")


def test_eval_data_real(real_run):
    """The trained run on new, unlabeled inputs (real llama-server, base and base + LoRA GGUF); resumable."""
    tmp_path, _, _ = real_run
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


def test_serve_and_the_next_round_real(real_run):
    """The trained run served over HTTP (real uvicorn, two real llama-servers: base + LoRA and base), both
    paths; then the next round from what the server routed to System 2."""
    tmp_path, _, _ = real_run
    _serve_real(tmp_path)
    # the next round from what the server routed to System 2: its samples reused, real training steps again
    from s2distill.continual import run_round, start

    new = start(tmp_path, tmp_path / "serve" / "inbox.jsonl", tmp_path.parent / "e2e-round2")
    rep2 = run_round(new, progress=False)
    man = json.loads((new / "manifest.json").read_text())["stages"]
    assert man["data"]["n_train"] == 9 and man["generate"]["reused_inputs"] == 1 and man["generate"]["generated"] == 0
    assert [r["round"] for r in rep2["rounds"]] == [1, 2] and rep2["rounds"][1]["steps"] == 2
    assert (new / "data" / "eval.jsonl").read_text() == (tmp_path / "data" / "eval.jsonl").read_text()


def _serve_real(run):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    openai = pytest.importorskip("openai")
    pytest.importorskip("uvicorn")
    import httpx

    from s2distill.serve import read_inbox

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "s2distill.cli", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": "src"})
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        q = "Tom has 3 apples and buys 4 more. How many apples does Tom have now?"
        paths = {}
        for route in ("system1", "system2", "cascade"):
            r = client.chat.completions.create(model="s2distill-e2e", messages=[{"role": "user", "content": q}],
                                               extra_body={"s2distill": {"route": route}})
            ext = r.model_extra["s2distill"]
            paths[route] = ext["path"]
            assert r.usage.completion_tokens > 0 and r.choices[0].message.content
            if route == "system1":
                assert 0 < ext["confidence"] <= 1  # the real engine's logprobs of the distilled answer
        assert paths["system1"] == "system1" and paths["system2"] == "system2"
        assert len(read_inbox(run / "serve" / "inbox.jsonl")) == 1 + (paths["cascade"] == "system2")
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's shutdown; the engines stop with it
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, out
