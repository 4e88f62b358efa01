"""The transformers backend on the real embedded model (converted once to an HF dir in the cache)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")

from s2distill.backends import make_backend  # noqa: E402
from s2distill.errors import ModelError  # noqa: E402
from s2distill.types import GenRequest, SamplingParams  # noqa: E402


@pytest.fixture(scope="module")
def backend():
    try:
        be = make_backend("transformers", model="default", batch_size=4, threads=2)
    except ModelError as e:
        pytest.skip(f"embedded model not available: {e}")
    yield be
    be.close()


def _req(q: str, **params) -> GenRequest:
    return GenRequest(messages=({"role": "user", "content": q},), params=SamplingParams(**params))


def test_greedy_order_n_and_counts(backend) -> None:
    reqs = [_req("What is 2 + 2? Reply with just the number.", max_tokens=8, n=2),
            _req("Name the capital of France in one word.", max_tokens=8)]
    out = backend.generate(reqs)
    assert [len(x) for x in out] == [2, 1]
    assert out[0][0] == out[0][1]  # greedy: identical samples
    assert "4" in out[0][0].text
    assert "paris" in out[1][0].text.lower()
    for comps in out:
        for c in comps:
            assert 0 < c.completion_tokens <= 8 and c.prompt_tokens > 10 and c.latency_s > 0
            assert c.finish_reason in ("stop", "length")
    assert out[0][0].finish_reason == "stop"  # a short answer ends with <|im_end|>
    # batching and sorting do not change a greedy answer
    assert backend.generate([reqs[1]])[0][0].text == out[1][0].text
    assert str(Path(backend.model_id).name).startswith("qwen2.5-coder-0.5b")


def test_length_and_stop_strings(backend) -> None:
    q = "Count from 1 to 20, separated by commas."
    long, stopped = backend.generate([_req(q, max_tokens=6), _req(q, max_tokens=40, stop=("5",))])
    assert long[0].finish_reason == "length" and long[0].completion_tokens == 6
    s = stopped[0]
    assert s.finish_reason == "stop" and "5" not in s.text and s.text.startswith("1")
    assert 0 < s.completion_tokens < 40
    # the token count covers exactly the tokens up to the one completing the stop string
    upto = backend.generate([_req(q, max_tokens=s.completion_tokens), _req(q, max_tokens=s.completion_tokens - 1)])
    assert "5" in upto[0][0].text and "5" not in upto[1][0].text


def test_sampling_is_seeded(backend) -> None:
    r = _req("Write a random three-word phrase.", max_tokens=6, temperature=1.0, n=2, seed=7)
    a, b = backend.generate([r]), backend.generate([r])
    assert [c.text for c in a[0]] == [c.text for c in b[0]]
    assert all(c.completion_tokens > 0 for c in a[0])


def test_hf_model_dir_is_cached_and_passes_dirs_through(backend, tmp_path: Path) -> None:
    from s2distill.models import hf_model_dir, resolve_hf_model
    from s2distill.models import cache_dir, resolve_model

    d = hf_model_dir(resolve_model("default"))  # converted once by the backend fixture: instant now
    assert d.parent == cache_dir() / "hf" and (d / "config.json").is_file() and (d / "tokenizer.json").is_file()
    assert hf_model_dir("default") == d and resolve_hf_model("default") == str(d) == backend.model_id
    assert hf_model_dir(tmp_path) == tmp_path
    assert resolve_hf_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"  # hub id: untouched
    with pytest.raises(ModelError, match="not found"):
        hf_model_dir(tmp_path / "missing.gguf")


def test_logprobs_are_the_models_own_probabilities(backend) -> None:
    """logprobs=True: one log probability per counted token, from the model's raw distribution; an easy answer
    is far more probable than an arbitrary one; without the flag there are none."""
    easy = backend.generate([_req("What is 2 + 2? Reply with just the number.", max_tokens=8, logprobs=True)])[0][0]
    vague = backend.generate([_req("Name a colour. One word.", max_tokens=8, logprobs=True)])[0][0]
    assert easy.token_logprobs is not None and len(easy.token_logprobs) == easy.completion_tokens
    assert all(x <= 0 for x in easy.token_logprobs) and 0 < vague.probability < easy.probability <= 1
    assert easy.probability > 0.5
    plain = backend.generate([_req("What is 2 + 2? Reply with just the number.", max_tokens=8)])[0][0]
    assert plain.token_logprobs is None and plain.text == easy.text  # asking for logprobs changes no answer
