"""The Ray path joining an EXISTING cluster by address: a real `ray start --head` on loopback, and a
separate driver process that runs generation on it through `distributed.address`."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from s2distill.backends.server import free_port  # noqa: E402

DRIVER = r"""
import json, sys
from s2distill.config import load_config
from s2distill.pipeline import Pipeline
cfg = load_config(data={"name": "c", "backend": {"name": "fake"},
                        "task": {"name": "arithmetic", "n_train": 5, "n_eval": 3},
                        "method": {"name": "cot", "n": 2}, "train": {"enabled": False},
                        "eval": {"systems": ["system1"]},
                        "distributed": {"enabled": True, "address": sys.argv[2], "num_actors": 2, "batch_size": 2}})
logs = []
Pipeline(cfg, run_dir=sys.argv[1], progress=False, log=logs.append).run()
import ray
print(json.dumps({"gcs": ray.get_runtime_context().gcs_address, "logs": logs}))
"""


@pytest.mark.slow
def test_generation_on_an_existing_cluster_by_address(tmp_path: Path) -> None:
    ray_cli = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not Path(ray_cli).exists():
        pytest.skip("ray CLI not found")
    port = free_port()
    # token auth off on loopback: a cluster with it on needs its token on every driver (RAY_AUTH_TOKEN)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=4", "--include-dashboard=false"],
                            stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:  # the head is up once its GCS port accepts connections
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        r = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "run"), address], capture_output=True,
                           text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["gcs"].endswith(f":{port}")  # it joined the running cluster, it did not start its own
        assert any("Ray Data: 2 actor(s)" in line and address in line for line in out["logs"])
        traces = [json.loads(x) for x in (tmp_path / "run" / "traces" / "train.jsonl").read_text().splitlines()]
        assert len(traces) == 5 and all(len(t["samples"]) == 2 for t in traces)
        keys = [json.loads(x)["key"] for x in (tmp_path / "run" / "cache" / "samples.jsonl").read_text().splitlines()]
        assert len(keys) == len(set(keys)) >= 10
    finally:
        os.killpg(head.pid, 15)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)
