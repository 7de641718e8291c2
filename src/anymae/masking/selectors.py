"""Selectors: which tokens to hide (methods.md section 2). Each returns `masked` (B, N) bool."""

from __future__ import annotations

import torch


def mask_top(scores: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mask the `counts[b]` highest-scoring valid tokens of each sample, batched.

    Sort once, then compare each position's rank with m_b: exact counts with no loop over samples.
    Ties are broken by position (stable sort), so equal inputs give equal masks.
    """
    scores = scores.detach().float().masked_fill(~valid, float("-inf"))
    order = scores.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=order.device).expand_as(order)
    )
    return (rank < counts[:, None]) & valid


def uniform_noise(valid: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise (B, N) drawn from `generator` on its device (CPU generators stay on CPU)."""
    noise = torch.rand(valid.shape, generator=generator, device=generator.device)
    return noise.to(valid.device)


def random_mask(valid: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """MAE/BERT: a uniformly random subset of m_b valid tokens."""
    return mask_top(uniform_noise(valid, generator), valid, counts)
