"""A masking strategy = ratio sampler + selector + loss weighting (docs/methods.md section 0).

Any ratio sampler composes with any selector and any weighting. Selectors and weightings
that need the model's own view of the batch share one no-grad full pass per step.

Selectors form one table, `SELECTORS`, filled by subclassing `Selector`: the config, the CLI's
choices, the contract tests and the benchmarks all read it. Adding a strategy is one new
subclass with a `name` (its value of `masking.strategy`); its dataclass fields are its options,
read from the `masking.*` settings of the same names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import torch

from anymae.config import MaskingConfig, ModelConfig
from anymae.errors import UserError
from anymae.masking.ratios import RatioSampler, mask_counts, parse_ratio
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
from anymae.model.attention import GuideLogits, GuideSelect
from anymae.model.mae import FullPass, MaskedAutoencoder
from anymae.tokens import ModalitySpec, TokenBatch


@dataclass
class MaskPlan:
    """What the model needs for one step: a mask now, or a selector the guide layer calls."""

    masked: torch.Tensor | None = None
    select: GuideSelect | None = None
    weights: torch.Tensor | None = None  # (B, N) loss weights; None = every masked token counts 1
    normalise_by_weights: bool = False  # sum(w l m) / sum(w m) instead of / sum(m)


@dataclass
class MaskContext:
    """Everything a selector or weighting may read for one batch; the full pass is run at most once."""

    model: MaskedAutoencoder
    batch: TokenBatch
    generator: torch.Generator
    progress: float
    counts: torch.Tensor
    needs_received: bool = True  # whether the full pass must also map the attention each token receives
    layer: int = 0  # encoder layer whose token features the full pass returns (0 = the last)
    _full_pass: FullPass | None = field(default=None, repr=False)
    _cut: torch.Tensor | None = field(default=None, repr=False)

    @property
    def full_pass(self) -> FullPass:
        if self._full_pass is None:
            was_training = self.model.training
            self.model.eval()
            self._full_pass = self.model.full_pass(self.batch, self.needs_received, self.layer)
            self.model.train(was_training)
        return self._full_pass

    def rows(self, keep: torch.Tensor) -> MaskContext:
        """The context of the rows `keep` (B,) bool of this batch, with their counts; nothing computed yet."""
        batch, counts = self.batch.rows(keep), self.counts[keep]
        return MaskContext(self.model, batch, self.generator, self.progress, counts, self.needs_received, self.layer)

    def cut(self, tau: float) -> torch.Tensor:
        """The normalized-cut vector y (B, N) of the model's own token features (main group > 0)."""
        if self._cut is None:
            features = self.full_pass.features
            if features is None:
                raise UserError("normalized-cut masks and maps need per-token features: use model.mode=self")
            self._cut = normalized_cut(features, self.batch.valid, tau)
        return self._cut


SELECTORS: dict[str, type[Selector]] = {}


