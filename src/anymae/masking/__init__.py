"""Masking: ratio samplers, selectors and loss weightings, and the strategies composing them."""

from __future__ import annotations

from anymae.config import MaskingConfig
from anymae.errors import UserError
from anymae.masking.ratios import FixedRatio, UniformRatio, mask_counts, parse_ratio
from anymae.masking.selectors import mask_top, random_mask
from anymae.masking.strategy import MaskPlan, RandomMasking, Strategy
from anymae.tokens import ModalitySpec

STRATEGIES = ("random",)


def build_strategy(config: MaskingConfig, spec: ModalitySpec) -> Strategy:
    ratio = parse_ratio(config.ratio or f"fixed:{spec.default_ratio}", config.per_sample)
    if config.strategy == "random":
        return RandomMasking(ratio)
    raise UserError(f"unknown masking strategy '{config.strategy}' (choose from: {', '.join(STRATEGIES)})")


__all__ = [
    "FixedRatio",
    "MaskPlan",
    "RandomMasking",
    "STRATEGIES",
    "Strategy",
    "UniformRatio",
    "build_strategy",
    "mask_counts",
    "mask_top",
    "parse_ratio",
    "random_mask",
]
