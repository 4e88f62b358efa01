"""Stands in for ``vllm serve MODEL ...`` in tests (vLLM needs a CUDA GPU).

Parses the vLLM flags the launcher builds (rejecting a malformed command line like vLLM's
argparse would, exit 2), writes the argv it got as JSON to ``$VLLM_STANDIN_RECORD``, then
execs a real ``llama-server`` with the embedded GGUF on the same host/port, so the launcher's
start-up, health check, requests and shutdown run against a real server. The model and any
LoRA module are recorded but not loaded (llama-server needs GGUF files).

``$VLLM_STANDIN_FAIL=1``: print a start-up error and exit 1 (a crash during start-up).
"""
import argparse
import json
import os
import sys


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vllm")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("model")
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--tensor-parallel-size", type=int, default=1)
    s.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    s.add_argument("--max-model-len", type=int)
    s.add_argument("--served-model-name", nargs="+")
    s.add_argument("--seed", type=int)
    s.add_argument("--enable-lora", action="store_true")
    s.add_argument("--lora-modules", nargs="+", default=[])
    s.add_argument("--max-lora-rank", type=int, choices=(8, 16, 32, 64, 128, 256, 320, 512))
    s.add_argument("--max-num-seqs", type=int, default=2)
    args, unknown = s.parse_known_args(argv[1:]) if argv[:1] == ["serve"] else (p.parse_args(argv), [])
    for m in args.lora_modules:
        if "=" not in m:
            p.error(f"--lora-modules expects name=path, got {m!r}")
    if args.lora_modules and not args.enable_lora:
        p.error("--lora-modules needs --enable-lora")
    args.unknown = unknown
    return args


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("VLLM_STANDIN_RECORD"):
        with open(os.environ["VLLM_STANDIN_RECORD"], "w") as fh:
            json.dump(argv, fh)
    if os.environ.get("VLLM_STANDIN_FAIL"):
        print("INFO starting vLLM API server (stand-in)", flush=True)
        print("RuntimeError: standin: CUDA out of memory while loading weights", flush=True)
        sys.exit(1)
    args = parse(argv)
    from s2distill.backends.llamacpp import find_llama_server
    from s2distill.models import resolve_model

    server = find_llama_server()
    ctx = args.max_model_len or 512
    llama = [server, "-m", str(resolve_model("default")), "--host", args.host, "--port", str(args.port),
             "--parallel", str(args.max_num_seqs), "-c", str(ctx * args.max_num_seqs), "--cont-batching",
             "--threads", "2"]
    if args.seed is not None:
        llama += ["--seed", str(args.seed)]
    print("standin: exec " + " ".join(llama), flush=True)
    os.execv(server, llama)


if __name__ == "__main__":
    main()
