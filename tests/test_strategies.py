"""Every strategy against the section-0 contract, and each method on planted structure."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import pytest
import torch

from anymae.config import MaskingConfig, ModelConfig
from anymae.masking import SELECTORS, build_strategy, mask_counts
from anymae.masking.selectors import (
    block_mask,
    cosine_sigma,
    informed_scores,
    mask_top,
    normalized_cut,
    query_rows,
    random_mask,
    self_guided_mask,
    span_mask,
    with_hints,
)
from anymae.masking.strategy import AttentionGuidedWeighting, MaskContext, SelfGuidedSelector
from anymae.objective import masked_mean, reconstruction
from tests.conftest import LENGTHS, padded_valid, tiny_model, value_batch

# every registered strategy with its defaults (informed from the first step), then variants
CONFIGS = {name: MaskingConfig(strategy=name, start=0.0) for name in SELECTORS} | {
    "sma-random_mix-curriculum": MaskingConfig(strategy="sma", aggregation="random_mix", curriculum=True),
    "sma-no-self": MaskingConfig(strategy="sma", mask_self=False, per_query=1),
    "informed-ambiguous": MaskingConfig(strategy="informed", start=0.0, rank="ambiguous"),
    "random+attg-cut": MaskingConfig(loss_weighting="attention-guided", map_source="cut"),
    "sma+attg-attention": MaskingConfig(strategy="sma", loss_weighting="attention-guided", map_source="attention"),
    "informed+attg-cut": MaskingConfig(strategy="informed", start=0.0, loss_weighting="attention-guided"),
    "uniform-per-sample-sma": MaskingConfig(strategy="sma", ratio="uniform:0.2,0.8", per_sample=True),
    "sma-content-debias": MaskingConfig(strategy="sma", guide_scores="content", position_debias=True),
}


def latent_ok(config: MaskingConfig) -> bool:
    """Latent mode has no per-token features: strategies and maps that cut them need self mode."""
    uses_cut = config.loss_weighting == "attention-guided" and config.map_source == "cut"
    return not SELECTORS[config.strategy].needs_features and not uses_cut


def run(name: str, mode: str = "self", seed: int = 0, progress: float = 0.5):
    model = tiny_model(mode=mode).eval()
    batch = value_batch()
    strategy = build_strategy(CONFIGS[name], model.spec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = reconstruction(model, batch, strategy, g, progress)
    return model, batch, strategy, out


def cases():
    for name in CONFIGS:
        yield name, "self"
        if latent_ok(CONFIGS[name]):
            yield name, "latent"


@pytest.mark.parametrize("name,mode", list(cases()))
def test_contract_exact_counts_padding_and_determinism(name, mode):
    model, batch, strategy, out = run(name, mode)
    g = torch.Generator().manual_seed(0)
    expected = mask_counts(strategy.ratio(len(batch.valid), g), batch.valid)
    assert out.masked.sum(1).tolist() == expected.tolist()
    assert not (out.masked & ~batch.valid).any()
    torch.manual_seed(1234)  # the global RNG plays no part
    assert torch.equal(run(name, mode)[3].masked, out.masked)
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("name,mode", list(cases()))
def test_no_masked_content_reaches_the_encoder(name, mode):
    model, batch, _, out = run(name, mode)
    masked = out.masked
    changed = value_batch(seed=9)
    changed.values = torch.where((batch.valid & ~masked)[..., None], batch.values, changed.values * 50)
    with torch.no_grad():
        a, b = model.encode(batch, masked=masked), model.encode(changed, masked=masked)
    assert torch.allclose(a.memory, b.memory, atol=1e-5)


@pytest.mark.parametrize("name", ["sma", "informed"])
def test_no_gradient_flows_through_selection(name):
    model = tiny_model()
    batch = value_batch()
    out = reconstruction(model, batch, build_strategy(CONFIGS[name], model.spec), torch.Generator().manual_seed(0), 0.5)
    assert not out.masked.requires_grad
    out.loss.backward()  # the selection's tensors are detached: backward works and reaches the guide layer
    assert model.guide.block.q.weight.grad is not None


def block_scores(n: int = 12, block: int = 4) -> torch.Tensor:
    """Logits (1, 1, n, n): tokens attend strongly within their block of `block` tokens."""
    group = torch.arange(n) // block
    return torch.where(group[:, None] == group[None, :], 8.0, 0.0)[None, None]


@pytest.mark.parametrize("seed", range(6))
def test_sma_masks_whole_blocks_of_a_block_attention(seed):
    valid = torch.ones(1, 12, dtype=torch.bool)
    masked = self_guided_mask(
        block_scores(), valid, torch.tensor([4]), torch.Generator().manual_seed(seed), per_query=4
    )
    group = (torch.arange(12) // 4)[masked[0]]
    assert masked.sum() == 4 and group.unique().numel() == 1


def test_sma_with_two_queries_masks_two_whole_blocks():
    valid = torch.ones(1, 12, dtype=torch.bool)
    masked = self_guided_mask(block_scores(), valid, torch.tensor([8]), torch.Generator().manual_seed(3), per_query=4)
    counts = torch.bincount((torch.arange(12) // 4)[masked[0]], minlength=3)
    assert sorted(counts.tolist()) == [0, 4, 4]


def test_sma_mask_self_forces_the_chosen_queries_into_the_mask():
    # uniform attention: scores carry no preference, so only mask_self decides
    scores = torch.zeros(1, 1, 10, 10)
    valid = torch.ones(1, 10, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    chosen = mask_top(torch.rand((1, 10), generator=torch.Generator().manual_seed(0)), valid, torch.tensor([1]))
    masked = self_guided_mask(scores, valid, torch.tensor([3]), g, per_query=3, mask_self=True)
    assert (masked & chosen).sum() == 1


def test_sma_latent_mode_scores_come_from_latent_rows():
    scores = torch.full((1, 2, 5, 12), -10.0)
    scores[:, :, :, 8:] = 10.0  # every latent looks at tokens 8..11
    masked = self_guided_mask(scores, torch.ones(1, 12, dtype=torch.bool), torch.tensor([4]), torch.Generator())
    assert masked[0, 8:].all() and not masked[0, :8].any()


def test_curriculum_is_random_at_sigma_1_and_top_k_at_sigma_0():
    b, n = 3000, 10
    scores = torch.linspace(0, 5, n).expand(b, 1, n, n).clone()  # every query prefers the last tokens
    valid = torch.ones(b, n, dtype=torch.bool)
    counts = torch.full((b,), 3)
    top = self_guided_mask(scores, valid, counts, torch.Generator().manual_seed(0), per_query=3, mask_self=False)
    assert top[:, 7:].all() and not top[:, :7].any()
    noisy = self_guided_mask(scores, valid, counts, torch.Generator().manual_seed(0), 3, mask_self=False, sigma=1.0)
    assert noisy.sum(1).eq(3).all()
    assert torch.allclose(noisy.float().mean(0), torch.full((n,), 0.3), atol=0.04)
    half = self_guided_mask(scores, valid, counts, torch.Generator().manual_seed(0), 3, mask_self=False, sigma=0.5)
    assert half[:, 8:].all() and half.sum(1).eq(3).all()  # round(3 * 0.5) = 2 top positions kept


# Each difference from the official SMA code (docs/methods.md 2.3) pinned to anymae's choice.


@pytest.mark.parametrize(
    ("n_valid", "ratio", "per_query", "ours", "official"),
    [(10, 0.15, 3, 1, 0), (50, 0.15, 3, 3, 2), (30, 0.75, 4, 6, 6), (7, 0.3, 4, 1, 1), (4, 0.15, 1, 1, 1)],
)
def test_sma_query_rows_are_round_m_over_k_and_at_least_one(n_valid, ratio, per_query, ours, official):
    valid = torch.ones(1, n_valid, dtype=torch.bool)
    counts = mask_counts(torch.tensor([ratio]), valid)
    assert query_rows(counts, per_query, valid.sum(1)).item() == ours
    assert round(n_valid * ratio / per_query) == official  # the official rule, for the record


def test_sma_query_rows_never_exceed_the_rows_there_are():
    assert query_rows(torch.tensor([9, 2]), 1, torch.tensor([8, 8])).tolist() == [8, 2]


@pytest.mark.parametrize(("n_valid", "ratio", "expected"), [(3, 0.15, 1), (2, 0.75, 1), (5, 0.9, 4)])
def test_mask_counts_keep_one_token_hidden_and_one_seen(n_valid, ratio, expected):
    """The official code masks round(r n_valid): 0 tokens (3 x 0.15) or every token (2 x 0.75, 5 x 0.9)."""
    counts = mask_counts(torch.tensor([ratio]), torch.ones(1, n_valid, dtype=torch.bool))
    assert counts.item() == expected


def test_curriculum_splits_m_without_losing_a_token_to_rounding():
    """m = 5 at sigma 0.5: the official code rounds 2.5 and 2.5 separately (4 tokens); anymae takes 2 + 3."""
    scores = torch.randn(64, 1, 10, 10, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(64, 10, dtype=torch.bool)
    masked = self_guided_mask(scores, valid, torch.full((64,), 5), torch.Generator().manual_seed(0), sigma=0.5)
    assert masked.sum(1).eq(5).all()


def test_mask_self_puts_every_chosen_query_first_however_strong_the_rest():
    """With k = 1 the mask is exactly the chosen rows, whatever the attention: a token that every
    row attends to (summed score 6 > num_heads = 1, the official marker) does not displace them."""
    valid = torch.ones(1, 12, dtype=torch.bool)
    attractor = torch.zeros(1, 1, 12, 12)
    attractor[..., 0] = 8.0
    for seed in range(10):
        masks = [
            self_guided_mask(scores, valid, torch.tensor([6]), torch.Generator().manual_seed(seed), per_query=1)
            for scores in (torch.zeros(1, 1, 12, 12), attractor)
        ]
        assert torch.equal(masks[0], masks[1])
    # and the attractor is masked only when it is a chosen row, not always
    hits = [
        bool(self_guided_mask(attractor, valid, torch.tensor([6]), torch.Generator().manual_seed(s), per_query=1)[0, 0])
        for s in range(10)
    ]
    assert 0 < sum(hits) < 10


def test_latent_mode_mask_does_not_depend_on_the_padded_length():
    """The official code counts latent query rows on the padded length; anymae on the valid tokens,
    so padding a sample further changes nothing."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 8, 10, generator=g)  # 8 latents over 10 valid tokens
    counts = torch.tensor([3, 3])
    short = self_guided_mask(logits, torch.ones(2, 10, dtype=torch.bool), counts, torch.Generator().manual_seed(1))
    padded_logits = torch.cat([logits, torch.full((2, 4, 8, 30), float("-inf"))], dim=-1)
    valid = torch.arange(40)[None].expand(2, -1) < 10
    padded = self_guided_mask(padded_logits, valid, counts, torch.Generator().manual_seed(1))
    assert torch.equal(padded[:, :10], short) and not padded[:, 10:].any()


