"""The distributed helpers on their own: environment, data split, per-rank seeds, single-process fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymae import distributed
from anymae.errors import PeerLost, UserError
from anymae.train import batch_order


def test_the_global_batch_must_split_evenly_and_the_environment_be_whole(monkeypatch):
    distributed.Rank(world=4).check_batch(32)
    with pytest.raises(UserError, match=r"train.batch_size=32 is the global batch .* 3 processes"):
        distributed.Rank(world=3).check_batch(32)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(UserError, match="RANK .* torchrun"):
        distributed.from_environment()


def test_environment_and_single_process_fallback(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.from_environment() == (0, 1, 0)
    single = distributed.setup(torch.device("cpu"), 1.0)
    assert single == distributed.Rank() and single.main and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.from_environment() == (3, 4, 1)


def test_each_sample_is_read_once_per_epoch_across_ranks():
    n, batch, world = 103, 12, 4
    per_epoch = n // batch
    batches = [b for _, b in zip(range(per_epoch), batch_order(n, batch, seed=3, start=0))]
    shares = [[distributed.Rank(rank=r, world=world).share(b) for r in range(world)] for b in batches]
    for whole, parts in zip(batches, shares):
        assert [len(p) for p in parts] == [batch // world] * world
        assert (np.concatenate(parts) == whole).all()
    seen = np.concatenate([p for parts in shares for p in parts])
    assert len(seen) == len(set(seen.tolist())) == per_epoch * batch


def test_mask_seeds_are_per_rank_and_rank_zero_keeps_the_run_seed():
    seeds = [distributed.Rank(rank=r, world=4).seed(7) for r in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4
    assert seeds == [distributed.Rank(rank=r, world=4).seed(7) for r in range(4)]  # a function of (seed, rank)


def test_single_process_helpers_need_no_process_group():
    rank = distributed.Rank()
    assert rank.mean(torch.tensor(2.5)) == 2.5
    generator = torch.Generator().manual_seed(1)
    states = rank.generator_states(generator, "mask")
    assert list(states) == ["mask"] and torch.equal(states["mask"], generator.get_state())
    fresh = torch.Generator().manual_seed(2)
    distributed.Rank(rank=1, world=2).restore_generator(fresh, states, "mask")  # no state for rank 1: kept
    assert torch.equal(fresh.get_state(), torch.Generator().manual_seed(2).get_state())
    with pytest.raises(ValueError, match="own"), distributed.guard():
        raise ValueError("own error")  # not a lost peer: passes through unchanged
    assert isinstance(PeerLost("x"), RuntimeError)
