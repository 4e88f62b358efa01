"""In-process generation with transformers (CPU or GPU), optionally with a PEFT LoRA adapter.

Chat template -> left-padded batches (sorted by length) -> ``model.generate``. Greedy when
temperature == 0 (the n samples are then identical and computed once), otherwise sampling
seeded with ``params.seed + sample_index``.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import BackendError, ModelError
from ..types import Completion, GenRequest, Message, SamplingParams
from .base import Backend


class TransformersBackend(Backend):
    name = "transformers"

    @classmethod
    def check_config(cls, cfg) -> None:
        from ..keys import check_choice
        from ..precision import DTYPES, check_device

        check_device("backend.device", cfg.backend.device)
        check_choice("backend.dtype", cfg.backend.dtype, DTYPES)

    @classmethod
    def config_kwargs(cls, cfg, weights: str, trained: dict) -> dict:
        kw: dict[str, Any] = {}
        if weights == "distilled":
            kw = {"adapter": trained["adapter"]} if trained.get("adapter") else {"model": trained["merged"]}
        return {"model": cfg.model, **kw, "batch_size": cfg.backend.batch_size, "threads": cfg.backend.threads,
                "device": cfg.backend.device, "dtype": cfg.backend.dtype}

    @classmethod
    def model_id_of(cls, model: str = "default", adapter: str | Path | None = None, **_: Any) -> str:
        from ..models import resolve_hf_model

        return resolve_hf_model(model) + (f"+{Path(adapter).resolve()}" if adapter is not None else "")

    def __init__(self, model: str = "default", adapter: str | Path | None = None, batch_size: int = 16,
                 dtype: str = "auto", device: str = "auto", threads: int | None = None, **_: Any):
        try:
            import torch
            import transformers
        except ImportError as e:
            raise BackendError(f"{e}; fix: pip install 's2distill[train]' (torch, transformers, peft)") from e
        from ..models import resolve_hf_model

        if threads:
            torch.set_num_threads(threads)
        from ..errors import ConfigError
        from ..precision import resolve_device, resolve_dtype

        try:
            device = resolve_device(device)  # auto: the GPU when torch sees one
            dtype = resolve_dtype(dtype, device, training=False)  # auto: bf16 (fp16) on a GPU, fp32 on CPU
        except ConfigError as e:
            raise BackendError(f"backend.device/backend.dtype: {e}") from e
        self.torch = torch
        self.batch_size = max(1, int(batch_size))
        self.device, self.dtype = device, dtype
        path = resolve_hf_model(model)
        self.tok = transformers.AutoTokenizer.from_pretrained(path, padding_side="left")
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        if adapter is not None:
            if not (Path(adapter) / "adapter_config.json").is_file():
                raise ModelError(f"{adapter} is not a PEFT adapter directory (no adapter_config.json); "
                                 "fix: pass the adapter/ directory written by s2distill train")
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(adapter)).merge_and_unload()
        self.model.to(device).eval()
        self.model_id = self.model_id_of(path, adapter)
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tok.eos_token_id is not None and self.tok.eos_token_id not in eos:
            eos.append(self.tok.eos_token_id)
        self.eos_ids = eos

    # -- prompt ---------------------------------------------------------------------------------
    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True, tokenize=False)
        else:  # base model: plain continuation of the concatenated contents
            text = "\n\n".join(m["content"] for m in messages) + "\n"
        return self.tok(text, add_special_tokens=False)["input_ids"]

    # -- generation -----------------------------------------------------------------------------
    def iter_generate(self, requests: Sequence[GenRequest]) -> Iterator[tuple[int, int, Completion]]:
        prompts = [self.prompt_ids(r.messages) for r in requests]
        # group the samples that can share one generate() call: same params and same effective seed
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            p = r.params
            greedy = p.temperature <= 0
            for j in range(1 if greedy else p.n):
                key = (greedy, p.temperature, p.top_p, p.max_tokens, tuple(p.stop), None if greedy else p.seed + j, j,
                       p.logprobs)
                groups[key].append(i)
        for key, idxs in groups.items():
            greedy, _, _, _, _, seed, j, _ = key
            params = requests[idxs[0]].params
            idxs = sorted(idxs, key=lambda i: len(prompts[i]))
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start:start + self.batch_size]
                for i, comp in zip(chunk, self._generate_batch([prompts[i] for i in chunk], params, seed)):
                    for jj in (range(requests[i].params.n) if greedy else (j,)):
                        yield i, jj, comp

    def _generate_batch(self, prompts: list[list[int]], p: SamplingParams, seed: int | None) -> list[Completion]:
        torch = self.torch
        from transformers import GenerationConfig

        batch = self.tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(self.device)
        gen_cfg = GenerationConfig(
            max_new_tokens=p.max_tokens, do_sample=seed is not None, eos_token_id=self.eos_ids,
            pad_token_id=self.tok.pad_token_id, stop_strings=list(p.stop) or None,
            **({"temperature": p.temperature, "top_p": p.top_p, "top_k": 0} if seed is not None else {}))
        gen_kwargs: dict[str, Any] = {"tokenizer": self.tok} if p.stop else {}
        if seed is not None:
            torch.manual_seed(seed)
        t0 = time.time()
        if p.logprobs:  # the model's own distribution (raw logits), not the sampler's processed scores
            gen_kwargs.update(output_logits=True, return_dict_in_generate=True)
        with torch.inference_mode():
            out = self.model.generate(**batch, generation_config=gen_cfg, **gen_kwargs)
            seqs, lps = out, None
            if p.logprobs:
                seqs = out.sequences
                width = batch["input_ids"].shape[1]
                steps = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # batch x steps x vocab
                chosen = seqs[:, width:width + steps.shape[1]]
                lps = steps.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
        latency = (time.time() - t0) / len(prompts)
        width = batch["input_ids"].shape[1]
        return [self._completion(row[width:].tolist(), len(prompt), p, latency, lps[k] if lps is not None else None)
                for k, (row, prompt) in enumerate(zip(seqs, prompts))]

    def _completion(self, gen: list[int], n_prompt: int, p: SamplingParams, latency: float,
                    logprobs: list[float] | None = None) -> Completion:
        eos = set(self.eos_ids)
        cut = next((k for k, t in enumerate(gen) if t in eos), None)
        finish = "length"
        if cut is not None:
            gen, finish = gen[:cut + 1], "stop"
        text = self.tok.decode(gen, skip_special_tokens=True)
        n_tokens = len(gen)
        hits = [pos for s in p.stop if (pos := text.find(s)) >= 0]
        if hits:
            text, finish = text[:min(hits)], "stop"
            n_tokens = self._tokens_until_stop(gen, p.stop)
        lp = None
        if logprobs is not None:  # every counted token, the end-of-sequence one included (as llama-server reports)
            lp = tuple(round(x, 6) for x in logprobs[:n_tokens])
        return Completion(text=text, completion_tokens=n_tokens, prompt_tokens=n_prompt, finish_reason=finish,
                          latency_s=latency, token_logprobs=lp)

    def _tokens_until_stop(self, gen: list[int], stop: Sequence[str]) -> int:
        """Smallest k such that the first k generated tokens already contain a stop string (binary search)."""
        lo, hi = 1, len(gen)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in self.tok.decode(gen[:mid], skip_special_tokens=True) for s in stop):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def close(self) -> None:
        self.model = None