class Selector:
    """The selector protocol: `name`, its options (the dataclass fields), `build` and `__call__`.

    Subclasses register themselves in `SELECTORS`. `needs_features` (per-token features of a
    full pass: self mode only) and `needs_grid` (tokens on a 2-D grid) are checked against the
    config and the data before training.
    """

    name: ClassVar[str]
    needs_features: ClassVar[bool] = False
    needs_grid: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name in SELECTORS:
            raise TypeError(f"two selectors are named '{cls.name}'")
        SELECTORS[cls.name] = cls

    @classmethod
    def build(cls, config: MaskingConfig, spec: ModalitySpec) -> Selector:
        """The selector a config describes: each field of the subclass from `masking.<field>`."""
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
        return cls(**options)

    def __call__(self, context: MaskContext) -> MaskPlan:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """State that a checkpoint carries (JSON-able) so that a resumed run masks exactly alike."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def tensors(self) -> dict[str, torch.Tensor]:
        """Tensor state that a checkpoint carries (too large for JSON), such as kept per-sample scores."""
        return {}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


@dataclass
class RandomSelector(Selector):
    name = "random"

    def __call__(self, context: MaskContext) -> MaskPlan:
        return MaskPlan(masked=random_mask(context.batch.valid, context.counts, context.generator))


@dataclass
class SpanSelector(Selector):
    name = "span"
    span_length: float = 3.0

    def __call__(self, context: MaskContext) -> MaskPlan:
        c = context
        return MaskPlan(masked=span_mask(c.batch.valid, c.counts, c.generator, self.span_length))


@dataclass
class BlockSelector(Selector):
    name = "block"
    needs_grid = True
    grid: tuple[int, int] = (0, 0)

    @classmethod
    def build(cls, config: MaskingConfig, spec: ModalitySpec) -> Selector:
        return cls(spec.grid)  # type: ignore[arg-type]

    def __call__(self, context: MaskContext) -> MaskPlan:
        return MaskPlan(masked=block_mask(context.batch.valid, context.counts, context.generator, self.grid))


@dataclass
class SelfGuidedSelector(Selector):
    """SMA: the guide layer calls this with its logits, in the same forward pass.

    `guide_scores="content"` (ours, docs/methods.md 2.3) selects from logits of the guide layer's
    own q and k applied to the content embeddings without positions, so masks cannot simply
    follow the position embeddings; the layer itself still attends with its full logits.

    `position_debias` (ours) subtracts each position's *running* mean score (over the batches of
    training so far, not the current batch) before the top-k, so no position is hidden almost
    always just for being that position, and one sample's mask does not depend on its batch.
    The mean is updated after each training batch's selection (never in eval mode) and is
    carried by checkpoints (`state_dict`), so a resumed run masks exactly as an uninterrupted one.
    """

    name = "sma"
    per_query: int = 3
    aggregation: str = "mean"
    mask_self: bool = True
    curriculum: bool = False
    schedule: float = 0.25
    guide_scores: str = "full"  # full | content
    position_debias: bool = False
    momentum: ClassVar[float] = 0.05  # weight of the newest batch in the running mean (a cumulative mean at first)
    position_mean: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)  # (N,) float32
    updates: int = field(default=0, init=False, repr=False, compare=False)

    def debias(self, token_score: torch.Tensor, valid: torch.Tensor, update: bool) -> torch.Tensor:
        """Subtract the running per-position mean; then (training only) fold this batch into it."""
        n = token_score.shape[1]
        if self.position_mean is None or len(self.position_mean) < n:
            grown = torch.zeros(n, dtype=torch.float32, device=token_score.device)
            if self.position_mean is not None:
                grown[: len(self.position_mean)] = self.position_mean
            self.position_mean = grown
        mean = self.position_mean.to(token_score.device)  # stays on the device: no sync per step
        debiased = token_score - mean[:n]
        if update:
            weight = max(self.momentum, 1.0 / (self.updates + 1))
            seen = valid.sum(0)
            batch_mean = (token_score * valid).sum(0) / seen.clamp(min=1)
            step = torch.where(seen > 0, weight * (batch_mean - mean[:n]), 0.0)
            self.position_mean = torch.cat([mean[:n] + step, mean[n:]]).float()
            self.updates += 1
        return debiased

    def __call__(self, context: MaskContext) -> MaskPlan:
        sigma = cosine_sigma(context.progress, self.schedule) if self.curriculum else 0.0
        model, batch, counts, generator = context.model, context.batch, context.counts, context.generator

        def select(logits: GuideLogits) -> torch.Tensor:
            if self.guide_scores == "content":
                content = model.embed_tokens(batch, with_position=False)
                latents = None if model.latents is None else model.latents.expand(len(content), -1, -1)
                logits = model.guide.guide_logits(content, batch.valid, latents)
            return self_guided_mask(
                logits,
                batch.valid,
                counts,
                generator,
                self.per_query,
                self.aggregation,
                self.mask_self,
                sigma,
                partial(self.debias, valid=batch.valid, update=model.training) if self.position_debias else None,
            )

        return MaskPlan(select=select)

    def state_dict(self) -> dict:
        if self.position_mean is None:
            return {}
        return {"position_mean": self.position_mean.cpu().tolist(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.position_mean = torch.tensor(state["position_mean"], dtype=torch.float32)
            self.updates = int(state["updates"])


@dataclass
class InformedSelector(Selector):
    """Self-Guided MAE: random masks during warm-up, then the model's own normalized cut.

    With `refresh_every` k > 1 each sample's scores are kept and reused the next k - 1 times the
    sample is drawn (docs/methods.md 2.4 step 6), so the no-grad full pass runs only on the rows
    whose scores are missing or used up; the mask itself (counts, hints) is drawn fresh each time.
    """

    name = "informed"
    needs_features = True
    start: float = 0.2
    rank: str = "main"
    hint: float = 0.1
    cut_tau: float = 0.2
    refresh_every: int = 1
    scores: torch.Tensor | None = field(default=None, init=False, repr=False)  # (rows, N), per dataset row
    uses: torch.Tensor | None = field(default=None, init=False, repr=False)  # (rows,), 0 = no scores kept

    def __call__(self, context: MaskContext) -> MaskPlan:
        valid = context.batch.valid
        if context.progress < self.start:
            return MaskPlan(masked=random_mask(valid, context.counts, context.generator))
        masked = mask_top(self.scores_for(context), valid, context.counts)
        return MaskPlan(masked=with_hints(masked, valid, self.hint, context.generator))

    def fresh_scores(self, context: MaskContext) -> torch.Tensor:
        return informed_scores(context.full_pass.features, context.batch.valid, context.cut(self.cut_tau), self.rank)

    def scores_for(self, context: MaskContext) -> torch.Tensor:
        index = context.batch.index
        if self.refresh_every == 1 or index is None:  # nothing to reuse: the batch's own full pass
            return self.fresh_scores(context)
        self.make_room(int(index.max()) + 1, context.batch.valid.shape[1])
        assert self.scores is not None and self.uses is not None
        stale = (self.uses[index] == 0) | (self.uses[index] >= self.refresh_every)
        if bool(stale.all()):  # the batch's own context: its full pass stays shared with a weighting
            self.scores[index] = self.fresh_scores(context).cpu()
        elif bool(stale.any()):
            rows = stale.to(context.batch.valid.device)
            self.scores[index[stale]] = self.fresh_scores(context.rows(rows)).cpu()
        self.uses[index[stale]] = 0
        self.uses[index] += 1
        return self.scores[index].to(context.batch.valid.device)

    def make_room(self, rows: int, tokens: int) -> None:
        if self.scores is None or self.uses is None:
            self.scores, self.uses = torch.zeros(0, tokens), torch.zeros(0, dtype=torch.int32)
        if rows > len(self.uses):  # grown geometrically: rows arrive in random order during the first epoch
            grow = max(rows, 2 * len(self.uses)) - len(self.uses)
            self.scores = torch.cat([self.scores, torch.zeros(grow, tokens)])
            self.uses = torch.cat([self.uses, torch.zeros(grow, dtype=torch.int32)])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.scores is None or self.uses is None else {"scores": self.scores, "uses": self.uses}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "scores" in tensors and "uses" in tensors:
            self.scores, self.uses = tensors["scores"].float().clone(), tensors["uses"].to(torch.int32).clone()


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

    def importance(self, context: MaskContext) -> torch.Tensor:
        if self.source == "cut":
            return context.cut(self.cut_tau)
        if self.source == "attention":
            return context.full_pass.received
        if context.batch.importance is None:
            raise UserError("masking.map_source=given needs a per-token map with the data: set data.importance")
        return context.batch.importance

    def __call__(self, context: MaskContext) -> torch.Tensor:
        valid = context.batch.valid
        importance = self.importance(context).float()
        low = importance.masked_fill(~valid, float("inf")).amin(1, keepdim=True)
        high = importance.masked_fill(~valid, float("-inf")).amax(1, keepdim=True)
        normalised = ((importance - low) / (high - low).clamp(min=1e-12)).masked_fill(~valid, 0.0)
        return torch.exp(normalised / self.tau_at(context.progress))


@dataclass
class MaskingStrategy:
    ratio: RatioSampler
    selector: Selector
    weighting: AttentionGuidedWeighting | None = None
    normalise_by_weights: bool = False
    cut_layer: int = 0  # encoder layer whose token features informed masks and cut maps read (0 = last)

    def context(
        self, model: MaskedAutoencoder, batch: TokenBatch, generator: torch.Generator, progress: float
    ) -> MaskContext:
        """Draw this batch's ratios and counts; `progress` is the fraction of training done, in [0, 1]."""
        counts = mask_counts(self.ratio(len(batch.valid), generator), batch.valid)
        needs_received = self.weighting is not None and self.weighting.source == "attention"
        return MaskContext(model, batch, generator, progress, counts, needs_received, self.cut_layer)

    def plan(
        self, model: MaskedAutoencoder, batch: TokenBatch, generator: torch.Generator, progress: float
    ) -> MaskPlan:
        context = self.context(model, batch, generator, progress)
        plan = self.selector(context)
        if self.weighting is not None:
            plan.weights = self.weighting(context)
            plan.normalise_by_weights = self.normalise_by_weights
        return plan

    def state_dict(self) -> dict:
        return self.selector.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.selector.load_state_dict(state)

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.selector.tensors()

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.selector.load_tensors(tensors)