def test_cosine_sigma_schedule():
    assert cosine_sigma(0.0, 0.25) == 1.0
    assert cosine_sigma(0.125, 0.25) == pytest.approx(0.5)
    assert cosine_sigma(0.25, 0.25) == 0.0 and cosine_sigma(0.9, 0.25) == 0.0


def two_clusters(sizes=(10, 6), noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = 16
    centres = torch.eye(d)[:2] * 3
    groups = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    perm = torch.randperm(len(groups), generator=g)
    groups = groups[perm]
    features = centres[groups] + noise * torch.randn(len(groups), d, generator=g)
    return features[None], groups[None]


@pytest.mark.parametrize("seed", range(3))
def test_normalized_cut_recovers_two_clusters_and_main_masks_one_group(seed):
    features, groups = two_clusters(seed=seed)
    n = groups.shape[1]
    valid = torch.ones(1, n, dtype=torch.bool)
    y = normalized_cut(features, valid, tau=0.2)
    side = y > 0
    assert torch.equal(side, groups == groups[side].mode().values)  # the partition is the clusters
    main_group = groups[side][0]
    count = int(side.sum())
    masked = mask_top(informed_scores(features, valid, y, "main"), valid, torch.tensor([count]))
    assert torch.equal(masked, groups == main_group)
    assert count == 6  # the smaller cluster holds argmax |y| here


def test_normalized_cut_ignores_padding():
    features, groups = two_clusters(seed=1)
    padded = torch.cat([features, torch.randn(1, 5, 16) * 10], dim=1)
    valid = torch.cat([torch.ones(1, 16), torch.zeros(1, 5)], dim=1).bool()
    y = normalized_cut(padded, valid)
    assert torch.equal(y[0, 16:], torch.zeros(5))
    assert torch.allclose(y[:, :16], normalized_cut(features, torch.ones(1, 16, dtype=torch.bool)), atol=1e-4)


def test_hints_keep_the_exact_count():
    valid = padded_valid(LENGTHS, 16)
    counts = mask_counts(torch.full((len(LENGTHS),), 0.5), valid)
    g = torch.Generator().manual_seed(0)
    masked = random_mask(valid, counts, g)
    hinted = with_hints(masked, valid, 0.3, g)
    assert hinted.sum(1).tolist() == counts.tolist() and not (hinted & ~valid).any()
    swapped = (masked & ~hinted).sum(1)
    assert swapped.tolist() == torch.minimum(torch.round(counts * 0.3).long(), (valid & ~masked).sum(1)).tolist()


def test_attention_guided_weights_are_1_at_0_and_e_to_1_over_tau_at_1():
    valid = torch.ones(1, 5, dtype=torch.bool)
    importance = torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0]]) * 7 + 2  # min-max normalised to 0..1
    weighting = AttentionGuidedWeighting(source="given", tau=0.75)
    model = tiny_model()
    batch = value_batch([5], n=5, channels=4)
    batch.importance = importance
    weights = weighting(MaskContext(model, batch, torch.Generator(), 0.0, torch.tensor([2])))
    assert weights[0, 0].item() == pytest.approx(1.0)
    assert weights[0, -1].item() == pytest.approx(math.exp(1 / 0.75))
    assert weights[0, 2].item() == pytest.approx(math.exp(0.5 / 0.75))
    assert valid.all()


