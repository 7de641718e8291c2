"""Masking: ratio samplers, selectors and loss weightings, and the strategy composing them."""

from __future__ import annotations

from anymae.config import MaskingConfig, ModelConfig
from anymae.errors import UserError
from anymae.masking.ratios import FixedRatio, UniformRatio, mask_counts, parse_ratio
from anymae.masking.selectors import mask_top, random_mask
from anymae.masking.strategy import (
    AttentionGuidedWeighting,
    BlockSelector,
    InformedSelector,
    MaskingStrategy,
    MaskPlan,
    RandomSelector,
    SelfGuidedSelector,
    SpanSelector,
)
from anymae.tokens import ModalitySpec

STRATEGIES = ("random", "span", "block", "sma", "informed")
LOSS_WEIGHTINGS = ("uniform", "attention-guided")


def choice(value: str, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise UserError(f"masking.{key} must be one of {', '.join(allowed)}, not '{value}'")
    return value


def build_strategy(config: MaskingConfig, spec: ModalitySpec, model: ModelConfig | None = None) -> MaskingStrategy:
    """The strategy a config describes, checked against what it needs of the `model`."""
    model = model or ModelConfig()
    uses_cut = config.strategy == "informed" or (
        config.loss_weighting == "attention-guided" and config.map_source == "cut"
    )
    if uses_cut and model.mode != "self":
        raise UserError("informed masks and cut maps need per-token features: use model.mode=self")
    if not 0 <= config.cut_layer <= model.depth:
        raise UserError(f"masking.cut_layer must be 0 (the last layer) or a layer from 1 to {model.depth}")
    ratio = parse_ratio(config.ratio or f"fixed:{spec.default_ratio}", config.per_sample)
    strategy = choice(config.strategy, STRATEGIES, "strategy")
    if strategy == "random":
        selector = RandomSelector()
    elif strategy == "span":
        selector = SpanSelector(config.span_length)
    elif strategy == "block":
        if spec.grid is None:
            raise UserError(f"block masks need tokens on a 2-D grid (images); '{spec.name}' has none: use span")
        selector = BlockSelector(spec.grid)
    elif strategy == "sma":
        if config.per_query < 1:
            raise UserError("masking.per_query must be at least 1")
        selector = SelfGuidedSelector(
            config.per_query,
            choice(config.aggregation, ("mean", "random_mix"), "aggregation"),
            config.mask_self,
            config.curriculum,
            config.schedule,
            choice(config.guide_scores, ("full", "content"), "guide_scores"),
            config.position_debias,
        )
    else:
        selector = InformedSelector(
            config.start, choice(config.rank, ("main", "ambiguous"), "rank"), config.hint, config.cut_tau
        )
    weighting = None
    if choice(config.loss_weighting, LOSS_WEIGHTINGS, "loss_weighting") == "attention-guided":
        if config.tau <= 0:
            raise UserError("masking.tau must be positive")
        weighting = AttentionGuidedWeighting(
            choice(config.map_source, ("cut", "attention", "given"), "map_source"),
            config.tau,
            config.tau_end,
            config.cut_tau,
        )
    normalise = choice(config.normalise, ("masked", "weights"), "normalise")
    return MaskingStrategy(ratio, selector, weighting, normalise == "weights", config.cut_layer)


__all__ = [
    "AttentionGuidedWeighting",
    "BlockSelector",
    "FixedRatio",
    "InformedSelector",
    "LOSS_WEIGHTINGS",
    "MaskPlan",
    "MaskingStrategy",
    "RandomSelector",
    "STRATEGIES",
    "SelfGuidedSelector",
    "SpanSelector",
    "UniformRatio",
    "build_strategy",
    "mask_counts",
    "mask_top",
    "parse_ratio",
    "random_mask",
]
