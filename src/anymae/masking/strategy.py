"""A masking strategy = ratio sampler + selector + loss weighting (methods.md section 0).

Any ratio sampler composes with any selector and any weighting. Selectors and weightings
that need the model's own view of the batch share one no-grad full pass per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from anymae.errors import UserError
from anymae.masking.ratios import RatioSampler, mask_counts
from anymae.masking.selectors import (
    block_mask,
    cosine_sigma,
    informed_scores,
    mask_top,
    normalized_cut,
    random_mask,
    self_guided_mask,
    span_mask,
    with_hints,
)
from anymae.model.attention import GuideSelect
from anymae.model.mae import Inspection, MaskedAutoencoder
from anymae.tokens import TokenBatch


@dataclass
class MaskPlan:
    """What the model needs for one step: a mask now, or a selector the guide layer calls."""

    masked: torch.Tensor | None = None
    select: GuideSelect | None = None
    weights: torch.Tensor | None = None  # (B, N) loss weights; None = every masked token counts 1
    normalise_by_weights: bool = False  # sum(w l m) / sum(w m) instead of / sum(m)


@dataclass
class Step:
    """Everything a selector or weighting may read for one batch; the full pass is run at most once."""

    model: MaskedAutoencoder
    batch: TokenBatch
    generator: torch.Generator
    progress: float
    counts: torch.Tensor
    needs_received: bool = True  # whether the full pass must also map the attention each token receives
    layer: int = 0  # encoder layer whose token features the full pass returns (0 = the last)
    _inspection: Inspection | None = field(default=None, repr=False)
    _cut: torch.Tensor | None = field(default=None, repr=False)

    @property
    def inspection(self) -> Inspection:
        if self._inspection is None:
            was_training = self.model.training
            self.model.eval()
            self._inspection = self.model.inspect(self.batch, self.needs_received, self.layer)
            self.model.train(was_training)
        return self._inspection

    def cut(self, tau: float) -> torch.Tensor:
        """The normalized-cut vector y (B, N) of the model's own token features (main group > 0)."""
        if self._cut is None:
            features = self.inspection.features
            if features is None:
                raise UserError("normalized-cut masks and maps need per-token features: use model.mode=self")
            self._cut = normalized_cut(features, self.batch.valid, tau)
        return self._cut


@dataclass
class RandomSelector:
    def __call__(self, step: Step) -> MaskPlan:
        return MaskPlan(masked=random_mask(step.batch.valid, step.counts, step.generator))


@dataclass
class SpanSelector:
    mean_length: float = 3.0

    def __call__(self, step: Step) -> MaskPlan:
        return MaskPlan(masked=span_mask(step.batch.valid, step.counts, step.generator, self.mean_length))


@dataclass
class BlockSelector:
    grid: tuple[int, int]

    def __call__(self, step: Step) -> MaskPlan:
        return MaskPlan(masked=block_mask(step.batch.valid, step.counts, step.generator, self.grid))


@dataclass
class SelfGuidedSelector:
    """SMA: the guide layer calls this with its logits, in the same forward pass.

    `guide_scores="content"` (ours, methods.md 3.5) selects from logits of the guide layer's own
    q and k applied to the content embeddings without positions, so masks cannot simply follow
    the position embeddings; the layer itself still attends with its full logits.
    """

    per_query: int = 3
    aggregation: str = "mean"
    mask_self: bool = True
    curriculum: bool = False
    schedule: float = 0.25
    guide_scores: str = "full"  # full | content
    position_debias: bool = False

    def __call__(self, step: Step) -> MaskPlan:
        sigma = cosine_sigma(step.progress, self.schedule) if self.curriculum else 0.0
        model, batch = step.model, step.batch

        def select(scores: torch.Tensor) -> torch.Tensor:
            if self.guide_scores == "content":
                content = model.embed_tokens(batch, with_position=False)
                queries = content if model.latents is None else model.latents.expand(len(content), -1, -1)
                scores, _ = model.guide.logits(queries, content, batch.valid)
            return self_guided_mask(
                scores.detach(),
                batch.valid,
                step.counts,
                step.generator,
                self.per_query,
                self.aggregation,
                self.mask_self,
                sigma,
                self.position_debias,
            )

        return MaskPlan(select=select)


@dataclass
class InformedSelector:
    """Self-Guided MAE: random masks during warm-up, then the model's own normalized cut."""

    start: float = 0.2
    rank: str = "main"
    hint: float = 0.1
    cut_tau: float = 0.2

    def __call__(self, step: Step) -> MaskPlan:
        valid = step.batch.valid
        if step.progress < self.start:
            return MaskPlan(masked=random_mask(valid, step.counts, step.generator))
        scores = informed_scores(step.inspection.features, valid, step.cut(self.cut_tau), self.rank)
        masked = mask_top(scores, valid, step.counts)
        return MaskPlan(masked=with_hints(masked, valid, self.hint, step.generator))


@dataclass
class AttentionGuidedWeighting:
    """AttG: w = exp(M / tau) with M an importance map min-max normalised over valid tokens."""

    source: str = "cut"  # cut | attention | given
    tau: float = 0.75
    tau_end: float = 0.0
    cut_tau: float = 0.2

    def tau_at(self, progress: float) -> float:
        if self.tau_end <= 0:
            return self.tau
        return self.tau_end + 0.5 * (self.tau - self.tau_end) * (1 + math.cos(math.pi * min(progress, 1.0)))

    def importance(self, step: Step) -> torch.Tensor:
        if self.source == "cut":
            return step.cut(self.cut_tau)
        if self.source == "attention":
            return step.inspection.received
        if step.batch.importance is None:
            raise UserError("masking.map_source=given needs a per-token importance map with the data")
        return step.batch.importance

    def __call__(self, step: Step) -> torch.Tensor:
        valid = step.batch.valid
        importance = self.importance(step).float()
        low = importance.masked_fill(~valid, float("inf")).amin(1, keepdim=True)
        high = importance.masked_fill(~valid, float("-inf")).amax(1, keepdim=True)
        normalised = ((importance - low) / (high - low).clamp(min=1e-12)).masked_fill(~valid, 0.0)
        return torch.exp(normalised / self.tau_at(step.progress))


@dataclass
class MaskingStrategy:
    ratio: RatioSampler
    selector: RandomSelector | SpanSelector | BlockSelector | SelfGuidedSelector | InformedSelector
    weighting: AttentionGuidedWeighting | None = None
    normalise_by_weights: bool = False
    cut_layer: int = 0  # encoder layer whose token features informed masks and cut maps read (0 = last)

    def step(self, model: MaskedAutoencoder, batch: TokenBatch, generator: torch.Generator, progress: float) -> Step:
        """Draw this batch's ratios and counts; `progress` is the fraction of training done, in [0, 1]."""
        counts = mask_counts(self.ratio(len(batch.valid), generator), batch.valid)
        needs_received = self.weighting is not None and self.weighting.source == "attention"
        return Step(model, batch, generator, progress, counts, needs_received, self.cut_layer)

    def plan(
        self, model: MaskedAutoencoder, batch: TokenBatch, generator: torch.Generator, progress: float
    ) -> MaskPlan:
        step = self.step(model, batch, generator, progress)
        plan = self.selector(step)
        if self.weighting is not None:
            plan.weights = self.weighting(step)
            plan.normalise_by_weights = self.normalise_by_weights
        return plan
