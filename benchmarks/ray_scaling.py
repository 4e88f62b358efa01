"""Generation throughput through Ray Data: plain backend vs 1 Ray actor vs 2 Ray actors.

    python benchmarks/ray_scaling.py [--requests 48] [--max-tokens 128] [--repeats 1]

Same CoT requests (arithmetic depth 2, T=0.7, fresh seeds per phase) in every phase:
  plain    : LlamaCppBackend in this process, one llama-server with all cores, 8 slots
  ray x1   : RayBackend with 1 actor owning the same server (all cores, 8 slots)
  ray x2   : RayBackend with 2 actors, each with its own server (cores split, 4 slots each)
Every phase's wall time includes starting its engine(s): plain = server start + generation,
ray = actor pool start (which starts each actor's server) + generation, so the ray/plain ratio is
the whole cost of the Ray path per generate() call. ``ray.init`` (once per process) is reported
apart. CPU utilisation = busy share of all cores (from /proc/stat) over each phase.
"""
from __future__ import annotations

import argparse
import functools
import os
import time

from common import Table, cot_requests, write_result  # noqa: E402

from s2distill.config import load_config  # noqa: E402
from s2distill.distributed import RayBackend, ray_init  # noqa: E402
from s2distill.pipeline import _actor_backend, backend_model_id, default_backend_factory  # noqa: E402


def cpu_times() -> tuple[float, float]:
    with open("/proc/stat") as fh:
        vals = [float(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    return sum(vals) - idle, sum(vals)


def timed(fn) -> tuple[object, float, float]:
    b0, t0 = cpu_times()
    w0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - w0
    b1, t1 = cpu_times()
    return out, wall, (b1 - b0) / max(1e-9, t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    cores = os.cpu_count() or 2

    seed_base = [0]

    def reqs() -> list:  # a fresh seed base per phase
        seed_base[0] += 10_000
        return cot_requests(args.requests, args.max_tokens, seed_base[0])

    def cfg(threads: int, parallel: int):
        return load_config(data={"model": args.model, "backend": {"name": "llamacpp", "parallel": parallel,
                                                                   "ctx_per_slot": 1024, "threads": threads}})

    def drain(backend, t0: float) -> tuple[int, float, float]:
        """All tokens, tokens/s between the first and the last result (engine start-up excluded), and
        seconds from the phase start to the first result."""
        stamps: list[tuple[float, int]] = []
        for _, _, comp in backend.iter_generate(reqs()):
            stamps.append((time.perf_counter(), comp.completion_tokens))
        tokens = sum(t for _, t in stamps)
        window = stamps[-1][0] - stamps[0][0]
        return tokens, sum(t for _, t in stamps[1:]) / max(1e-9, window), stamps[0][0] - t0

    def plain_phase():
        t0 = time.perf_counter()
        c = cfg(cores, 8)
        with default_backend_factory(c, "base", {}) as b:
            tokens, steady, first = drain(b, t0)
        return tokens, steady, first, None

    def ray_phase(actors: int):
        t0 = time.perf_counter()
        c = cfg(max(1, cores // actors), max(1, 8 // actors))
        rb = RayBackend(functools.partial(_actor_backend, default_backend_factory, c, "base", {}),
                        model_id=backend_model_id(c, "base", {}), num_actors=actors, batch_size=max(1, 8 // actors))
        tokens, steady, first = drain(rb, t0)
        return tokens, steady, first, len(rb.actor_pids)

    _, init_s, _ = timed(lambda: ray_init())
    plain_phase()  # warm-up: page the model into the OS cache, start-up paths hot
    rows: list[dict] = []
    for rep in range(args.repeats):
        for name, fn in (("plain", plain_phase), ("ray x1", lambda: ray_phase(1)), ("ray x2", lambda: ray_phase(2))):
            (tokens, steady, first, pids), wall, util = timed(fn)
            rows.append({"phase": name, "repeat": rep, "tokens": tokens, "wall_s": round(wall, 2),
                         "tokens_per_s": round(tokens / wall, 2), "steady_tokens_per_s": round(steady, 2),
                         "first_result_s": round(first, 2),
                         "cpu_util": round(util, 3), "actors_used": pids})
            print(rows[-1], flush=True)

    def mean(name: str, key: str) -> float:
        xs = [r[key] for r in rows if r["phase"] == name]
        return sum(xs) / len(xs)

    tps = {n: mean(n, "tokens_per_s") for n in ("plain", "ray x1", "ray x2")}
    steady = {n: mean(n, "steady_tokens_per_s") for n in ("plain", "ray x1", "ray x2")}
    res = {"model": args.model, "requests": args.requests, "max_tokens": args.max_tokens, "repeats": args.repeats,
           "cores": cores, "ray_init_s": round(init_s, 2), "rows": rows, "tokens_per_s": tps,
           "steady_tokens_per_s": steady,
           "ray1_overhead": round(1 - tps["ray x1"] / tps["plain"], 4),
           "ray1_overhead_steady": round(1 - steady["ray x1"] / steady["plain"], 4),
           "ray2_vs_ray1": round(tps["ray x2"] / tps["ray x1"], 3)}
    md = render(res)
    write_result("ray_scaling", res, md)
    print(md)


def render(res: dict) -> str:
    """The markdown of a result (also used to re-render a committed result from its JSON)."""
    cores = res["cores"]
    shape = {"plain": f"1 x {cores} x 8", "ray x1": f"1 x {cores} x 8", "ray x2": f"2 x {max(1, cores // 2)} x 4"}
    table = Table(["phase", "engines x threads x slots", "generated tokens", "wall s", "tokens/s (whole phase)",
                   "tokens/s (first to last result)", "s to first result", "CPU busy"],
                  [[r["phase"], shape[r["phase"]], str(r["tokens"]), f"{r['wall_s']:.1f}", f"{r['tokens_per_s']:.1f}",
                    f"{r['steady_tokens_per_s']:.1f}", f"{r['first_result_s']:.1f}", f"{100 * r['cpu_util']:.0f}%"]
                   for r in res["rows"]], align="llrrrrrr")
    lines = ["# Ray Data generation: plain backend vs 1 vs 2 actors", "",
             f"Model {res['model']}, {res['requests']} zero-shot CoT requests (arithmetic depth 2), max_tokens "
             f"{res['max_tokens']}, T=0.7, {res['repeats']} repeat(s). Wall time includes starting the engine(s); "
             f"`ray.init` itself took {res['ray_init_s']:.1f} s once per process and is not in any row.", "",
             table.markdown()]
    lines += ["", f"Ray path overhead at 1 actor: {100 * res['ray1_overhead']:.1f}% fewer tokens/s than the plain "
              f"backend over the whole phase (start-up included), {100 * res['ray1_overhead_steady']:.1f}% between "
              f"first and last result (goal <= 10%). 2 actors vs 1: x{res['ray2_vs_ray1']:.2f} on {cores} cores "
              "(every phase keeps both cores busy; two 1-thread engines vs one 2-thread engine)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
