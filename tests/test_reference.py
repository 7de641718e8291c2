"""The optimised passes against straightforward reference computations with the same weights.

The reference forms the explicit logits (B, H, Nq, N), masks them, and runs the guide layer's
queries, projection and MLP on every row; SMA reads the full logits; the decoder predicts every
position; the cut takes a full float64 eigendecomposition.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from anymae.config import MaskingConfig
from anymae.masking import build_strategy, mask_counts
from anymae.masking.selectors import normalized_cut, self_guided_mask
from anymae.model.attention import keep_visible, merge_heads, split_heads
from anymae.objective import masked_mean, reconstruction, targets, token_losses
from tests.conftest import padded_valid, tiny_model, value_batch
from tests.test_model import some_mask


def explicit_logits(model, queries: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    guide = model.guide
    q = split_heads(guide.q(guide.norm_q(queries)), guide.heads)
    k = split_heads(guide.kv(guide.norm_kv(tokens)).chunk(2, dim=-1)[0], guide.heads)
    return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).masked_fill(~valid[:, None, None, :], float("-inf"))


def reference_encode(model, batch, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The guide layer on every row with explicit masked logits; then the later layers."""
    guide = model.guide
    x = model.embed_tokens(batch)
    queries = x if model.latents is None else model.latents.expand(len(x), -1, -1)
    scores = explicit_logits(model, queries, x, batch.valid)
    attention = scores.masked_fill(masked[:, None, None, :], float("-inf")).softmax(dim=-1)
    v = split_heads(guide.kv(guide.norm_kv(x)).chunk(2, dim=-1)[1], guide.heads)
    h = queries + guide.proj(merge_heads(attention @ v))
    h = h + guide.mlp(guide.norm_mlp(h))
    key_valid = None
    if model.latents is None:
        h, key_valid = keep_visible(h, batch.valid & ~masked)
    for block in model.blocks:
        h = block(h, key_valid=key_valid)
    return model.norm(h), key_valid


def reference_loss(model, batch, masked: torch.Tensor) -> torch.Tensor:
    memory, key_valid = reference_encode(model, batch, masked)
    encoded = type("E", (), {"memory": memory, "memory_valid": key_valid})()
    prediction = model.decode(encoded, batch.valid.shape[1])  # every position
    losses = token_losses(prediction, targets(model, batch))
    return masked_mean(losses, masked & batch.valid)


def test_guide_layer_with_a_given_mask_matches_the_reference(mode):
    model = tiny_model(mode=mode)
    batch = value_batch()
    masked = some_mask(batch.valid, 0.6)
    memory, key_valid = reference_encode(model, batch, masked)
    encoded = model.encode(batch, masked=masked)
    assert (key_valid is None) == (encoded.memory_valid is None)
    if key_valid is not None:
        assert torch.equal(key_valid, encoded.memory_valid)
        memory, fast = memory * key_valid[..., None], encoded.memory * key_valid[..., None]
    else:
        fast = encoded.memory
    assert torch.allclose(memory, fast, atol=1e-5)
    loss = reconstruction(model, batch, masked=masked).loss
    expected = reference_loss(model, batch, masked)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # and the gradients agree too
    grad = torch.autograd.grad(loss, model.guide.q.weight)[0]
    assert torch.allclose(grad, torch.autograd.grad(expected, model.guide.q.weight)[0], atol=1e-6)


SMA = {
    "mean": MaskingConfig(strategy="sma"),
    "random_mix-curriculum": MaskingConfig(strategy="sma", aggregation="random_mix", curriculum=True),
    "no-self": MaskingConfig(strategy="sma", mask_self=False, per_query=1),
    "content-debias": MaskingConfig(strategy="sma", guide_scores="content", position_debias=True),
}


