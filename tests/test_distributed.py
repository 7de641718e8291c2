"""Several processes (gloo, CPU): the same run as one process, resume across world sizes, clean stops.

Equal parameters between 1 process with batch 2b and 2 processes with b each only mean something
if both see the same masks. Real strategies draw masks from a per-process generator, so they
differ by design. These tests therefore train with `TokenSelector`, a test-only selector whose
mask is a function of each sample's tokens alone: the same sample gets the same mask on any
rank, in any batch. It enters through the strategy table (`SELECTORS`) like any strategy, only
in the processes of these tests, so the engine runs its own code path (DDP, data split,
all-reduce, checkpoints). Runs with a real strategy (self-guided masks with running position
means) check what needs no equal masks: exact resume on the same world size, and per-rank state.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from anymae import distributed
from anymae.checkpoint import load_checkpoint
from anymae.config import Config
from anymae.data import load_dataset
from anymae.errors import PeerLost, TrainingDiverged, UserError
from anymae.masking import SELECTORS, MaskContext, MaskPlan, Selector, mask_top
from anymae.train import batch_order, pretrain


def tiny_config(steps: int = 6, batch_size: int = 32) -> Config:
    config = Config()
    config.data.name = "digits"
    config.model.dim, config.model.depth, config.model.decoder_dim, config.model.decoder_depth = 32, 2, 32, 1
    config.train.steps, config.train.batch_size, config.train.log_every = steps, batch_size, 2
    config.train.checkpoint_every, config.train.dist_timeout = 3, 20.0
    return config


def sma_config() -> Config:
    """Self-guided masks with running position means: per-rank state of both a generator and a strategy."""
    config = tiny_config()
    config.masking.strategy, config.masking.position_debias = "sma", True
    return config


def informed_config() -> Config:
    """Informed masks whose scores are kept per sample: per-rank tensor state (a batch of 512: rows recur)."""
    config = tiny_config(batch_size=512)
    config.masking.strategy, config.masking.start, config.masking.refresh_every = "informed", 0.0, 2
    return config


def token_config(steps: int = 6, batch_size: int = 32) -> Config:
    """tiny_config trained with TokenSelector masks (ratio 0.5)."""
    config = tiny_config(steps, batch_size)
    config.masking.strategy, config.masking.ratio = TokenSelector.name, "fixed:0.5"
    return config


@dataclass
class TokenSelector(Selector):
    """Test only: mask the tokens with the largest sum of values (ties by position), the same on every rank.

    `fault` makes rank 1 misbehave at its `at`-th batch: "raise", "hang" or "nan" (poisons its batch).
    """

    name = "token-sum (test)"
    fault: ClassVar[str] = ""
    at: ClassVar[int] = 4
    calls: int = field(default=0, init=False)

    def __call__(self, context: MaskContext) -> MaskPlan:
        self.calls += 1
        if self.fault and self.calls == self.at and torch.distributed.get_rank() == 1:
            if self.fault == "raise":
                raise RuntimeError("injected failure on rank 1")
            if self.fault == "hang":
                time.sleep(120)
            context.batch.values.fill_(float("nan"))
        scores = context.batch.values.sum(-1)
        return MaskPlan(masked=mask_top(scores, context.batch.valid, context.counts))


SELECTORS.pop(TokenSelector.name)  # defining it registered it; only these tests' processes put it back


def use_token_masks(fault: str = "") -> None:
    """Let this process's runs name TokenSelector (in a spawned process, which ends with the test)."""
    SELECTORS[TokenSelector.name] = TokenSelector
    TokenSelector.fault = fault


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_world(rank: int, world: int, port: int) -> None:
    """What torchrun would set for this process."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)


def two_process_runs(rank: int, port: int, root: str) -> None:
    """Everything the module's tests need from 2 processes, in one session (each run takes well under a second)."""
    join_world(rank, 2, port)
    root_dir, dataset = Path(root), load_dataset(tiny_config().data)
    use_token_masks()
    pretrain(token_config(), root_dir / "two", dataset=dataset)  # compared with 1 process at twice the batch
    pretrain(token_config(), root_dir / "two-then-one", dataset=dataset, stop_after=4)
    pretrain(token_config(), root_dir / "one-then-two", dataset=dataset, resume=True)
    use_token_masks("nan")
    try:
        pretrain(token_config(), root_dir / "diverged", dataset=dataset)
    except TrainingDiverged as error:
        (root_dir / f"diverged-{rank}.txt").write_text(str(error))
    pretrain(sma_config(), root_dir / "sma", dataset=dataset)
    pretrain(sma_config(), root_dir / "sma-resumed", dataset=dataset, stop_after=4)
    pretrain(sma_config(), root_dir / "sma-resumed", dataset=dataset, resume=True)
    pretrain(informed_config(), root_dir / "informed", dataset=dataset)
    pretrain(informed_config(), root_dir / "informed-resumed", dataset=dataset, stop_after=3)
    pretrain(informed_config(), root_dir / "informed-resumed", dataset=dataset, resume=True)
    use_token_masks("raise")  # last: the process group does not survive it
    finish(rank, root_dir / "failed", dataset)


