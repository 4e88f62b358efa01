"""dtype / device resolution, the GPU-fit config keys, their fingerprints and the QLoRA config path (CPU only)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from s2distill.checks import load_checked
from s2distill.errors import ConfigError, ModelError
from s2distill.precision import (bitsandbytes_config, resolve_device, resolve_dtype,
                                 trainer_precision)


class _Cuda:
    def __init__(self, n: int, bf16: bool) -> None:
        self.n, self.bf16 = n, bf16

    def is_available(self) -> bool:
        return self.n > 0

    def device_count(self) -> int:
        return self.n

    def is_bf16_supported(self) -> bool:
        return self.bf16


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch):
    torch = pytest.importorskip("torch")

    def set_(n: int, bf16: bool = True) -> None:
        c = _Cuda(n, bf16)
        for name in ("is_available", "device_count", "is_bf16_supported"):
            monkeypatch.setattr(torch.cuda, name, getattr(c, name))

    return set_


def test_auto_dtype_per_device(fake_cuda) -> None:
    fake_cuda(0)
    assert resolve_device("auto") == "cpu"
    assert resolve_dtype("auto", "cpu", training=True) == "float32"  # CPU: fp32, bf16 matmuls are slow there
    assert resolve_dtype("auto", "cpu", training=False) == "float32"
    with pytest.raises(ConfigError, match="torch sees 0 CUDA device"):
        resolve_device("cuda")
    fake_cuda(2, bf16=True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="cuda:2.*sees 2 CUDA"):
        resolve_device("cuda:2")
    assert resolve_dtype("auto", "cuda", training=True) == "bfloat16"
    assert resolve_dtype("auto", "cuda:1", training=False) == "bfloat16"
    fake_cuda(1, bf16=False)  # e.g. a V100 / T4: no bf16
    assert resolve_dtype("auto", "cuda", training=True) == "float32"
    assert resolve_dtype("auto", "cuda", training=False) == "float16"
    assert resolve_dtype("bfloat16", "cpu", training=True) == "bfloat16"  # explicit wins
    with pytest.raises(ConfigError, match="float16 needs a CUDA GPU"):
        resolve_dtype("float16", "cpu", training=True)
    assert trainer_precision("bfloat16") == {"bf16": True, "fp16": False}
    assert trainer_precision("float32") == {"bf16": False, "fp16": False}


def test_config_keys_and_errors() -> None:
    cfg = load_checked(data={"backend": {"name": "transformers", "device": "cuda:0", "dtype": "bfloat16"},
                            "train": {"fit": {"dtype": "bfloat16", "quantization": "4bit"}, "save_steps": 50,
                                      "save_total_limit": 3, "too_long": "error"}})
    assert (cfg.backend.device, cfg.backend.dtype) == ("cuda:0", "bfloat16")
    assert (cfg.train.fit.dtype, cfg.train.fit.quantization, cfg.train.save_steps) == ("bfloat16", "4bit", 50.0)
    with pytest.raises(ConfigError, match="unknown train.fit.dtype 'bf16'.*known: auto, bfloat16"):
        load_checked(data={"train": {"fit": {"dtype": "bf16"}}})
    with pytest.raises(ConfigError, match="did you mean '4bit'"):
        load_checked(data={"train": {"fit": {"quantization": "4bits"}}})
    with pytest.raises(ConfigError, match="fix: use train.method=lora"):
        load_checked(data={"train": {"fit": {"quantization": "8bit"}, "method": "full"}})
    with pytest.raises(ConfigError, match="flash_attention_2"):
        load_checked(data={"train": {"fit": {"padding_free": True}}})
    with pytest.raises(ConfigError, match="save_steps must be > 0"):
        load_checked(data={"train": {"save_steps": 0}})
    with pytest.raises(ConfigError, match="backend.device must be auto, cpu, cuda or cuda:N"):
        load_checked(data={"backend": {"name": "transformers", "device": "gpu"}})
    with pytest.raises(ConfigError, match="did you mean 'too_long'"):
        load_checked(data={"train": {"to_long": "error"}})
    from s2distill.train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    trainer_keys = {k: v for k, v in TRAIN_KEY_DEFAULTS.items() if k not in CURRICULUM}
    assert set(trainer_keys) <= names  # every new trainer key reaches train_lora
    assert all(getattr(TrainConfig(), k) == v for k, v in trainer_keys.items())
    with pytest.raises(ConfigError, match="train.too_long"):
        TrainConfig(too_long="cut")


# TrainSection keys added after runs existed (besides save_merged), pinned: at these values they stay out of the
# train fingerprint (the config fields' metadata, added=True, says so; old runs are not retrained)
TRAIN_KEY_DEFAULTS = {
    "dtype": "auto", "quantization": "none", "attn_implementation": "sdpa", "padding_free": False, "group_by_length": False,
    "liger_kernel": None, "save_steps": None, "save_total_limit": 2, "too_long": "truncate_prompt",
    "curriculum": "none", "epochs_per_stage": 1.0, "stages": 0, "remove_per_stage": 0, "removal_smoothing": 4.0,
}


CURRICULUM = {"curriculum": "name", "epochs_per_stage": "epochs_per_stage", "stages": "stages",
              "remove_per_stage": "remove_per_stage", "removal_smoothing": "removal_smoothing"}


def test_the_added_keys_are_the_field_metadata() -> None:
    from s2distill.config import CurriculumSection, FitSection, TrainSection
    from s2distill.fingerprints import added_defaults

    added = {**added_defaults(TrainSection), **added_defaults(FitSection),
             **{old: added_defaults(CurriculumSection)[new] for old, new in CURRICULUM.items()}}
    assert added == {**TRAIN_KEY_DEFAULTS, "save_merged": False}


def _train_fp(tmp_path: Path, **train) -> str:
    from s2distill.pipeline import Pipeline

    cfg = load_checked(data={"name": "fp", "backend": {"name": "fake"}, "train": train})
    p = Pipeline(cfg, run_dir=tmp_path / "run", progress=False, log=lambda s: None)
    p.fp["curate"] = "c"
    p.rd.stage_done = lambda name, f: True  # type: ignore[method-assign]  # only the fingerprint is wanted
    p.stage_train()
    return p.fp["train"]


def test_new_keys_at_defaults_keep_the_train_fingerprint(tmp_path: Path) -> None:
    from s2distill.types import stable_hash

    cfg = load_checked(data={"name": "fp", "backend": {"name": "fake"}})
    flat = {**dataclasses.asdict(cfg.train), **dataclasses.asdict(cfg.train.fit), "launcher": cfg.train.launcher.name}
    t = {k: v for k, v in flat.items() if k not in TRAIN_KEY_DEFAULTS and k not in ("save_merged", "fit", "curriculum")}
    old = stable_hash({"curate": "c", "train": t, "model": cfg.model, "seed": cfg.seed, "backend": "fake"})
    assert _train_fp(tmp_path) == old
    with pytest.warns(FutureWarning):  # the flat keys of older configs, at their defaults
        assert _train_fp(tmp_path, **TRAIN_KEY_DEFAULTS) == old
    for k, v in {"fit": {"dtype": "bfloat16"}, "save_total_limit": 5, "too_long": "error",
                 "curriculum": {"name": "stepwise"}}.items():
        assert _train_fp(tmp_path, **{k: v}) != old, k


def test_backend_spec_passes_device_and_dtype() -> None:
    from s2distill.backends.transformers import TransformersBackend
    from s2distill.pipeline import backend_spec

    cfg = load_checked(data={"backend": {"name": "transformers", "device": "cpu", "dtype": "float32"}})
    cls, kw = backend_spec(cfg, "base", {})
    assert cls is TransformersBackend and (kw["device"], kw["dtype"]) == ("cpu", "float32")
    cls, kw = backend_spec(load_checked(data={"backend": {"name": "transformers"}}), "base", {})
    assert (kw["device"], kw["dtype"]) == ("auto", "auto")


def test_pipeline_records_the_backend_device(tmp_path: Path) -> None:
    from fakes import arithmetic_oracle, factory

    from s2distill.pipeline import Pipeline

    def with_device(cfg, weights, trained):  # a fake engine that reports a device like the transformers backend
        b = factory(arithmetic_oracle())(cfg, weights, trained)
        b.device, b.dtype = "cpu", "float32"
        return b

    cfg = load_checked(data={"name": "dev", "backend": {"name": "fake"}, "task": {"n_train": 4, "n_eval": 2},
                            "train": {"enabled": False}, "eval": {"systems": ["system1"]}})
    logs: list[str] = []
    Pipeline(cfg, run_dir=tmp_path, backend_factory=with_device, progress=False, log=logs.append).run()
    assert json.loads((tmp_path / "backend_device.json").read_text())["base"] == {
        "backend": "fake", "device": "cpu", "dtype": "float32"}
    assert any("on cpu in float32" in x for x in logs)


def test_qlora_needs_a_gpu_and_names_the_fix(fake_cuda) -> None:
    fake_cuda(0)
    with pytest.raises(ModelError, match="no.*fix: set train.fit.quantization=none"):
        bitsandbytes_config("4bit", "float32", "cpu")


def test_qlora_config_on_a_cuda_machine() -> None:
    """Where bitsandbytes loads (a CUDA machine with the qlora extra), the 4-bit config is NF4 + double quant."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs a CUDA GPU (bitsandbytes); this machine has none")
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"bitsandbytes cannot load here ({e}); pip install 's2distill[qlora]'")
    c = bitsandbytes_config("4bit", "bfloat16", "cuda")
    assert c.load_in_4bit and c.bnb_4bit_quant_type == "nf4" and c.bnb_4bit_compute_dtype == torch.bfloat16
    assert bitsandbytes_config("8bit", "bfloat16", "cuda").load_in_8bit
