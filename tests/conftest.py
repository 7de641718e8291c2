from __future__ import annotations

import pytest
import torch

from anymae.config import ModelConfig
from anymae.model import MaskedAutoencoder
from anymae.tokens import ByteSequence, ImagePatches, TokenBatch

torch.set_num_threads(1)  # tiny tensors: one thread is fastest and leaves a core free

LENGTHS = [16, 9, 2, 13, 5, 16, 3, 11]  # varied lengths, padding up to N = 16


def padded_valid(lengths: list[int], n: int) -> torch.Tensor:
    return torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]


def value_batch(lengths: list[int] = LENGTHS, n: int = 16, channels: int = 4, seed: int = 0) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    valid = padded_valid(lengths, n)
    values = torch.randn(len(lengths), n, channels, generator=g) * valid[..., None]
    return TokenBatch(valid=valid, values=values)


def id_batch(lengths: list[int] = LENGTHS, n: int = 16, seed: int = 0) -> TokenBatch:
    g = torch.Generator().manual_seed(seed)
    valid = padded_valid(lengths, n)
    return TokenBatch(valid=valid, ids=torch.randint(1, 256, (len(lengths), n), generator=g) * valid)


def tiny_model(discrete: bool = False, mode: str = "self", n: int = 16, seed: int = 0) -> MaskedAutoencoder:
    torch.manual_seed(seed)
    spec = ByteSequence(max_tokens=n) if discrete else ImagePatches(height=4, width=n, patch=2)
    config = ModelConfig(mode=mode, dim=32, depth=3, heads=4, latents=8, decoder_dim=32, decoder_depth=1)
    return MaskedAutoencoder(spec, config)


@pytest.fixture(params=["self", "latent"])
def mode(request) -> str:
    return request.param