def finish(rank: int, run: Path, dataset, timeout_s: float = 20.0) -> None:
    """Train a run in which rank 1 may misbehave; each process writes how it ended to `run`-RANK.txt."""
    config = token_config()
    config.train.dist_timeout = timeout_s
    try:
        with distributed.guard():
            pretrain(config, run, dataset=dataset)
        outcome = "finished"
    except Exception as error:  # noqa: BLE001 - the outcome is what the test checks
        outcome = f"{type(error).__name__}: {error}"
    run.with_name(f"{run.name}-{rank}.txt").write_text(outcome)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    dataset = load_dataset(tiny_config().data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SELECTORS, TokenSelector.name, TokenSelector)
        pretrain(token_config(), root / "one", dataset=dataset)
        pretrain(token_config(batch_size=16), root / "one-half-batch", dataset=dataset)
        pretrain(token_config(), root / "one-then-two", dataset=dataset, stop_after=4)
        processes = mp.spawn(two_process_runs, args=(free_port(), str(root)), nprocs=2, join=False)
        deadline = time.monotonic() + 300
        while not processes.join(timeout=5):
            if time.monotonic() > deadline:
                for p in processes.processes:
                    p.kill()
                pytest.fail("the 2-process runs did not finish: a hang")
        pretrain(token_config(), root / "two-then-one", dataset=dataset, resume=True)
    return root


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run).model


def assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=atol, rtol=1e-4), name


def metric_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_end_where_one_process_with_twice_the_batch_ends(runs):
    assert_same_weights(runs / "one", runs / "two")
    # the comparison can fail: one process with the per-process batch alone ends elsewhere
    one, half = weights(runs / "one"), weights(runs / "one-half-batch")
    assert not all(torch.allclose(one[k], half[k], atol=1e-5, rtol=1e-4) for k in one)
    losses = [
        [json.loads(x)["loss"] for x in (runs / r / "metrics.jsonl").read_text().splitlines()] for r in ("one", "two")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)  # logged loss: the mean over processes


def test_only_rank_zero_writes_the_run_folder(runs):
    assert metric_steps(runs / "two") == [2, 4, 6]  # each line once: rank 1 wrote none
    assert load_checkpoint(runs / "two").step == 6 and (runs / "two" / "config.yaml").exists()
    names = [sorted(p.name for p in (runs / r).iterdir()) for r in ("one", "two")]
    assert names[0] == names[1]  # the files of a one-process run, nothing more


def test_resume_across_world_sizes(runs):
    for run in ("two-then-one", "one-then-two"):  # 4 steps on 2 processes then 2 on 1, and the other way round
        assert load_checkpoint(runs / run).step == 6
        assert_same_weights(runs / "one", runs / run)
        assert metric_steps(runs / run) == [2, 4, 6]


