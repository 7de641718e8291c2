"""Masking: ratio samplers, selectors and loss weightings, and the strategy composing them."""

from __future__ import annotations

from anymae.config import MaskingConfig, ModelConfig, check_section
from anymae.masking.ratios import FixedRatio, UniformRatio, mask_counts, parse_ratio
from anymae.masking.selectors import mask_top, random_mask
from anymae.masking.strategy import (
    SELECTORS,
    AttentionGuidedWeighting,
    BlockSelector,
    InformedSelector,
    MaskContext,
    MaskingStrategy,
    MaskPlan,
    RandomSelector,
    Selector,
    SelfGuidedSelector,
    SpanSelector,
    check_strategy,
)
from anymae.tokens import ModalitySpec


def build_strategy(config: MaskingConfig, spec: ModalitySpec, model: ModelConfig | None = None) -> MaskingStrategy:
    """The strategy a config describes, checked against the `model` config and the data's `spec`."""
    model = model or ModelConfig()
    check_section(config, "masking")
    selector = check_strategy(config, model, spec).build(config, spec)
    ratio = parse_ratio(config.ratio or f"fixed:{spec.default_ratio}", config.per_sample, spec)
    weighting = None
    if config.loss_weighting == "attention-guided":
        weighting = AttentionGuidedWeighting(config.map_source, config.tau, config.tau_end, config.cut_tau)
    return MaskingStrategy(ratio, selector, weighting, config.normalise == "weights", config.cut_layer)


__all__ = [
    "AttentionGuidedWeighting",
    "BlockSelector",
    "FixedRatio",
    "InformedSelector",
    "MaskContext",
    "MaskPlan",
    "MaskingStrategy",
    "RandomSelector",
    "SELECTORS",
    "Selector",
    "SelfGuidedSelector",
    "SpanSelector",
    "UniformRatio",
    "build_strategy",
    "check_strategy",
    "mask_counts",
    "mask_top",
    "parse_ratio",
    "random_mask",
]