def test_a_constant_weight_scales_the_plain_loss():
    losses = torch.rand(4, 9)
    masked = torch.rand(4, 9) < 0.5
    plain = masked_mean(losses, masked)
    assert masked_mean(losses, masked, torch.full_like(losses, 2.5)).item() == pytest.approx(2.5 * plain.item())
    by_weights = masked_mean(losses, masked, torch.full_like(losses, 2.5), by_weights=True)
    assert by_weights.item() == pytest.approx(plain.item())


def test_tau_schedule_runs_from_tau_to_tau_end():
    weighting = AttentionGuidedWeighting(tau=1.0, tau_end=0.5)
    assert weighting.tau_at(0.0) == pytest.approx(1.0) and weighting.tau_at(1.0) == pytest.approx(0.5)
    assert weighting.tau_at(0.5) == pytest.approx(0.75)


def test_span_masks_are_contiguous_and_block_masks_are_compact():
    valid = torch.ones(2000, 48, dtype=torch.bool)
    counts = torch.full((2000,), 12)
    g = torch.Generator().manual_seed(0)

    def mean_run(masked: torch.Tensor) -> float:
        starts = masked[:, 0].sum() + (masked[:, 1:] & ~masked[:, :-1]).sum()
        return float(masked.sum() / starts)

    span, rand = span_mask(valid, counts, g), random_mask(valid, counts, g)
    assert span.sum(1).eq(12).all() and mean_run(span) > 1.5 * mean_run(rand)

    grid = (6, 8)
    block = block_mask(valid, counts, g, grid)
    assert block.sum(1).eq(12).all()

    def neighbour_share(masked: torch.Tensor) -> float:
        m = masked.view(-1, *grid)
        pad = torch.nn.functional.pad(m.float(), (1, 1, 1, 1))
        neighbours = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
        return float(((neighbours > 0) & m).sum() / m.sum())

    assert neighbour_share(block) > neighbour_share(rand) + 0.2


