"""The model: no leak from masked tokens, loss on masked valid tokens only, it can learn."""

from __future__ import annotations

import pytest
import torch

from anymae.masking import FixedRatio, MaskingStrategy, RandomSelector, mask_counts, random_mask
from anymae.objective import masked_mean, reconstruction, token_losses
from tests.conftest import LENGTHS, id_batch, tiny_model, value_batch


def some_mask(valid: torch.Tensor, ratio: float = 0.5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return random_mask(valid, mask_counts(FixedRatio(ratio)(len(valid), g), valid), g)


@pytest.mark.parametrize("discrete", [False, True])
def test_encoder_output_ignores_the_content_of_masked_tokens(mode, discrete):
    model = tiny_model(discrete=discrete, mode=mode).eval()
    batch = id_batch() if discrete else value_batch()
    masked = some_mask(batch.valid)
    changed = id_batch(seed=7) if discrete else value_batch(seed=7)
    # keep visible tokens, replace masked (and padding) content with different values
    keep = batch.valid & ~masked
    if discrete:
        changed.ids = torch.where(keep, batch.ids, changed.ids)
    else:
        changed.values = torch.where(keep[..., None], batch.values, changed.values * 100)
    changed.valid = batch.valid
    with torch.no_grad():
        a, b = model.encode(batch, masked=masked), model.encode(changed, masked=masked)
        assert torch.equal(a.masked, masked)
        assert torch.allclose(a.memory, b.memory, atol=1e-5)
        assert torch.allclose(model.decode(a, 16), model.decode(b, 16), atol=1e-5)
        # and the check has teeth: changing a visible token does change the output
        changed.values = None if discrete else torch.where(keep[..., None], batch.values + 1, batch.values)
        if discrete:
            changed.ids = torch.where(keep, (batch.ids + 1) % 256, batch.ids)
        assert not torch.allclose(a.memory, model.encode(changed, masked=masked).memory, atol=1e-3)


def test_self_mode_keeps_exactly_the_visible_tokens():
    model = tiny_model(mode="self").eval()
    batch = value_batch()
    masked = some_mask(batch.valid, 0.6)
    with torch.no_grad():
        encoded = model.encode(batch, masked=masked)
    n_visible = (batch.valid & ~masked).sum(1)
    assert encoded.memory.shape[1] == int(n_visible.max())
    assert encoded.memory_valid.sum(1).tolist() == n_visible.tolist()


@pytest.mark.parametrize("discrete", [False, True])
def test_a_known_mask_embeds_only_the_visible_tokens_and_changes_nothing(mode, discrete):
    """The short path (embed the visible tokens alone) gives what embedding all of them and dropping
    the masked ones gives (the route a selector's pass takes)."""
    from anymae.model.attention import keep_visible

    model = tiny_model(discrete=discrete, mode=mode).eval()
    batch = id_batch() if discrete else value_batch()
    keep = batch.valid & ~some_mask(batch.valid, 0.6)
    with torch.no_grad():
        short, short_valid = model.embed_visible(batch, keep)
        full, full_valid = keep_visible(model.embed_tokens(batch), keep)
        assert torch.equal(short_valid, full_valid) and torch.allclose(short, full, atol=1e-6)
        masked = batch.valid & ~keep
        latents = None if model.latents is None else model.latents.expand(len(keep), -1, -1)
        x, key_valid, _ = model.guide(model.embed_tokens(batch), batch.valid, latents, masked=masked)
        for block in model.blocks:
            x = block(x, key_valid=key_valid)
        assert torch.allclose(model.encode(batch, masked=masked).memory, model.norm(x), atol=1e-5)


def test_features_use_no_mask_and_are_deterministic(mode):
    model = tiny_model(mode=mode).eval()
    batch = value_batch()
    first, second = model.features(batch), model.features(batch)
    assert first.shape == (len(LENGTHS), 32) and torch.equal(first, second)
    # padding content does not change the features of a sample
    noisy = value_batch()
    noisy.values = torch.where(batch.valid[..., None], batch.values, torch.randn_like(batch.values))
    assert torch.allclose(model.features(noisy), first, atol=1e-5)


def test_loss_counts_masked_valid_tokens_only():
    losses = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    masked = torch.tensor([[True, False, True, False], [False, False, False, True]])
    assert masked_mean(losses, masked).item() == pytest.approx((1 + 3 + 40) / 3)
    weights = torch.full_like(losses, 2.0)
    assert masked_mean(losses, masked, weights).item() == pytest.approx(2 * (1 + 3 + 40) / 3)


@pytest.mark.parametrize("discrete", [False, True])
def test_reconstruction_loss_equals_the_mean_over_masked_valid_tokens(discrete):
    model = tiny_model(discrete=discrete)
    batch = id_batch() if discrete else value_batch()
    strategy = MaskingStrategy(FixedRatio(0.5), RandomSelector())
    out = reconstruction(model, batch, strategy, torch.Generator().manual_seed(0), everywhere=True)
    assert not (out.masked & ~batch.valid).any()
    per_token = token_losses(out.prediction, out.target)
    expected = per_token[out.masked].mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # predictions at visible or padded positions do not move the loss
    prediction = out.prediction.detach().clone()
    prediction[~out.masked] += 5.0
    assert token_losses(prediction, out.target)[out.masked].mean().item() == pytest.approx(expected.item(), rel=1e-5)
    # the training pass decodes only the masked valid tokens: same predictions there, same loss
    fast = reconstruction(model, batch, strategy, torch.Generator().manual_seed(0))
    assert torch.equal(fast.masked, out.masked)
    assert fast.prediction.shape[0] == int(out.masked.sum())
    assert torch.allclose(fast.prediction, out.prediction[out.masked], atol=1e-5)
    assert fast.loss.item() == pytest.approx(out.loss.item(), rel=1e-5)
    assert torch.allclose(fast.token_loss, out.token_loss, atol=1e-5)


@pytest.mark.parametrize("discrete", [False, True])
def test_tiny_model_overfits_one_batch(mode, discrete):
    model = tiny_model(discrete=discrete, mode=mode)
    batch = id_batch() if discrete else value_batch()
    masked = some_mask(batch.valid, 0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss = reconstruction(model, batch, masked=masked).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * first


def test_reconstruction_with_a_given_mask_hides_exactly_those_valid_tokens():
    model = tiny_model().eval()
    batch = value_batch()
    masked = some_mask(batch.valid, 0.5) | ~batch.valid  # padding in the given mask is ignored
    with torch.no_grad():
        out = reconstruction(model, batch, masked=masked)
    assert torch.equal(out.masked, masked & batch.valid) and out.weights is None
    assert out.loss.item() == pytest.approx(out.token_loss[out.masked].mean().item(), rel=1e-5)
    with pytest.raises(TypeError, match="masked="):
        reconstruction(model, batch)


@pytest.mark.parametrize("strategy", ["random", "sma"])
def test_recomputing_activations_gives_the_same_loss_and_gradients(mode, strategy):
    """train.recompute: every block recomputes its activations in the backward pass; the loss, the mask
    (sma chooses it in the guide layer, which must not choose again) and every gradient are unchanged."""
    from anymae.config import MaskingConfig
    from anymae.masking import build_strategy
    from anymae.model.attention import Block

    results = []
    for recompute in (False, True):
        model = tiny_model(discrete=True, mode=mode)
        model.recompute(recompute)
        assert all(b.recompute == recompute for b in model.modules() if isinstance(b, Block))
        select = build_strategy(MaskingConfig(strategy=strategy), model.spec, model.config)
        out = reconstruction(model, id_batch(), select, torch.Generator().manual_seed(3), progress=0.5)
        out.loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.loss.detach(), out.masked, grads))
    (loss, masked, grads), (loss2, masked2, grads2) = results
    assert torch.equal(masked, masked2)
    assert torch.allclose(loss, loss2, atol=1e-6, rtol=0)
    assert grads.keys() == grads2.keys()
    for name in grads:
        assert torch.allclose(grads[name], grads2[name], atol=1e-6, rtol=1e-5), name


def test_the_heap_bound_is_set_once_and_leaves_a_users_own_setting(monkeypatch):
    from anymae import heap

    calls = []
    monkeypatch.setattr(heap, "mallopt", lambda option, value: calls.append((option, value)) or 1, raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert heap.bound_heap() is False  # the user's own setting stands
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libtcmalloc.so")
    assert heap.bound_heap() is False  # another allocator: nothing to bound
    monkeypatch.delenv("LD_PRELOAD")
    assert heap.bound_heap() is True
    assert calls == [(heap.M_MMAP_THRESHOLD, 1 << 20)]
