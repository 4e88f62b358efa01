import errno
import json

import pytest

from s2distill.backends.caching import CachingBackend
from s2distill.backends.fake import FakeBackend
from s2distill.rundir import DiskFullError, SampleCache, write_jsonl
from s2distill.types import Completion, GenRequest, SamplingParams


def test_cache_drops_torn_last_line_and_appends_cleanly(tmp_path):
    p = tmp_path / "samples.jsonl"
    c = SampleCache(p)
    c.put("a", Completion("x", 1))
    c.put("b", Completion("y", 2))
    c.close()
    with open(p, "a") as fh:
        fh.write('{"key": "c", "completion": {"te')  # killed mid-write
    c = SampleCache(p)
    assert len(c) == 2 and c.torn_lines == 1
    c.put("c", Completion("z", 3))
    c.put("a", Completion("dup", 9))  # already present: not written again
    c.close()
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    assert [r["key"] for r in rows] == ["a", "b", "c"]


def test_caching_backend_generates_only_missing_samples(tmp_path):
    fake = FakeBackend(lambda req, j: f"answer {req.params.seed}")
    cache = SampleCache(tmp_path / "s.jsonl")
    cb = CachingBackend(fake, cache)
    reqs = [GenRequest(({"role": "user", "content": f"q{i}"},), SamplingParams(n=3, seed=10)) for i in range(4)]
    out = cb.generate(reqs)
    assert [[c.text for c in row] for row in out] == [["answer 10", "answer 11", "answer 12"]] * 4
    assert len(fake.requests) == 12 and all(r.params.n == 1 for r in fake.requests)
    assert fake.batches == [12]  # one batched call for the whole step
    out2 = CachingBackend(fake, cache).generate(reqs + [GenRequest(({"role": "user", "content": "new"},),
                                                                   SamplingParams(n=3, seed=10))])
    assert len(fake.requests) == 15 and out2[:4] == out


class _SharingFake(FakeBackend):
    shares_samples = True  # like llama-server: sample j of a request seeded s is the draw of seed s + j


def test_a_sharing_backend_gets_one_request_per_run_of_missing_samples(tmp_path):
    """With a backend that shares the prompt across n samples, the missing samples of an input go out as one
    request per run of consecutive indices (seeded at the run's first), under the same keys as single requests:
    a cache written one way is read the other, and a half-finished input asks only for what is missing."""
    answer = lambda req, j: f"answer {req.params.seed + j}"  # noqa: E731
    reqs = [GenRequest(({"role": "user", "content": f"q{i}"},), SamplingParams(n=4, seed=10)) for i in range(3)]
    single = SampleCache(tmp_path / "single.jsonl")
    by_one = CachingBackend(FakeBackend(answer), single).generate(reqs)
    shared = _SharingFake(answer)
    cache = SampleCache(tmp_path / "shared.jsonl")
    assert CachingBackend(shared, cache).generate(reqs) == by_one
    assert [(r.params.n, r.params.seed) for r in shared.requests] == [(4, 10)] * 3
    assert {r["key"] for r in map(json.loads, (tmp_path / "single.jsonl").read_text().splitlines())} == \
        {r["key"] for r in map(json.loads, (tmp_path / "shared.jsonl").read_text().splitlines())}
    # a run killed after samples 0 and 2 of q0 and all of q1: the resume asks for q0's 1 and 3, and q2's 0..3
    partial = SampleCache(tmp_path / "partial.jsonl")
    for i, js in ((0, (0, 2)), (1, range(4))):
        for j in js:
            partial.put(reqs[i].sample_key(j, shared.model_id), by_one[i][j])
    resumed = _SharingFake(answer)
    assert CachingBackend(resumed, partial).generate(reqs) == by_one
    assert [(r.messages[0]["content"], r.params.n, r.params.seed) for r in resumed.requests] == \
        [("q0", 1, 11), ("q0", 1, 13), ("q2", 4, 10)]
    assert CachingBackend(_SharingFake(answer), single).generate(reqs) == by_one  # the single-request cache hits


def test_identical_samples_in_one_batch_are_generated_once_and_replay_the_same(tmp_path):
    calls = iter(range(100))
    fake = FakeBackend(lambda req, j: f"draw {next(calls)}")  # a server that answers two copies differently
    cache = SampleCache(tmp_path / "s.jsonl")
    same = GenRequest(({"role": "user", "content": "plan"},), SamplingParams(n=2, seed=3, temperature=0.7))
    other = GenRequest(({"role": "user", "content": "other"},), SamplingParams(n=1, seed=3, temperature=0.7))
    cb = CachingBackend(fake, cache)
    out = cb.generate([same, other, same])
    assert len(fake.requests) == 3  # seeds 3 and 4 of "plan", seed 3 of "other"; the second "plan" shares them
    assert [c.text for c in out[0]] == [c.text for c in out[2]] and out[0][0].text != out[0][1].text
    assert (cb.hits, cb.misses) == (2, 3) and len(cache) == 3
    replay = CachingBackend(fake, cache).generate([same, other, same])
    assert replay == out and len(fake.requests) == 3  # a resumed run reproduces every slot from the cache


def test_disk_full_is_a_clear_error_and_keeps_earlier_samples(tmp_path, monkeypatch):
    cache = SampleCache(tmp_path / "s.jsonl")
    cache.put("a", Completion("x", 1))

    def boom(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache._fh, "write", boom)
    with pytest.raises(DiskFullError, match="disk full.*rerun the same command to resume"):
        cache.put("b", Completion("y", 1))
    monkeypatch.undo()
    cache.close()
    assert len(SampleCache(tmp_path / "s.jsonl")) == 1


def test_atomic_write_disk_full(tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def write(self, _):
            raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: Full(real_open(p, *a, **k)) if ".tmp" in str(p)
                        else real_open(p, *a, **k))
    with pytest.raises(DiskFullError):
        write_jsonl(target, [{"a": 1}])
    monkeypatch.undo()
    assert target.read_text() == "old\n" and not list(tmp_path.glob(".*.tmp"))