def test_resume_on_the_same_world_size_is_exact_with_per_rank_masks(runs):
    straight, resumed = load_checkpoint(runs / "sma"), load_checkpoint(runs / "sma-resumed")
    for name in straight.model:
        assert torch.equal(straight.model[name], resumed.model[name]), name
    # each process's mask generator and running position means are saved, and they differ by rank
    assert set(straight.generators) == {"mask", "mask.1"} and {"masking", "masking.1"} <= set(straight.extra)
    assert not torch.equal(straight.generators["mask"], straight.generators["mask.1"])
    assert straight.extra["masking"]["position_mean"] != straight.extra["masking.1"]["position_mean"]
    assert straight.extra == resumed.extra


def test_kept_informed_scores_are_saved_per_rank_and_resume_exactly(runs):
    straight, resumed = load_checkpoint(runs / "informed"), load_checkpoint(runs / "informed-resumed")
    assert set(straight.masking) == {"masking/scores", "masking/uses", "masking.1/scores", "masking.1/uses"}
    uses = straight.masking["masking/uses"], straight.masking["masking.1/uses"]
    assert not torch.equal(*uses) and max(int(u.max()) for u in uses) == 2  # each rank kept its own rows
    for name in straight.model:
        assert torch.equal(straight.model[name], resumed.model[name]), name
    for name in straight.masking:
        assert torch.equal(straight.masking[name], resumed.masking[name]), name


def test_a_non_finite_loss_on_one_rank_stops_both_at_the_same_step(runs):
    messages = [(runs / f"diverged-{r}.txt").read_text() for r in (0, 1)]
    assert all("loss became nan at step 4" in m for m in messages)
    assert load_checkpoint(runs / "diverged").step == 3  # the last good checkpoint is kept


def faulty_rank(rank: int, port: int, root: str, fault: str) -> None:
    join_world(rank, 2, port)
    use_token_masks(fault)
    finish(rank, Path(root) / "run", load_dataset(tiny_config().data), timeout_s=5.0)


def run_faulty(root: Path, fault: str) -> list[str]:
    """A 2-process run in which rank 1 misbehaves; how each rank ended."""
    context = mp.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=faulty_rank, args=(r, port, str(root), fault)) for r in (0, 1)]
    for p in processes:
        p.start()
    processes[0].join(timeout=60)
    stopped = not processes[0].is_alive()
    for p in processes:
        if p.is_alive():
            p.kill()
        p.join()
    assert stopped, "rank 0 did not stop"
    return [(root / f"run-{r}.txt").read_text() if (root / f"run-{r}.txt").exists() else "" for r in (0, 1)]


def test_a_rank_that_raises_stops_the_other_with_a_message(runs):
    rank0, rank1 = [(runs / f"failed-{r}.txt").read_text() for r in (0, 1)]
    assert rank0.startswith("PeerLost: rank 0 of 2 stopped: another process of this run failed")
    assert rank1 == "RuntimeError: injected failure on rank 1"  # its own error, unchanged


@pytest.mark.slow
def test_a_rank_that_hangs_stops_the_other_after_the_timeout(tmp_path):
    rank0, _ = run_faulty(tmp_path, "hang")
    assert rank0.startswith("PeerLost: rank 0 of 2 stopped: another process of this run failed")
    assert "Timed out" in rank0  # waited train.dist_timeout (5 s), not forever


def test_torchrun_runs_one_job_into_one_folder(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "anymae", "pretrain"]
    command += ["--data", "digits", "--steps", "4", "--out", str(out), "model.dim=32", "model.depth=2"]
    command += ["model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=64", "train.log_every=2"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("pretrained 4 steps") == 1  # printed by rank 0 only
    assert done.stderr.count("step 4/4") == 1  # progress from rank 0 only
    assert metric_steps(out) == [2, 4]


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
    assert rank.gather("mask", "state of rank 0") == {"mask": "state of rank 0"}
    saved = {"mask": "r0", "mask.1": "r1"}
    assert [distributed.Rank(rank=r, world=3).own(saved, "mask", "fresh") for r in range(3)] == ["r0", "r1", "fresh"]
    with pytest.raises(ValueError, match="own"), distributed.guard():
        raise ValueError("own error")  # not a lost peer: passes through unchanged
    assert isinstance(PeerLost("x"), RuntimeError)