@pytest.mark.parametrize("name", list(SMA))
def test_sma_reads_only_chosen_rows_yet_matches_full_logits(mode, name):
    model = tiny_model(mode=mode)
    batch = value_batch()
    config = SMA[name]
    strategy = build_strategy(config, model.spec)
    progress = 0.1  # inside the curriculum, so its random share is drawn too
    out = reconstruction(model, batch, strategy, torch.Generator().manual_seed(3), progress)
    reference_selector = build_strategy(config, model.spec).selector  # its own running position means

    g = torch.Generator().manual_seed(3)
    counts = mask_counts(strategy.ratio(len(batch.valid), g), batch.valid)
    with torch.no_grad():
        x = model.embed_tokens(batch, with_position=config.guide_scores != "content")
        queries = x if model.latents is None else model.latents.expand(len(x), -1, -1)
        scores = explicit_logits(model, queries, x, batch.valid)  # (B, H, Nq, N) in full
    sigma = 0.0
    if config.curriculum:
        from anymae.masking.selectors import cosine_sigma

        sigma = cosine_sigma(progress, config.schedule)
    selector = strategy.selector
    masked = self_guided_mask(
        scores,
        batch.valid,
        counts,
        g,
        selector.per_query,
        selector.aggregation,
        selector.mask_self,
        sigma,
        partial(reference_selector.debias, valid=batch.valid, update=True) if selector.position_debias else None,
    )
    assert torch.equal(out.masked, masked)
    assert out.loss.item() == pytest.approx(reference_loss(model, batch, masked).item(), rel=1e-5)


@pytest.mark.parametrize("chunk", [1, 50, 2**24])
def test_sma_in_chunks_of_rows_gives_the_same_mask(chunk):
    valid = padded_valid([16, 9, 2, 13], 16)
    scores = torch.randn(4, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    counts = mask_counts(torch.full((4,), 0.6), valid)
    masks = [
        self_guided_mask(scores, valid, counts, torch.Generator().manual_seed(1), chunk=size) for size in (chunk, 2**30)
    ]
    assert torch.equal(masks[0], masks[1])


def eigh_cut(features: torch.Tensor, valid: torch.Tensor, tau: float = 0.2, eps: float = 1e-5) -> torch.Tensor:
    """The cut by a full float64 eigendecomposition (what normalized_cut computed before)."""
    z = torch.nn.functional.normalize(features.double(), dim=-1)
    similarity = z @ z.transpose(1, 2)
    pair = valid[:, :, None] & valid[:, None, :]
    w = torch.where(similarity < tau, torch.full_like(similarity, eps), similarity) * pair
    inv_sqrt = w.sum(-1).clamp(min=eps).rsqrt() * valid
    laplacian = torch.eye(w.shape[-1], dtype=w.dtype) - inv_sqrt[:, :, None] * w * inv_sqrt[:, None, :]
    laplacian = laplacian * pair + torch.diag_embed((~valid).double() * 3.0)
    y = (torch.linalg.eigh(laplacian)[1][..., 1] * inv_sqrt).masked_fill(~valid, 0.0)
    peak = y.abs().argmax(dim=1, keepdim=True)
    y = (y - y.sum(1, keepdim=True) / valid.sum(1, keepdim=True)) * valid
    return (y * torch.sign(y.gather(1, peak))).float()


def structured_features(b: int, n: int, seed: int) -> torch.Tensor:
    """Tokens from two groups of random size around random centres, with noise. (With three
    disconnected groups the two smallest eigenvalues tie, and any mix of them is the answer.)"""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(b, 2, 24, generator=g)
    groups = (torch.rand(b, n, generator=g) < torch.rand(b, 1, generator=g) * 0.6 + 0.2).long()
    return centres.gather(1, groups[..., None].expand(-1, -1, 24)) + 0.6 * torch.randn(b, n, 24, generator=g)


@pytest.mark.parametrize("n", [12, 49, 196])
def test_normalized_cut_matches_a_full_eigendecomposition(n):
    features = structured_features(16, n, seed=n)
    valid = padded_valid(torch.randint(n // 2, n + 1, (16,), generator=torch.Generator().manual_seed(n)).tolist(), n)
    fast, reference = normalized_cut(features, valid), eigh_cut(features, valid)
    cosine = (fast * reference).sum(1) / (fast.norm(dim=1) * reference.norm(dim=1))
    assert cosine.min() > 0.999  # the same vector, signed the same way
    assert torch.equal(fast > 0, reference > 0)  # the same partition
