"""Selectors: which tokens to hide (docs/methods.md section 2). Each returns `masked` (B, N) bool.

All are batched (no loop over samples), exact (m_b tokens per sample), never mask padding,
and draw randomness only from the generator they are given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from anymae.model.attention import kept_index


def mask_top(scores: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mask the `counts[b]` highest-scoring valid tokens of each sample, batched.

    Sort once, then compare each position's rank with m_b: exact counts with no loop over samples.
    Ties are broken by position (stable sort), so equal inputs give equal masks.
    """
    scores = scores.detach().float().masked_fill(~valid, float("-inf"))
    order = scores.argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    return (rank < counts[:, None]) & valid


def uniform_noise(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform noise drawn from `generator` on its own device, then moved to `device`."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def random_mask(valid: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """MAE / BERT: a uniformly random subset of m_b valid tokens."""
    return mask_top(uniform_noise(valid.shape, generator, valid.device), valid, counts)


def span_mask(
    valid: torch.Tensor, counts: torch.Tensor, generator: torch.Generator, mean_length: float = 3.0
) -> torch.Tensor:
    """SpanBERT-like 1-D spans: cut each sequence into segments of geometric length (mean
    `mean_length`), give each segment one random score, and mask whole segments in score order;
    the last one is cut to hit m_b exactly."""
    starts = uniform_noise(valid.shape, generator, valid.device) < 1.0 / mean_length
    starts[:, 0] = True
    segment = starts.long().cumsum(dim=1) - 1
    segment_score = uniform_noise(valid.shape, generator, valid.device)
    return mask_top(segment_score.gather(1, segment), valid, counts)


def block_mask(
    valid: torch.Tensor, counts: torch.Tensor, generator: torch.Generator, grid: tuple[int, int], sizes=(2, 3, 4)
) -> torch.Tensor:
    """BEiT-like 2-D blocks: tile the grid with square blocks (side drawn per sample from `sizes`,
    random offset), give each block one random score, and mask whole blocks in score order."""
    b, n = valid.shape
    rows, cols = grid
    device = valid.device
    side = torch.tensor(sizes, device=device)[
        torch.randint(len(sizes), (b,), generator=generator, device=generator.device).to(device)
    ]
    offset = (uniform_noise((b, 2), generator, device) * side[:, None]).long()
    y = torch.arange(n, device=device) // cols
    x = torch.arange(n, device=device) % cols
    block_y = (y[None] + offset[:, :1]) // side[:, None]
    block_x = (x[None] + offset[:, 1:]) // side[:, None]
    block = block_y * (cols + max(sizes)) + block_x  # a unique id per block
    block_score = uniform_noise((b, (rows + max(sizes)) * (cols + max(sizes))), generator, device)
    return mask_top(block_score.gather(1, block), valid, counts)


class Logits(Protocol):
    """Attention logits read row by row: `shape` (B, H, Nq, N) and `rows(index)` -> (B, H, C, N)
    for the query rows `index` (B, C). The guide layer computes only the rows asked for."""

    @property
    def shape(self) -> tuple[int, int, int, int]: ...

    def rows(self, index: torch.Tensor) -> torch.Tensor: ...


@dataclass
class FullLogits:
    """Logits already computed in full (B, H, Nq, N), read row by row."""

    scores: torch.Tensor

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.scores.shape)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        b, h, _, n = self.scores.shape
        return self.scores.gather(2, index[:, None, :, None].expand(b, h, -1, n))


def self_guided_mask(
    scores: torch.Tensor | Logits,
    valid: torch.Tensor,
    counts: torch.Tensor,
    generator: torch.Generator,
    per_query: int = 3,
    aggregation: str = "mean",
    mask_self: bool = True,
    sigma: float = 0.0,
    debias: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk: int = 2**24,
) -> torch.Tensor:
    """SMA (docs/methods.md 2.3) from the guide layer's logits `scores` (B, H, Nq, N), full or row by row.

    Queries are the tokens themselves when Nq == N (self mode) or learned latents otherwise.
    The query rows are drawn first and only their logits are read, softmaxed and summed, in
    chunks of about `chunk` elements, so no (B, H, N, N) tensor is ever formed.
    `debias` (ours, docs/methods.md 2.3), if given, maps the summed token scores (B, N) before the
    top-k: `SelfGuidedSelector` subtracts each position's running-mean score there.
    """
    logits = FullLogits(scores) if isinstance(scores, torch.Tensor) else scores
    b, heads, n_queries, n = logits.shape
    device = valid.device
    head = None
    if aggregation != "mean":  # random_mix: one head per (sample, query) row
        head = torch.randint(heads, (b, n_queries), generator=generator, device=generator.device).to(device)
    tokens_are_queries = n_queries == n
    query_valid = valid if tokens_are_queries else torch.ones(b, n_queries, dtype=torch.bool, device=device)
    n_chosen = query_rows(counts, per_query, query_valid.sum(1))
    chosen = mask_top(uniform_noise((b, n_queries), generator, device), query_valid, n_chosen)
    index, real = kept_index(chosen)  # the chosen rows (B, C), in order
    token_score = torch.zeros(b, n, device=device)
    step = max(1, chunk // max(1, b * heads * n))
    for start in range(0, index.shape[1], step):
        rows = index[:, start : start + step]
        attention = logits.rows(rows).detach().float().softmax(dim=-1).nan_to_num(0.0)  # (B, H, c, N)
        if head is None:
            attention = attention.mean(dim=1)
        else:
            pick = head.gather(1, rows)[:, None, :, None].expand(-1, -1, -1, n)
            attention = attention.gather(1, pick).squeeze(1)
        if real is not None:
            attention = attention * real[:, start : start + step, None]
        token_score += attention.sum(dim=1)  # the sum of the chosen rows
    if debias is not None:
        token_score = debias(token_score)
    if mask_self and tokens_are_queries:
        token_score = token_score.masked_fill(chosen, float("inf"))
    if sigma <= 0:
        return mask_top(token_score, valid, counts)
    # curriculum: the top (1 - sigma) share by score, the rest random among the remaining tokens
    n_top = torch.round(counts * (1.0 - sigma)).long()
    top = mask_top(token_score, valid, n_top)
    rest = mask_top(uniform_noise(valid.shape, generator, device), valid & ~top, counts - n_top)
    return top | rest


def query_rows(counts: torch.Tensor, per_query: int, available: torch.Tensor) -> torch.Tensor:
    """SMA's number of query rows: round(m_b / k), at least 1 and at most the rows there are.

    The official code takes round(n_valid r / k) (the padded length in latent mode), which can
    be 0 rows (then every score is 0 and the mask is arbitrary) and drifts from m_b / k where
    round(n_valid r) rounds (docs/methods.md 2.3, differences from the official code).
    """
    return torch.minimum(torch.round(counts / per_query).long().clamp(min=1), available)


def cosine_sigma(progress: float, schedule: float) -> float:
    """Curriculum noise: 1 -> 0 by a half cosine over the first `schedule` of training, then 0."""
    if schedule <= 0 or progress >= schedule:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * progress / schedule))


def normalized_cut(
    features: torch.Tensor, valid: torch.Tensor, tau: float = 0.2, eps: float = 1e-5, chunk_bytes: int = 2**27
) -> torch.Tensor:
    """TokenCut's bi-partition, batched: the generalised eigenvector y (B, N) of the
    second-smallest eigenvalue of (D - W) y = λ D y, split at mean(y) and signed so that the main
    group (the side holding argmax |y|) is positive. Padding gets y = 0 and never affects the
    valid tokens.

    Solved exactly, in float64 (y = D^-1/2 x for x the eigenvector of A = D^-1/2 W D^-1/2 with the
    second-largest eigenvalue): iterative solvers need a gap between the 2nd and 3rd eigenvalues,
    and the nearly uniform features of an early-training encoder leave gaps of 1e-5
    (docs/methods.md 2.4). Samples go through in chunks of about `chunk_bytes` of matrices.
    """
    b, n = valid.shape
    y = torch.zeros(b, n, dtype=torch.float64, device=valid.device)
    step = max(1, chunk_bytes // (8 * n * n))
    for start in range(0, b, step):
        rows = slice(start, start + step)
        y[rows] = second_eigenvector(features[rows].double(), valid[rows], tau, eps)
    peak = y.abs().argmax(dim=1, keepdim=True)
    y = (y - y.sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp(min=1)) * valid  # split at mean(y)
    return (y * torch.sign(y.gather(1, peak))).float()


def second_eigenvector(features: torch.Tensor, valid: torch.Tensor, tau: float, eps: float) -> torch.Tensor:
    """D^-1/2 x for x the eigenvector of A = D^-1/2 W D^-1/2 with the second-largest eigenvalue."""
    z = F.normalize(features, dim=-1)
    similarity = z @ z.transpose(1, 2)
    w = similarity.masked_fill_(similarity < tau, eps)
    if not bool(valid.all()):
        w = w * (valid[:, :, None] & valid[:, None, :])
    inv_sqrt = w.sum(dim=-1).clamp(min=eps).rsqrt() * valid
    a = w.mul_(inv_sqrt[:, :, None]).mul_(inv_sqrt[:, None, :])
    if a.is_cuda:  # one batched eigh; padding at -2 sorts below every valid eigenvalue (A's lie in [-1, 1])
        a = a - 2.0 * torch.diag_embed((~valid).double())
        return torch.linalg.eigh(a)[1][..., -2] * inv_sqrt
    return second_eigenvector_lapack(a, valid) * inv_sqrt


def second_eigenvector_lapack(a: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """On the CPU, LAPACK's syevr computes that one eigenvector per sample (on its valid tokens):
    1.5x faster than a batched `eigh`, which computes all N of them."""
    x = torch.zeros(valid.shape, dtype=torch.float64)
    for row, (matrix, keep) in enumerate(zip(a.numpy(), valid.numpy())):
        k = int(keep.sum())
        if k < 2:
            continue
        index = np.flatnonzero(keep)
        block = matrix if k == len(keep) else matrix[np.ix_(index, index)]
        _, vector = scipy.linalg.eigh(block, subset_by_index=[k - 2, k - 2], driver="evr", check_finite=False)
        x[row, index] = torch.from_numpy(vector[:, 0])
    return x


def informed_scores(features: torch.Tensor, valid: torch.Tensor, cut: torch.Tensor, rank: str) -> torch.Tensor:
    """Scores for the informed mask (docs/methods.md 2.4 step 4), higher = masked first.

    `main`: cosine similarity to the main group's mean feature (hides the main group as a whole);
    `ambiguous`: minus the best similarity to either group's mean (hides tokens between groups).
    """
    z = F.normalize(features.float(), dim=-1)
    main = ((cut > 0) & valid).float()
    other = ((cut <= 0) & valid).float()

    def group_similarity(members: torch.Tensor) -> torch.Tensor:
        centre = F.normalize((z * members[..., None]).sum(1), dim=-1)
        return (z * centre[:, None, :]).sum(-1)

    if rank == "main":
        return group_similarity(main)
    return -torch.maximum(group_similarity(main), group_similarity(other))


def with_hints(masked: torch.Tensor, valid: torch.Tensor, hint: float, generator: torch.Generator) -> torch.Tensor:
    """Reveal a share `hint` of the masked tokens and mask as many random unmasked ones instead."""
    counts = masked.sum(1)
    n_hint = torch.minimum(torch.round(counts * hint).long(), (valid & ~masked).sum(1))
    reveal = mask_top(uniform_noise(valid.shape, generator, valid.device), masked, n_hint)
    add = mask_top(uniform_noise(valid.shape, generator, valid.device), valid & ~masked, n_hint)
    return (masked & ~reveal) | add
