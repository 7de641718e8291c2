"""Several processes, one run: DistributedDataParallel under torchrun, on PyTorch's own engine.

`torchrun --nproc_per_node=N -m anymae pretrain ...` sets RANK, WORLD_SIZE and LOCAL_RANK;
without them the run is one process and nothing here talks to anyone. Each process reads its
share of every global batch; DDP averages the gradients, so all processes hold the same weights.
Only rank 0 writes to the run folder.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from anymae.errors import PeerLost, UserError


@dataclass(frozen=True)
class Rank:
    """Where this process stands: its rank among `world` processes, and the device it trains on."""

    rank: int = 0
    world: int = 1
    local: int = 0  # rank on this machine (picks the GPU)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics, config and progress."""
        return self.rank == 0

    def check_batch(self, global_batch: int) -> None:
        """`train.batch_size` is the global batch: it must split evenly, or samples would be dropped."""
        if global_batch % self.world:
            raise UserError(
                f"train.batch_size={global_batch} is the global batch and must be a multiple of the "
                f"{self.world} processes (torchrun --nproc_per_node)"
            )

    def share(self, indices: np.ndarray) -> np.ndarray:
        """This process's slice of one global batch: consecutive, so every sample is read exactly once."""
        size = len(indices) // self.world
        return indices[self.rank * size : (self.rank + 1) * size]

    def seed(self, seed: int) -> int:
        """This process's mask-generator seed: `seed` on rank 0 (so one process is unchanged), distinct on others."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1, np.uint64)[0] >> 1)

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over all processes, as a float.

        The training loop reduces its loss with this before backward: a non-finite loss on any
        process makes the mean non-finite on all of them, so all stop at the same step.
        """
        value = value.detach().float().reshape(1)
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world
        return float(value)

    def barrier(self) -> None:
        """Wait for all processes: after rank 0 writes, so that what it wrote exists when any process goes on."""
        if self.world > 1:
            dist.barrier()

    def gather(self, name: str, value: Any) -> dict[str, Any]:
        """Every process's `value` (a collective: all call it), keyed `name` for rank 0 and `name.r` for rank r.

        What the checkpoint keeps of per-process state (mask generators, a strategy's running
        statistics), so a resume on the same number of processes continues exactly.
        """
        values = [value]
        if self.world > 1:
            values = [None] * self.world
            dist.all_gather_object(values, value)
        return {state_key(name, r): v for r, v in enumerate(values)}

    def own(self, saved: dict[str, Any], name: str, default: Any) -> Any:
        """This process's entry of what `gather` saved; `default` when the saved run had no such rank."""
        return saved.get(state_key(name, self.rank), default)


SINGLE = Rank()  # a run of one process


def state_key(name: str, rank: int) -> str:
    return name if rank == 0 else f"{name}.{rank}"


def from_environment() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) when run as one process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return 0, 1, 0
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise UserError(
            "WORLD_SIZE is set but RANK or LOCAL_RANK is missing or not a number: start several processes "
            "with torchrun --nproc_per_node=N -m anymae ..."
        ) from None
    return rank, world, local


def setup(device: torch.device, timeout_s: float) -> Rank:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPUs), or stay a single process.

    Idempotent: a process that already joined (a caller's group, or an earlier run in the same
    process) keeps its group. `timeout_s` bounds every wait on the others, so a process that hangs
    stops the rest with an error instead of a hang.
    """
    rank, world, local = from_environment()
    if world == 1:
        return Rank(device=device)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        atexit.register(teardown)
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise UserError(f"the process group has {dist.get_world_size()} processes but WORLD_SIZE is {world}")
    return Rank(rank, world, local, device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class Pass(torch.nn.Module):
    """The whole objective pass as one forward, so DDP hooks the backward of exactly what is trained."""

    def __init__(self, model: torch.nn.Module, objective: Callable) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, *args, **kwargs):
        return self.objective(self.model, *args, **kwargs)


def wrap(model: torch.nn.Module, objective: Callable, rank: Rank) -> Callable:
    """`objective(model, ...)` as a callable; under several processes its backward averages gradients.

    Anything that must not synchronise (diagnostics on rank 0, checkpoints) uses `model` itself.
    """
    if rank.world == 1:
        return functools.partial(objective, model)
    device_ids = [rank.device.index] if rank.device.type == "cuda" else None
    # Some parameters get no gradient in a step (encoder blocks carry an unused cross-attention norm,
    # strategies differ in what they touch): DDP must look for them, or the next step fails.
    return DistributedDataParallel(Pass(model, objective), device_ids=device_ids, find_unused_parameters=True)


def lost_contact(error: BaseException) -> bool:
    """Whether an error is a failed collective (a peer died, hung or timed out), not this process's own fault."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("gloo" in text or "NCCL" in text or "Timed out" in text)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn a failed collective into one clear message; a process's own errors pass through unchanged."""
    try:
        yield
    except Exception as error:
        if not (dist.is_initialized() and lost_contact(error)):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PeerLost(
            f"rank {dist.get_rank()} of {dist.get_world_size()} stopped: another process of this run failed or "
            f"stopped answering (its own message says why; waits are bounded by train.dist_timeout). "
            f"Detail: {first_line[:300]}"
        ) from None


def is_main() -> bool:
    """Whether this process is rank 0 (or the only process); for messages printed outside the loop."""
    return from_environment()[0] == 0
