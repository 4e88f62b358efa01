"""A backend wrapper that looks every sample up in, and appends it to, a run's ``SampleCache``."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..rundir import SampleCache
from ..types import Completion, GenRequest
from .base import Backend


class CachingBackend(Backend):
    """Wraps a backend: every sample is looked up in / appended to a ``SampleCache``.

    Sample ``j`` of a request seeded ``s`` has its own key (``GenRequest.sample_key(j)``), so a resumed run
    regenerates exactly the samples that are missing: none lost, none duplicated. The missing samples go to
    the engine as single requests seeded ``s + j``, or, when the inner backend ``shares_samples``, as one
    request per run of consecutive missing samples (``n`` = the run's length, seeded ``s + first``: the
    prompt is processed once). The keys do not depend on how a sample was asked for: caches of runs made
    either way hit. Identical samples in one batch (the same key, e.g. BSM's plan for both response orders)
    are generated once and shared: a server may answer two concurrent copies differently, and the cache
    keeps one answer per key, so a replay could not reproduce both.
    """

    name = "cached"

    def __init__(self, inner: Backend, cache: SampleCache, on_progress: Callable[[int], None] | None = None):
        self.inner = inner
        self.cache = cache
        self.model_id = inner.model_id
        self.on_progress = on_progress
        self.hits = 0
        self.misses = 0

    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        todo: list[tuple[list[str], GenRequest]] = []  # (the keys of its samples, the request sent)
        waiting: dict[str, list[tuple[int, int]]] = {}  # key -> the (request, sample) slots it answers
        for i, req in enumerate(requests):
            missing: list[tuple[int, str]] = []
            for j in range(req.params.n):
                key = req.sample_key(j, self.model_id)
                hit = self.cache.get(key)
                if hit is not None:
                    self.hits += 1
                    yield i, j, hit
                elif key in waiting:
                    waiting[key].append((i, j))
                else:
                    waiting[key] = [(i, j)]
                    missing.append((j, key))
            for run in _runs(missing, self.inner.shares_samples):
                todo.append(([k for _, k in run], GenRequest(req.messages, _sub(req, run[0][0], len(run)))))
        if self.on_progress and self.hits:
            self.on_progress(self.hits)
        if not todo:
            return
        for k, m, comp in self.inner.iter_generate([t[1] for t in todo]):
            key = todo[k][0][m]
            self.cache.put(key, comp)
            self.misses += 1
            self.hits += len(waiting[key]) - 1
            if self.on_progress:
                self.on_progress(len(waiting[key]))
            for i, j in waiting[key]:
                yield i, j, comp

    def close(self) -> None:
        self.inner.close()


def _runs(missing: list[tuple[int, str]], shared: bool) -> list[list[tuple[int, str]]]:
    """The missing (sample index, key) pairs as the requests that ask for them: one per sample, or (``shared``)
    one per run of consecutive sample indices."""
    if not shared:
        return [[m] for m in missing]
    runs: list[list[tuple[int, str]]] = []
    for m in missing:
        if runs and runs[-1][-1][0] + 1 == m[0]:
            runs[-1].append(m)
        else:
            runs.append([m])
    return runs


def _sub(req: GenRequest, first: int, n: int):
    """``req``'s samples ``first .. first+n-1`` as a request of their own (seed ``seed + first``)."""
    from dataclasses import replace

    return replace(req.params, n=n, seed=req.params.seed + first)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar of samples on stderr (its ``update`` is a ``CachingBackend``'s ``on_progress``), or none."""
    if not enabled:
        return _NoBar()
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", dynamic_ncols=True, file=sys.stderr)


def sample(backend: Backend, cache: SampleCache, fn: Callable[[Backend], Any], total: int, desc: str = "",
           progress: bool = True) -> tuple[Any, float, dict]:
    """``fn(backend)`` through the sample cache, with a progress bar of ``total`` samples; returns its result,
    the wall seconds and what came from the cache (``cache_hits``) or was ``generated``."""
    import time

    bar = progress_bar(total, desc, progress)
    cached = CachingBackend(backend, cache, on_progress=bar.update)
    t0 = time.perf_counter()
    try:
        out = fn(cached)
    finally:
        bar.close()
    return out, time.perf_counter() - t0, {"cache_hits": cached.hits, "generated": cached.misses}
