"""Training diagnostics that make a strategy's failure modes visible (docs/methods.md, 2.3).

Logged with each metrics line: how evenly positions are masked (a self-guided mask that
follows position embeddings hides some positions almost always), and the reconstruction loss
on a fixed held-out batch under *random* masks, comparable across strategies.
"""

from __future__ import annotations

import torch

from anymae.config import MaskingConfig
from anymae.data import Dataset
from anymae.masking import build_strategy
from anymae.model import MaskedAutoencoder
from anymae.objective import reconstruction


class MaskDiagnostics:
    def __init__(self, dataset: Dataset, masking: MaskingConfig, device: torch.device, batch_size: int = 256) -> None:
        held_out = dataset.splits["val"][:batch_size]
        self.held_out = dataset.tokens.batch(held_out, dataset.spec.discrete).to(device) if len(held_out) else None
        self.random = build_strategy(MaskingConfig(ratio=masking.ratio, per_sample=masking.per_sample), dataset.spec)
        n = dataset.spec.max_tokens
        self.masked = torch.zeros(n, device=device)
        self.valid = torch.zeros(n, device=device)

    def observe(self, masked: torch.Tensor, valid: torch.Tensor) -> None:
        self.masked[: masked.shape[1]] += masked.sum(0)
        self.valid[: valid.shape[1]] += valid.sum(0)

    def report(self, model: MaskedAutoencoder) -> dict[str, float]:
        seen = self.valid > 0
        frequency = self.masked[seen] / self.valid[seen]
        record = {
            "mask_freq_min": float(frequency.min()),
            "mask_freq_max": float(frequency.max()),
            "mask_freq_std": float(frequency.std(correction=0)),
        }
        self.masked.zero_()
        self.valid.zero_()
        if self.held_out is not None:
            model.eval()
            with torch.no_grad():
                generator = torch.Generator().manual_seed(0)  # the same masks at every report
                out = reconstruction(model, self.held_out, self.random, generator, progress=1.0)
            model.train()
            record["val_loss_random_masks"] = float(out.loss)
        return record
