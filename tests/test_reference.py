"""The optimised passes against straightforward reference computations with the same weights.

The reference forms the explicit logits (B, H, Nq, N), masks them, and runs the guide layer's
queries, projection and MLP on every row; SMA reads the full logits; the decoder predicts every
position; the cut is SciPy's float64 generalised `eigh`, sample by sample.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from anymae.config import MaskingConfig
from anymae.masking import build_strategy, mask_counts
from anymae.masking.selectors import normalized_cut, self_guided_mask
from anymae.model.attention import keep_visible, merge_heads, split_heads
from anymae.objective import masked_mean, reconstruction, targets, token_losses
from tests.conftest import id_batch, padded_valid, tiny_model, value_batch
from tests.test_model import some_mask


def explicit_logits(model, queries: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    guide = model.guide
    q = split_heads(guide.block.q(guide.block.norm(queries)), guide.heads)
    k = split_heads(guide.block.kv(guide.block.norm_memory(tokens)).chunk(2, dim=-1)[0], guide.heads)
    return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).masked_fill(~valid[:, None, None, :], float("-inf"))


def reference_encode(model, batch, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The guide layer on every row with explicit masked logits; then the later layers."""
    guide = model.guide
    x = model.embed_tokens(batch)
    queries = x if model.latents is None else model.latents.expand(len(x), -1, -1)
    scores = explicit_logits(model, queries, x, batch.valid)
    attention = scores.masked_fill(masked[:, None, None, :], float("-inf")).softmax(dim=-1)
    v = split_heads(guide.block.kv(guide.block.norm_memory(x)).chunk(2, dim=-1)[1], guide.heads)
    h = queries + guide.block.proj(merge_heads(attention @ v))
    h = h + guide.block.mlp(guide.block.norm_mlp(h))
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


def model_and_batch(mode: str, tokens: str, seed: int):
    """A tiny model and a padded batch of value tokens (image patches) or id tokens (bytes)."""
    discrete = tokens == "ids"
    batch = id_batch(seed=seed) if discrete else value_batch(seed=seed)
    return tiny_model(discrete=discrete, mode=mode, seed=seed), batch


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tokens", ["values", "ids"])
def test_guide_layer_with_a_given_mask_matches_the_reference(mode, tokens, seed):
    model, batch = model_and_batch(mode, tokens, seed)
    masked = some_mask(batch.valid, 0.6, seed)
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
    grad = torch.autograd.grad(loss, model.guide.block.q.weight)[0]
    assert torch.allclose(grad, torch.autograd.grad(expected, model.guide.block.q.weight)[0], atol=1e-6)


