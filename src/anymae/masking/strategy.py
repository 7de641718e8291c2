"""Masking strategies: a ratio sampler, a selector and a loss weighting, composed (methods.md 0)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from anymae.masking.ratios import RatioSampler, mask_counts
from anymae.masking.selectors import random_mask
from anymae.model.attention import GuideSelect
from anymae.tokens import TokenBatch


@dataclass
class MaskPlan:
    """What the model needs for one step: a mask now, or a selector the guide layer calls."""

    masked: torch.Tensor | None = None
    select: GuideSelect | None = None
    weights: torch.Tensor | None = None  # (B, N) loss weights; None = every masked token counts 1


class Strategy(Protocol):
    def plan(self, model: torch.nn.Module, batch: TokenBatch, generator: torch.Generator, progress: float) -> MaskPlan:
        """`progress` is the fraction of training done, in [0, 1], for schedules."""
        ...


@dataclass
class RandomMasking:
    """MAE / BERT: a uniformly random subset of m_b valid tokens per sample."""

    ratio: RatioSampler

    def plan(self, model: torch.nn.Module, batch: TokenBatch, generator: torch.Generator, progress: float) -> MaskPlan:
        counts = mask_counts(self.ratio(len(batch.valid), generator), batch.valid)
        return MaskPlan(masked=random_mask(batch.valid, counts, generator))