def test_informed_uses_random_masks_during_warm_up():
    model = tiny_model().eval()
    batch = value_batch()
    strategy = build_strategy(MaskingConfig(strategy="informed", start=0.5), model.spec)
    warm = strategy.plan(model, batch, torch.Generator().manual_seed(0), progress=0.1).masked
    g = torch.Generator().manual_seed(0)
    counts = mask_counts(strategy.ratio(len(LENGTHS), g), batch.valid)
    assert torch.equal(warm, random_mask(batch.valid, counts, g))


@pytest.mark.parametrize(
    "config,message",
    [
        (MaskingConfig(strategy="nope"), "masking.strategy must be one of"),
        (MaskingConfig(strategy="sma", aggregation="max"), "masking.aggregation"),
        (MaskingConfig(loss_weighting="attention-guided", map_source="dino"), "masking.map_source"),
        (MaskingConfig(strategy="block"), "masking.strategy=block needs tokens on a 2-D grid"),
    ],
)
def test_bad_masking_settings_are_clear_errors(config, message):
    from anymae.errors import UserError
    from anymae.tokens import ByteSequence

    with pytest.raises(UserError, match=message):
        build_strategy(config, ByteSequence())


def test_informed_and_attention_guided_share_one_full_pass(monkeypatch):
    model = tiny_model().eval()
    calls = []
    original = model.full_pass
    monkeypatch.setattr(model, "full_pass", lambda batch, *args: calls.append(args) or original(batch, *args))
    strategy = build_strategy(CONFIGS["informed+attg-cut"], model.spec)
    plan = strategy.plan(model, value_batch(), torch.Generator().manual_seed(0), progress=0.5)
    assert len(calls) == 1 and plan.masked is not None and plan.weights is not None
    assert calls[0] == (False, 0)  # the cut map needs no attention map: it is skipped


