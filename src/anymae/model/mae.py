"""The masked autoencoder: embed -> guide layer -> encoder blocks -> per-position decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from anymae.config import ModelConfig
from anymae.model.attention import Block, GuideLayer, GuideSelect, keep_visible, kept_index
from anymae.tokens import ModalitySpec, TokenBatch


@dataclass
class Encoded:
    """Encoder output: `memory` (B, M, D) with `memory_valid` (B, M), and the mask used."""

    memory: torch.Tensor
    memory_valid: torch.Tensor | None  # None: every memory slot is real
    masked: torch.Tensor  # (B, N)


@dataclass
class FullPass:
    """A no-grad pass over all tokens: token features of one layer and the attention each token receives."""

    features: torch.Tensor | None  # (B, N, D) in self mode; None in latent mode (no per-token features)
    received: torch.Tensor | None  # (B, N): mean attention each token receives in the last layer; None if skipped


class MaskedAutoencoder(nn.Module):
    def __init__(self, spec: ModalitySpec, config: ModelConfig) -> None:
        super().__init__()
        if config.mode not in ("self", "latent"):
            raise ValueError(f"model.mode must be 'self' or 'latent', not '{config.mode}'")
        self.spec, self.config = spec, config
        d, dd, n = config.dim, config.decoder_dim, spec.max_tokens
        self.embed = nn.Embedding(spec.vocab_size, d) if spec.discrete else nn.Linear(spec.channels, d)
        self.position = nn.Parameter(torch.zeros(1, n, d)) if spec.positional else None
        self.embed_norm = nn.LayerNorm(d)
        self.latents = nn.Parameter(torch.zeros(1, config.latents, d)) if config.mode == "latent" else None
        self.guide = GuideLayer(d, config.heads, config.mlp_ratio)
        self.blocks = nn.ModuleList(Block(d, config.heads, config.mlp_ratio) for _ in range(config.depth - 1))
        self.norm = nn.LayerNorm(d)
        # Decoder: one query per position (position embedding + mask token) cross-attends to memory.
        self.to_decoder = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_position = nn.Parameter(torch.zeros(1, n, dd)) if spec.positional else None
        self.decoder = nn.ModuleList(
            Block(dd, config.decoder_heads, config.mlp_ratio) for _ in range(config.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(dd)
        self.head = nn.Linear(dd, spec.vocab_size if spec.discrete else spec.channels)
        self.apply(self._init)
        for p in (self.position, self.latents, self.mask_token, self.decoder_position):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def embed_tokens(self, batch: TokenBatch, with_position: bool = True) -> torch.Tensor:
        x = self.embed(batch.ids) if self.spec.discrete else self.embed(batch.values)
        if self.position is not None and with_position:
            x = x + self.position[:, : x.shape[1]]
        return self.embed_norm(x)

    def embed_visible(self, batch: TokenBatch, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`embed_tokens` of the kept tokens only, gathered to the front as `keep_visible` gathers them:
        (B, K, D) with padding rows zero, and which rows are real (None when all are)."""
        index, kept = kept_index(keep)
        if batch.ids is not None:
            x = self.embed(batch.ids.gather(1, index))
        else:
            values = batch.values
            x = self.embed(values.gather(1, index[..., None].expand(-1, -1, values.shape[-1])))
        if self.position is not None:
            x = x + self.position[0][index]
        x = self.embed_norm(x)
        return (x, None) if kept is None else (x * kept[..., None].to(x.dtype), kept)

    def encode(
        self, batch: TokenBatch, masked: torch.Tensor | None = None, select: GuideSelect | None = None
    ) -> Encoded:
        """Encode with a given mask, a selector the guide layer calls, or neither (no masking).

        Self mode: later layers see the visible tokens only; latent mode: the latents, which never
        saw the masked tokens.
        """
        latents = None if self.latents is None else self.latents.expand(len(batch.valid), -1, -1)
        if select is not None:  # the selector reads the logits over every token: all are embedded
            x, key_valid, masked = self.guide(self.embed_tokens(batch), batch.valid, latents, select=select)
        else:  # a known mask: only the visible tokens are embedded, as only they are read
            masked = torch.zeros_like(batch.valid) if masked is None else masked
            x, key_valid = self.guide.attend(*self.embed_visible(batch, batch.valid & ~masked), latents)
        for block in self.blocks:
            x = block(x, key_valid=key_valid)
        return Encoded(self.norm(x), key_valid, masked)

    def decode(self, encoded: Encoded, n_tokens: int, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Predict from the memory: logits (B, N, V) or values (B, N, C) for every position, or, given
        `positions` (B, N) bool, only those: (K, V | C) in the order of `tensor[positions]`.

        The decoder's queries only cross-attend to the memory, so each position's prediction is the
        same whichever other positions are predicted with it.
        """
        memory = self.to_decoder(encoded.memory)
        queries = self.mask_token.expand(len(memory), n_tokens, -1)
        if self.decoder_position is not None:
            queries = queries + self.decoder_position[:, :n_tokens]
        present = None
        if positions is not None:
            queries, present = keep_visible(queries, positions)
        for block in self.decoder:
            queries = block(queries, memory=memory, key_valid=encoded.memory_valid)
        out = self.head(self.decoder_norm(queries))
        if positions is None:
            return out
        return out.flatten(0, 1) if present is None else out[present]

    def recompute(self, on: bool = True) -> None:
        """train.recompute: every block (the guide layer's included) recomputes its activations in the
        backward pass instead of keeping them (Block.forward)."""
        for module in self.modules():
            if isinstance(module, Block):
                module.recompute = on

    @torch.no_grad()
    def full_pass(self, batch: TokenBatch, with_received: bool = True, layer: int = 0) -> FullPass:
        """One pass with no mask (informed masks and attention-guided weights read it).

        `layer` (1 = the guide layer .. depth; 0 = the last) picks the layer whose token features
        are returned. The pass stops there unless the last layer's attention map is wanted;
        `with_received=False` skips that map when no one reads it.
        """
        x = self.embed_tokens(batch)
        valid = batch.valid
        if self.latents is not None:
            latents = self.latents.expand(len(x), -1, -1)
            received = self.guide.probabilities(latents, x, valid).mean(dim=(1, 2)) if with_received else None
            return FullPass(None, received)
        depth = len(self.blocks) + 1
        if not 0 <= layer <= depth:
            raise ValueError(f"layer must be in 0..{depth}, not {layer}")
        layer = layer or depth
        index, key_valid = kept_index(valid)  # the valid tokens, gathered to the front
        tokens = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))
        real = torch.ones(index.shape, dtype=torch.bool, device=x.device) if key_valid is None else key_valid
        attention = None
        if depth == 1 and with_received:
            attention = self.guide.probabilities(tokens, tokens, real)
        h, _, _ = self.guide(tokens, real)
        chosen = h if layer == 1 else None
        for position, block in enumerate(self.blocks, start=2):
            if chosen is not None and not with_received:
                break
            if position == depth and with_received:
                attention = block.attention(h, key_valid)  # (B, H, K, K)
            h = block(h, key_valid=key_valid)
            if position == layer:
                chosen = h
        if layer == depth:
            chosen = self.norm(chosen)
        received = None
        if with_received:  # mean attention each token receives from the valid queries of the last layer
            weight = real.to(x.dtype)
            received = (attention * weight[:, None, :, None]).sum(2).mean(1) / weight.sum(1, keepdim=True)
            received = torch.zeros_like(valid, dtype=x.dtype).scatter(1, index, received) * valid
        features = torch.zeros_like(x).scatter(1, index[..., None].expand(-1, -1, x.shape[-1]), chosen)
        return FullPass(features * valid[..., None], received)

    def compile_layers(self) -> None:
        """torch.compile each layer in place (state-dict keys unchanged); masking and the gathers
        between layers stay eager, as their shapes follow the mask."""
        for layer in (self.guide, *self.blocks, *self.decoder):
            layer.compile(dynamic=True)
        self.guide.attend = torch.compile(self.guide.attend, dynamic=True)  # what a known mask calls, not forward

    @torch.no_grad()
    def features(self, batch: TokenBatch) -> torch.Tensor:
        """Pooled features (B, D) with no masking: mean over valid tokens, or over latents."""
        encoded = self.encode(batch)
        if encoded.memory_valid is None:  # latents, or visible tokens without padding
            return encoded.memory.mean(dim=1)
        weights = encoded.memory_valid.to(encoded.memory.dtype)[..., None]
        return (encoded.memory * weights).sum(1) / weights.sum(1).clamp(min=1)