def uses_cut(config: MaskingConfig) -> bool:
    return config.loss_weighting == "attention-guided" and config.map_source == "cut"


def check_strategy(config: MaskingConfig, model: ModelConfig, spec: ModalitySpec | None = None) -> type[Selector]:
    """The selector class a config names, checked against the model config and (when known) the data."""
    if config.strategy not in SELECTORS:
        raise UserError(f"masking.strategy must be one of {', '.join(SELECTORS)}, got {config.strategy!r}")
    selector = SELECTORS[config.strategy]
    if (selector.needs_features or uses_cut(config)) and model.mode != "self":
        what = f"masking.strategy={selector.name}" if selector.needs_features else "masking.map_source=cut"
        raise UserError(f"{what} needs per-token features: use model.mode=self")
    if not 0 <= config.cut_layer <= model.depth:
        raise UserError(f"masking.cut_layer must be 0 (the last layer) or a layer from 1 to {model.depth}")
    if config.ratio and config.ratio != "uniform":  # 'uniform' takes the spec's range in build_strategy
        parse_ratio(config.ratio, config.per_sample)
    if spec is not None and selector.needs_grid and spec.grid is None:
        raise UserError(
            f"masking.strategy={selector.name} needs tokens on a 2-D grid (images); '{spec.name}' has none: use span"
        )
    return selector