def test_content_guide_scores_ignore_the_position_embeddings():
    def mask_with(guide_scores: str, position_scale: float) -> torch.Tensor:
        model = tiny_model().eval()
        with torch.no_grad():
            model.position.mul_(position_scale)
        strategy = build_strategy(MaskingConfig(strategy="sma", guide_scores=guide_scores), model.spec)
        with torch.no_grad():
            return reconstruction(model, value_batch(), strategy, torch.Generator().manual_seed(0)).masked

    assert torch.equal(mask_with("content", 1.0), mask_with("content", 50.0))
    assert not torch.equal(mask_with("full", 1.0), mask_with("full", 50.0))


def positional_scores(b: int, n: int, seed: int) -> torch.Tensor:
    """Logits (b, 1, n, n): random content plus a preference of every query for the last positions."""
    return torch.randn(b, 1, n, n, generator=torch.Generator().manual_seed(seed)) + torch.linspace(0, 6, n)


def test_position_debias_removes_a_purely_positional_preference():
    b, n = 2000, 12
    valid = torch.ones(b, n, dtype=torch.bool)
    counts = torch.full((b,), 4)
    selector = SelfGuidedSelector(mask_self=False, position_debias=True)
    for seed in range(5):  # training batches build the running per-position mean
        debias = partial(selector.debias, valid=valid, update=True)
        self_guided_mask(
            positional_scores(b, n, seed), valid, counts, torch.Generator(), mask_self=False, debias=debias
        )
    assert selector.updates == 5
    scores = positional_scores(b, n, seed=99)
    biased = self_guided_mask(scores, valid, counts, torch.Generator().manual_seed(1), mask_self=False)
    debias = partial(selector.debias, valid=valid, update=False)
    debiased = self_guided_mask(scores, valid, counts, torch.Generator().manual_seed(1), mask_self=False, debias=debias)
    assert biased.float().mean(0)[-1] > 0.9 and biased.float().mean(0)[0] < 0.05
    frequency = debiased.float().mean(0)
    assert frequency.max() - frequency.min() < 0.25 and debiased.sum(1).eq(4).all()


def test_a_debiased_mask_does_not_depend_on_the_rest_of_its_batch():
    model = tiny_model().train()
    strategy = build_strategy(MaskingConfig(strategy="sma", position_debias=True, mask_self=False), model.spec)
    for seed in range(3):  # a few training batches: the running mean is set
        with torch.no_grad():
            reconstruction(model, value_batch(seed=seed), strategy, torch.Generator().manual_seed(seed))
    state = strategy.state_dict()
    assert state["updates"] == 3 and len(state["position_mean"]) == 16
    batch = value_batch(seed=5)
    other = value_batch(seed=6)
    other.values[1:] = other.values[1:] * 40 + torch.linspace(0, 30, 16)[None, :, None]  # very different company
    other.values[0], other.valid[0] = batch.values[0], batch.valid[0]

    def first_mask(b, debias=None) -> torch.Tensor:
        strategy.load_state_dict(state)
        if debias is not None:  # the former rule: the current batch's mean per position
            strategy.selector.debias = debias
        with torch.no_grad():
            masked = reconstruction(model, b, strategy, torch.Generator().manual_seed(0)).masked[0]
        vars(strategy.selector).pop("debias", None)
        return masked

    assert torch.equal(first_mask(batch), first_mask(other))

    def batch_mean(score, valid, update):
        return score - (score * valid).sum(0) / valid.sum(0).clamp(min=1)

    # the test can tell: under a batch mean, the same sample's mask changes with its batch
    assert not torch.equal(first_mask(batch, batch_mean), first_mask(other, batch_mean))


