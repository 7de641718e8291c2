"""Attention blocks: the guide layer (explicit logits a selector can read) and SDPA blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# A selector the guide layer calls with its detached logits (B, H, Nq, N) -> masked (B, N).
GuideSelect = Callable[[torch.Tensor], torch.Tensor]


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


class GuideLayer(nn.Module):
    """First encoder layer: pre-LN attention with explicit logits S over all input tokens.

    Queries are the tokens themselves (self mode) or learned latents (latent mode). Padding keys
    get -inf. The mask (given, or chosen by `select` from S in this same pass) sets -inf at
    masked keys for every query and head, so masked content never reaches any output.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio)

    def logits(
        self, queries: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention logits S (B, H, Nq, N), padding keys at -inf, and the values (B, H, N, dh)."""
        q = split_heads(self.q(self.norm_q(queries)), self.heads)
        k, v = self.kv(self.norm_kv(tokens)).chunk(2, dim=-1)
        k, v = split_heads(k, self.heads), split_heads(v, self.heads)
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        return scores.masked_fill(~valid[:, None, None, :], float("-inf")), v

    def forward(
        self,
        queries: torch.Tensor,
        tokens: torch.Tensor,
        valid: torch.Tensor,
        masked: torch.Tensor | None = None,
        select: GuideSelect | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (outputs for the queries, the mask used, the attention probabilities)."""
        scores, v = self.logits(queries, tokens, valid)
        if select is not None:
            masked = select(scores.detach())
        if masked is None:
            masked = torch.zeros_like(valid)
        attention = scores.masked_fill(masked[:, None, None, :], float("-inf")).softmax(dim=-1)
        x = queries + self.proj(merge_heads(attention @ v))
        return x + self.mlp(self.norm_mlp(x)), masked, attention


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

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor | None = None, key_valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`key_valid` (B, Nk) marks real keys; None means every key is real."""
        h = self.norm(x)
        context = h if memory is None else self.norm_memory(memory)
        q = split_heads(self.q(h), self.heads)
        k, v = (split_heads(t, self.heads) for t in self.kv(context).chunk(2, dim=-1))
        attn_mask = None if key_valid is None else key_valid[:, None, None, :]
        x = x + self.proj(merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)))
        return x + self.mlp(self.norm_mlp(x))
