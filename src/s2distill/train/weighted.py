"""Soft targets: each training pair's loss weighted by the share of System 2's samples behind its answer.

``curate.weighting=vote_share`` keeps every input whose vote has a clear winner and records the winner's
share in ``pair.meta["weight"]``; here that weight scales the pair's per-token cross-entropy:

    loss = sum over completion tokens t of pair i:  w_i * CE(i, t)  /  number of completion tokens

With every weight 1 this is exactly the trainer's own token-mean loss (same normaliser, the token count
of the whole accumulated batch), so ``hard`` curation and ``vote_share`` differ only in the weights.
"""
from __future__ import annotations

from typing import Any

from ..types import TrainPair

__all__ = ["pair_weights", "weighted_loss", "weighted_trainer"]


def pair_weights(pairs: list[TrainPair]) -> list[float] | None:
    """The pairs' loss weights, or None when no pair carries one (hard curation: the trainer's own loss)."""
    if not any("weight" in p.meta for p in pairs):
        return None
    out = [float(p.meta.get("weight", 1.0)) for p in pairs]
    bad = [p.example_id for p, w in zip(pairs, out) if not 0.0 <= w <= 1.0]
    if bad:
        from ..errors import DataError

        raise DataError(f"train pairs {bad[:3]} have a meta.weight outside [0, 1]; fix: re-run curate "
                        "(curate.weighting=vote_share writes the vote share there)")
    return out


def weighted_loss(logits: Any, labels: Any, weight: Any, num_items: Any = None) -> Any:
    """Sum of ``weight[i]`` times the next-token cross-entropy over the labelled tokens of row i, divided by
    ``num_items`` (the labelled tokens of the whole accumulated batch; this batch's when None)."""
    import torch.nn.functional as F

    logits, target = logits[:, :-1, :].float(), labels[:, 1:]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100,
                         reduction="none").view(target.shape)
    mask = (target != -100).to(ce.dtype)
    n = num_items if num_items is not None else mask.sum()
    if hasattr(n, "to"):
        n = n.to(ce.device)
    return (ce * mask * weight.to(ce.device, ce.dtype)[:, None]).sum() / n


def weighted_trainer(base: type) -> type:
    """``base`` (TRL's SFTTrainer) whose rows may carry a ``weight`` column: kept through the column filter and
    the collator, and used by ``compute_loss``; rows without one train with the base loss."""

    class WeightedSFTTrainer(base):
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if "weight" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "weight"]

        def get_train_dataloader(self):  # noqa: ANN201 - the collator sees the weights, the model never does
            import torch

            if not getattr(self, "_weights_collated", False):
                inner = self.data_collator

                def collate(rows: list[dict]) -> dict:
                    w = [r.pop("weight", 1.0) for r in rows]
                    batch = inner(rows)
                    batch["weight"] = torch.tensor(w, dtype=torch.float32)
                    return batch

                self.data_collator = collate
                self._weights_collated = True
            return super().get_train_dataloader()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
            weight = inputs.pop("weight", None)
            if weight is None:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs, use_cache=False)
            loss = weighted_loss(outputs.logits, labels, weight, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # the trainer divides by the device count
            return (loss, outputs) if return_outputs else loss

    return WeightedSFTTrainer
