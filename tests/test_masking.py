"""Section-0 contract of ratio samplers and selectors: exact counts, determinism, padding."""

from __future__ import annotations

import pytest
import torch

from anymae.errors import UserError
from anymae.masking import FixedRatio, UniformRatio, mask_counts, mask_top, parse_ratio, random_mask
from tests.conftest import LENGTHS, padded_valid

SAMPLERS = [FixedRatio(0.75), FixedRatio(0.15), UniformRatio(0.1, 0.9), UniformRatio(0.1, 0.9, per_sample=True)]
SHAPES = [(LENGTHS, 16), ([50, 1, 33, 64, 2], 64), ([7] * 6, 7)]


def expected_counts(ratios: torch.Tensor, lengths: list[int]) -> list[int]:
    out = []
    for r, n in zip(ratios.tolist(), lengths):
        out.append(min(max(round(r * n), 1), max(n - 1, 0)))
    return out


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@pytest.mark.parametrize("lengths,n", SHAPES)
def test_random_mask_has_exact_counts_and_never_masks_padding(sampler, lengths, n):
    valid = padded_valid(lengths, n)
    g = torch.Generator().manual_seed(1)
    ratios = sampler(len(lengths), g)
    counts = mask_counts(ratios, valid)
    assert counts.tolist() == expected_counts(ratios, lengths)
    masked = random_mask(valid, counts, g)
    assert masked.sum(1).tolist() == counts.tolist()
    assert not (masked & ~valid).any()


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_masks_are_deterministic_given_the_generator(sampler):
    valid = padded_valid(LENGTHS, 16)

    def draw(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return random_mask(valid, mask_counts(sampler(len(LENGTHS), g), valid), g)

    torch.manual_seed(123)  # the global RNG must play no part
    first = draw(5)
    torch.manual_seed(999)
    assert torch.equal(first, draw(5))
    assert any(not torch.equal(first, draw(s)) for s in range(6, 10))


def test_uniform_ratio_per_batch_is_shared_and_per_sample_varies():
    g = torch.Generator().manual_seed(0)
    per_batch = UniformRatio(0.2, 0.8)(64, g)
    assert per_batch.unique().numel() == 1 and 0.2 <= per_batch[0] <= 0.8
    per_sample = UniformRatio(0.2, 0.8, per_sample=True)(64, g)
    assert per_sample.unique().numel() == 64
    assert per_sample.min() >= 0.2 and per_sample.max() <= 0.8


def test_random_mask_is_uniform_over_valid_positions():
    valid = padded_valid([10] * 4000, 12)
    g = torch.Generator().manual_seed(0)
    masked = random_mask(valid, mask_counts(FixedRatio(0.3)(len(valid), g), valid), g)
    frequency = masked[:, :10].float().mean(0)
    assert torch.allclose(frequency, torch.full((10,), 0.3), atol=0.03)
    assert not masked[:, 10:].any()


def test_mask_top_takes_the_highest_scores_per_sample():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [5.0, 1.0, 3.0, 9.0]])
    valid = torch.tensor([[True, True, True, True], [True, True, True, False]])
    masked = mask_top(scores, valid, torch.tensor([2, 1]))
    assert masked.tolist() == [[False, True, False, True], [True, False, False, False]]


def test_parse_ratio_accepts_the_documented_forms_and_rejects_others():
    assert parse_ratio("0.75") == FixedRatio(0.75)
    assert parse_ratio("fixed:0.3") == FixedRatio(0.3)
    assert parse_ratio("uniform:0.1,0.5", per_sample=True) == UniformRatio(0.1, 0.5, True)
    for bad in ("1.5", "uniform:0.5", "uniform:0.6,0.2", "gaussian:0.1", "fixed:x"):
        with pytest.raises(UserError, match="ratio"):
            parse_ratio(bad)