SMA = {
    "mean": MaskingConfig(strategy="sma"),
    "random_mix-curriculum": MaskingConfig(strategy="sma", aggregation="random_mix", curriculum=True),
    "no-self": MaskingConfig(strategy="sma", mask_self=False, per_query=1),
    "content-debias": MaskingConfig(strategy="sma", guide_scores="content", position_debias=True),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tokens", ["values", "ids"])
@pytest.mark.parametrize("name", list(SMA))
def test_sma_reads_only_chosen_rows_yet_matches_full_logits(mode, name, tokens, seed):
    model, batch = model_and_batch(mode, tokens, seed)
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


def reference_cut(features: np.ndarray, tau: float = 0.2, eps: float = 1e-5) -> tuple[np.ndarray, float, float]:
    """One sample's cut by SciPy's float64 generalised eigh of (D - W) y = λ D y, independent of
    anymae's solver: the vector y (split at its mean), λ2 and the eigengap λ3 - λ2."""
    z = features.astype(np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    w = z @ z.T
    w = np.where(w < tau, eps, w)
    d = np.diag(w.sum(1))
    values, vectors = scipy.linalg.eigh(d - w, d, subset_by_index=[0, min(2, len(w) - 1)])
    y = vectors[:, 1]
    gap = values[2] - values[1] if len(values) > 2 else np.inf
    return y - y.mean(), float(values[1]), float(gap)


def same_partition(y: torch.Tensor, reference: np.ndarray) -> bool:
    """The same two sides up to sign; tokens exactly on the split (tied with the mean) may go either way."""
    decided = np.abs(reference) > 1e-9 * np.abs(reference).max()
    side, expected = (y > 0).numpy()[decided], reference[decided] > 0
    return bool((side == expected).all() or (side != expected).all())


def is_second_eigenvector(y: torch.Tensor, features: np.ndarray, value: float, tau: float = 0.2) -> bool:
    """y (up to the shift to its mean, which is D-orthogonal to the constant top vector) solves
    (D - W) y = λ2 D y: the answer wherever λ2 is (nearly) repeated and any vector of its plane is valid."""
    z = features.astype(np.float64)
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    w = np.where(z @ z.T < tau, 1e-5, z @ z.T)
    d = w.sum(1)
    v = y.double().numpy()
    v = v - (d @ v) / d.sum()  # undo the mean shift: D-orthogonal to the constant vector
    residual = d * v - w @ v - value * d * v
    return float(np.linalg.norm(residual) / np.linalg.norm(d * v)) < 1e-4


def cut_features(kind: str, n: int, samples: int, seed: int) -> np.ndarray:
    """Token features of the kinds that matter: clear groups, three groups, random, nearly
    uniform (an early-training encoder), and ties (every token one of three repeated vectors)."""
    rng = np.random.default_rng(seed)
    if kind == "two groups":
        centres = rng.standard_normal((samples, 2, 24))
        pick = rng.random((samples, n)) < rng.uniform(0.2, 0.8, (samples, 1))
        return centres[np.arange(samples)[:, None], pick.astype(int)] + 0.3 * rng.standard_normal((samples, n, 24))
    if kind == "three groups":
        centres = rng.standard_normal((samples, 3, 24))
        pick = rng.integers(3, size=(samples, n))
        return centres[np.arange(samples)[:, None], pick] + 0.8 * rng.standard_normal((samples, n, 24))
    if kind == "random":
        return rng.standard_normal((samples, n, 24))
    if kind == "nearly uniform":
        return rng.standard_normal(24) + 0.1 * rng.standard_normal((samples, n, 24))
    vectors = rng.standard_normal((samples, 3, 24))  # ties
    return vectors[np.arange(samples)[:, None], rng.integers(3, size=(samples, n))]


@pytest.mark.parametrize("n", [16, 49, 196])
@pytest.mark.parametrize("kind", ["two groups", "three groups", "random", "nearly uniform", "ties"])
def test_normalized_cut_partition_matches_a_float64_generalised_eigh(kind, n):
    """The partition is eigh's wherever the eigengap determines it (>= 1e-6); where it does not,
    both answers are valid, and ours is checked to be an eigenvector of λ2 instead."""
    samples = 16
    features = cut_features(kind, n, samples, seed=n)
    lengths = [n] * (samples // 2) + np.random.default_rng(n).integers(3, n, samples // 2).tolist()
    valid = padded_valid(lengths, n)
    padded = torch.from_numpy(features).float() * valid[..., None] + 50.0 * ~valid[..., None]  # padding: junk
    y = normalized_cut(padded, valid)
    assert torch.equal(y[~valid], torch.zeros(int((~valid).sum())))
    determined = 0
    for row, length in enumerate(lengths):
        reference, value, gap = reference_cut(features[row, :length].astype(np.float32))
        if gap >= 1e-6:
            determined += 1
            assert same_partition(y[row, :length], reference), f"sample {row}: eigengap {gap:.1e}"
        else:
            assert is_second_eigenvector(y[row, :length], features[row, :length].astype(np.float32), value)
    assert determined >= samples // 2  # most samples are compared partition by partition


@settings(max_examples=40, deadline=None)
@given(
    features=hnp.arrays(
        np.float32, st.tuples(st.integers(3, 24), st.integers(1, 6)), elements=st.floats(-4, 4, width=32)
    ),
    padding=st.integers(0, 5),
)
def test_normalized_cut_property_padding_free_and_an_eigenvector(features, padding):
    """For any features, with padding of any content: y is 0 on padding and solves the generalised
    eigenproblem for λ2; where the eigengap determines it, padding changes nothing and the
    partition is eigh's."""
    n = len(features)
    alone = normalized_cut(torch.from_numpy(features)[None], torch.ones(1, n, dtype=torch.bool))[0]
    junk = torch.cat([torch.from_numpy(features), torch.full((padding, features.shape[1]), 7.0)])[None]
    padded = normalized_cut(junk, torch.arange(n + padding)[None] < n)[0]
    assert not padded[n:].any()
    reference, value, gap = reference_cut(features)
    if gap >= 1e-6:
        # the same vector up to scale (a mix with the top, constant, vector only rescales it once split at
        # the mean) and sign (in a symmetric sample both sides hold a largest |y|: which is "main" is a tie)
        cosine = torch.nn.functional.cosine_similarity(padded[:n].double(), alone.double(), dim=0)
        assert abs(float(cosine)) > 0.999
        assert same_partition(alone, reference)
    else:  # λ2 (nearly) repeated: any vector of its plane is the answer
        assert is_second_eigenvector(alone, features, value) and is_second_eigenvector(padded[:n], features, value)
