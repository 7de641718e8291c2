"""Ratio samplers: how much of each sample to hide (docs/methods.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anymae.errors import UserError
from anymae.tokens import FeatureTokens


@dataclass(frozen=True)
class FixedRatio:
    """r_b = ratio for every sample."""

    ratio: float

    def __call__(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return torch.full((batch_size,), self.ratio)


@dataclass(frozen=True)
class UniformRatio:
    """R²MAE: r ~ U(lo, hi), one draw per batch (default) or one per sample."""

    lo: float
    hi: float
    per_sample: bool = False

    def __call__(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        draws = torch.rand(batch_size if self.per_sample else 1, generator=generator)
        return (self.lo + (self.hi - self.lo) * draws).expand(batch_size)


RatioSampler = FixedRatio | UniformRatio


def uniform_range(spec) -> tuple[float, float]:
    """R²MAE's default range of a modality (methods.md section 1): images U(0.6, 0.9), token
    ids U(0.05, 0.45), feature tokens U(0.1, 0.5); other modalities their fixed default ± 0.15."""
    if spec.grid is not None:
        return 0.6, 0.9
    if spec.discrete:
        return 0.05, 0.45
    if isinstance(spec, FeatureTokens):
        return 0.1, 0.5
    return max(0.05, spec.default_ratio - 0.15), min(0.95, spec.default_ratio + 0.15)


def parse_ratio(text: str, per_sample: bool = False, spec=None) -> RatioSampler:
    """'0.75' or 'fixed:0.75' -> FixedRatio; 'uniform:0.6,0.9' -> UniformRatio; 'uniform' -> the spec's range."""
    if text == "uniform" and spec is not None:
        return UniformRatio(*uniform_range(spec), per_sample)
    kind, _, args = text.partition(":") if ":" in text else ("fixed", "", text)
    try:
        numbers = [float(a) for a in args.split(",")]
    except ValueError:
        numbers = []
    if kind == "fixed" and len(numbers) == 1 and 0 < numbers[0] < 1:
        return FixedRatio(numbers[0])
    if kind == "uniform" and len(numbers) == 2 and 0 < numbers[0] <= numbers[1] < 1:
        return UniformRatio(numbers[0], numbers[1], per_sample)
    raise UserError(f"ratio '{text}' is not valid: use 'fixed:R', 'uniform' or 'uniform:LO,HI' with 0 < LO <= HI < 1")


def mask_counts(ratios: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """m_b = clamp(round(r_b * n_valid), 1, n_valid - 1): at least one token hidden and one seen."""
    n_valid = valid.sum(dim=1)
    counts = torch.round(ratios.to(n_valid.device) * n_valid).long()
    return torch.minimum(counts.clamp(min=1), (n_valid - 1).clamp(min=0))