def test_eval_mode_leaves_the_running_mean_alone():
    model = tiny_model().eval()
    strategy = build_strategy(MaskingConfig(strategy="sma", position_debias=True), model.spec)
    with torch.no_grad():
        reconstruction(model, value_batch(), strategy, torch.Generator().manual_seed(0))
    assert strategy.selector.updates == 0


def test_cut_based_methods_refuse_latent_mode_before_training():
    from anymae.errors import UserError
    from anymae.tokens import ByteSequence

    for config in (CONFIGS["informed"], CONFIGS["random+attg-cut"]):
        with pytest.raises(UserError, match="model.mode=self"):
            build_strategy(config, ByteSequence(), ModelConfig(mode="latent"))


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_informed_can_cut_the_features_of_an_earlier_layer(layer):
    model = tiny_model().eval()  # depth 3
    batch = value_batch()
    config = MaskingConfig(strategy="informed", start=0.0, cut_layer=layer)
    strategy = build_strategy(config, model.spec, model.config)
    context = strategy.context(model, batch, torch.Generator().manual_seed(0), 0.5)
    features = context.full_pass.features
    full = model.full_pass(batch, with_received=False, layer=0).features
    assert torch.allclose(features, full, atol=1e-5) == (layer == 3)
    masked = strategy.plan(model, batch, torch.Generator().manual_seed(0), 0.5).masked
    assert masked.sum(1).tolist() == context.counts.tolist()


def test_cut_layer_beyond_the_encoder_is_a_clear_error():
    from anymae.errors import UserError
    from anymae.tokens import ByteSequence

    with pytest.raises(UserError, match="cut_layer"):
        build_strategy(MaskingConfig(strategy="informed", cut_layer=9), ByteSequence(), ModelConfig(depth=4))


def test_received_attention_is_a_distribution_over_valid_tokens():
    model = tiny_model().eval()
    batch = value_batch()
    received = model.full_pass(batch).received
    assert torch.allclose(received.sum(1), torch.ones(len(LENGTHS)), atol=1e-5)
    assert (received[~batch.valid] == 0).all()


def test_informed_reuses_each_samples_scores_for_refresh_every_draws(monkeypatch):
    """refresh_every=3: a sample's full pass runs on its 1st and 4th draw; new rows alone are passed."""
    model = tiny_model().eval()
    rows_passed = []
    original = model.full_pass
    monkeypatch.setattr(model, "full_pass", lambda b, *a: rows_passed.append(b.index.tolist()) or original(b, *a))
    config = MaskingConfig(strategy="informed", start=0.0, hint=0.0, refresh_every=3)
    strategy, fresh = build_strategy(config, model.spec), build_strategy(replace(config, refresh_every=1), model.spec)
    batch = value_batch()
    batch.index = torch.arange(10, 10 + len(LENGTHS))

    def plan(s, b):
        return s.plan(model, b, torch.Generator().manual_seed(0), progress=0.5).masked

    first = plan(strategy, batch)
    assert torch.equal(first, plan(fresh, batch))  # the kept scores are the fresh ones
    rows_passed.clear()
    with torch.no_grad():  # the model moves on: reused scores do not follow it, fresh ones do
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(plan(strategy, batch), first) and torch.equal(plan(strategy, batch), first)
    assert rows_passed == []
    assert not torch.equal(plan(fresh, batch), first)
    rows_passed.clear()
    half = value_batch(seed=1).rows(torch.arange(len(LENGTHS)) < 4)  # 4 new samples, rows 0..3
    half.index = torch.tensor([10, 11, 90, 91])
    plan(strategy, half)
    assert rows_passed == [[10, 11, 90, 91]]  # 10 and 11 were used up (3 draws), 90 and 91 are new
    assert strategy.selector.uses[[10, 11, 12, 90]].tolist() == [1, 1, 3, 1]
    rows_passed.clear()
    plan(strategy, batch)
    assert rows_passed == [[12, 13, 14, 15, 16, 17]]  # rows 10, 11 still have 2 uses left


def test_informed_without_sample_rows_or_with_refresh_every_1_passes_the_whole_batch():
    model = tiny_model().eval()
    batch = value_batch()
    batch.index = torch.arange(len(LENGTHS))
    strategy = build_strategy(MaskingConfig(strategy="informed", start=0.0), model.spec)
    strategy.plan(model, batch, torch.Generator().manual_seed(0), progress=0.5)
    assert strategy.selector.scores is None and strategy.tensors() == {}
