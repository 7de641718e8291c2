"""Attention blocks: the guide layer (the first encoder layer, where masking happens) and SDPA blocks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: float) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def keep_visible(x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gather the kept rows of each sample to the front, in order, padded to the largest kept count.

    Returns the rows and their validity (None when no sample needs padding). Padding rows hold
    zeros, never a dropped row.
    """
    index, kept = kept_index(keep)
    x = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))
    return (x, None) if kept is None else (x * kept[..., None].to(x.dtype), kept)


def kept_index(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positions (B, K) of the kept entries of each sample, in order, and which of them are real
    (None when every sample keeps K)."""
    n_keep = keep.sum(dim=1)
    width, least = torch.stack([n_keep.max(), n_keep.min()]).tolist()  # one host sync: the padded width
    index = (~keep).to(torch.int8).argsort(dim=1, stable=True)[:, :width]
    return (index, None) if least == width else (index, keep.gather(1, index))


class Block(nn.Module):
    """Pre-LN transformer block on SDPA: self-attention, or cross-attention when `memory` is given."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    @torch.no_grad()
    def attention(self, x: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention probabilities (B, H, N, N), computed explicitly (for diagnostics)."""
        h = self.norm(x)
        q = split_heads(self.q(h), self.heads)
        k = split_heads(self.kv(h).chunk(2, dim=-1)[0], self.heads)
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if key_valid is not None:
            scores = scores.masked_fill(~key_valid[:, None, None, :], float("-inf"))
        return scores.softmax(dim=-1)

    recompute = False  # train.recompute: see forward

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor | None = None, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`key_valid` (B, Nk) marks real keys; None means every key is real.

        With `recompute` and gradients on, the block keeps only its inputs for the backward pass and
        computes its activations again there: one block's activations in memory instead of every
        block's, for about a third more compute (a mask is chosen outside any block, never again)."""
        if self.recompute and torch.is_grad_enabled():
            return checkpoint(self.layer, x, memory, key_valid, use_reentrant=False)
        return self.layer(x, memory, key_valid)

    def layer(self, x: torch.Tensor, memory: torch.Tensor | None, key_valid: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(x)
        context = h if memory is None else self.norm_memory(memory)
        q = split_heads(self.q(h), self.heads)
        k, v = (split_heads(t, self.heads) for t in self.kv(context).chunk(2, dim=-1))
        attn_mask = None if key_valid is None else key_valid[:, None, None, :]
        x = x + self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)))
        return x + self.mlp(self.norm_mlp(x))


@dataclass
class GuideLogits:
    """The guide layer's logits, computed on request for chosen query rows only (never B, H, N, N).

    `shape` is that of the full logits (B, H, Nq, N); `rows(index)` gives logits (B, H, C, N) for the
    query rows `index` (B, C), padding keys at -inf. A selector reads these under no_grad.
    """

    layer: GuideLayer
    queries: torch.Tensor  # (B, Nq, D): the tokens (self mode) or the latents
    keys: torch.Tensor  # (B, H, N, dh)
    valid: torch.Tensor  # (B, N)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        b, h, n, _ = self.keys.shape
        return b, h, self.queries.shape[1], n

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        queries = self.queries.gather(1, index[..., None].expand(-1, -1, self.queries.shape[-1]))
        block = self.layer.block
        q = split_heads(block.q(block.norm(queries)), self.layer.heads)
        scores = (q @ self.keys.transpose(-2, -1)) * q.shape[-1] ** -0.5
        return scores.masked_fill(~self.valid[:, None, None, :], float("-inf"))


# A selector the guide layer calls with its logits (computed on request) -> masked (B, N).
GuideSelect = Callable[[GuideLogits], torch.Tensor]


class GuideLayer(nn.Module):
    """First encoder layer: pre-LN attention whose logits over all input tokens a selector can read.

    Queries are the tokens themselves (self mode) or learned latents (latent mode). The mask (given,
    or chosen by `select` from the logits in this same pass) removes masked tokens from the keys
    and values of every query, so masked content never reaches any output. Only the rows whose
    output is used are computed: the visible tokens (self mode) or the latents.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        # a Block in its cross-attention form: queries normalised by `norm`, the tokens by `norm_memory`
        self.block = Block(dim, heads, mlp_ratio)

    @torch.no_grad()
    def guide_logits(self, tokens: torch.Tensor, valid: torch.Tensor, latents: torch.Tensor | None) -> GuideLogits:
        """The logits a selector reads: keys over all tokens, queries computed per chosen row."""
        dim = tokens.shape[-1]
        kv = self.block.kv
        keys = split_heads(F.linear(self.block.norm_memory(tokens), kv.weight[:dim], kv.bias[:dim]), self.heads)
        return GuideLogits(self, tokens if latents is None else latents, keys, valid)

    @torch.no_grad()
    def probabilities(self, queries: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Explicit attention probabilities (B, H, Nq, N) over the valid tokens (diagnostics only)."""
        logits = self.guide_logits(tokens, valid, queries)
        return logits.rows(torch.arange(queries.shape[1], device=queries.device).expand(len(queries), -1)).softmax(-1)

    def forward(
        self,
        tokens: torch.Tensor,
        valid: torch.Tensor,
        latents: torch.Tensor | None = None,
        masked: torch.Tensor | None = None,
        select: GuideSelect | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns (outputs, their validity or None when all are real, the mask used).

        Self mode: the outputs are the visible tokens gathered to the front (`keep_visible`);
        latent mode: the latents.
        """
        if select is not None:
            with torch.no_grad():
                masked = select(self.guide_logits(tokens, valid, latents))
        if masked is None:
            masked = torch.zeros_like(valid)
        x, query_valid = self.attend(*keep_visible(tokens, valid & ~masked), latents)
        return x, query_valid, masked

    def attend(
        self, visible: torch.Tensor, visible_valid: torch.Tensor | None, latents: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The layer on the visible tokens alone (gathered to the front; `visible_valid` marks the real
        rows, None when all are): (outputs, their validity or None)."""
        queries, query_valid = (visible, visible_valid) if latents is None else (latents, None)
        return self.block(queries, memory=visible, key_valid=visible_valid), query_valid
