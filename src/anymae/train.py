"""The engine: one readable pretraining loop with checkpoints, exact resume and metrics.

The loop knows nothing about masking: it asks the objective for a loss.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from anymae import distributed
from anymae.checkpoint import FILENAME, Checkpoint, check_checkpoint, load_checkpoint
from anymae.config import Config, TrainConfig, check_fits, save_config, validate
from anymae.data import Dataset, absolute_name, load_dataset
from anymae.diagnostics import MaskDiagnostics
from anymae.errors import UserError
from anymae.heap import bound_heap
from anymae.masking import MaskingStrategy, build_strategy, check_strategy
from anymae.model import MaskedAutoencoder
from anymae.objective import reconstruction
from anymae.runfolder import RunFolder, data_fingerprint
from anymae.tokens import TokenBatch, spec_to_dict


@dataclass
class RunResult:
    steps: int
    final_loss: float
    seconds: float
    run_dir: Path


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device=cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    warmup = max(1, int(config.warmup * config.steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


EMBEDDING_PARAMETERS = ("position", "decoder_position", "latents", "mask_token")  # learned vectors, not maps


def decays(module: nn.Module, name: str) -> bool:
    """Weight decay by a parameter's role: the weight matrices of linear maps and token tables decay;
    biases, norms, position embeddings, latents and the mask token do not."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return name == "weight"
    if isinstance(module, nn.LayerNorm) or name == "bias" or name in EMBEDDING_PARAMETERS:
        return False
    raise ValueError(f"no weight-decay role for parameter '{name}' of {type(module).__name__}: add one in decays()")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: decayed weight matrices, and everything else without decay."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            (decay if decays(module, name) else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))


def batch_order(n: int, batch_size: int, seed: int, start: int) -> Iterator[np.ndarray]:
    """Index batches from batch number `start` on: one fixed permutation per epoch, last partial batch dropped.

    Stateless (a function of seed, epoch and position), so a resumed run sees the same batches.
    """
    per_epoch = n // batch_size
    k = start
    while True:
        epoch, offset = divmod(k, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for i in range(offset, per_epoch):
            yield order[i * batch_size : (i + 1) * batch_size]
        k = (epoch + 1) * per_epoch


class Progress:
    """A tqdm bar on a terminal; plain lines every `log_every` steps otherwise."""

    def __init__(self, total: int, start: int, log_every: int, enabled: bool = True) -> None:
        self.tty, self.enabled = sys.stderr.isatty(), enabled
        self.total, self.log_every = total, log_every
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not (self.tty and enabled))
        self.started, self.start_step = time.perf_counter(), start

    def update(self, step: int, record: dict | None) -> None:
        self.bar.update(1)
        if record is None or not self.enabled:
            return
        if self.tty:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", samples_s=f"{record['samples_per_s']:.0f}")
            return
        done = step - self.start_step
        eta = (time.perf_counter() - self.started) / max(done, 1) * (self.total - step)
        print(
            f"step {step}/{self.total}  loss {record['loss']:.4f}  lr {record['lr']:.2e}  "
            f"{record['samples_per_s']:.0f} samples/s  eta {eta / 60:.1f} min",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        self.bar.close()


@dataclass
class Run:
    """A training run: its model, optimizer, masking strategy and mask generator at `step`."""

    config: Config
    folder: RunFolder  # locked for the life of the run; it writes the checkpoints
    dataset: Dataset
    device: torch.device
    model: MaskedAutoencoder
    optimizer: torch.optim.AdamW
    strategy: MaskingStrategy
    generator: torch.Generator  # every mask's randomness (this process's own)
    batch_size: int  # the global batch, split across processes
    rank: distributed.Rank = distributed.SINGLE  # one process unless torchrun started several
    objective: Callable | None = None  # reconstruction of `model`; DDP-wrapped under several processes
    step: int = 0
    fingerprint: dict | None = None  # data_fingerprint of the data, computed once (its hash reads every token)

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    @property
    def checkpoint_file(self) -> Path:
        return self.run_dir / FILENAME

    def batches(self) -> Iterator[TokenBatch]:
        """The training batches from the current step on, on the run's device."""
        t, train_index = self.config.train, self.dataset.splits["train"]
        order = batch_order(len(train_index), self.batch_size, t.seed, self.step * t.accumulate)
        for index in order:
            index = train_index[self.rank.share(index)]  # this process's slice of the global batch
            yield self.dataset.tokens.batch(index, self.dataset.spec.discrete).to(self.device)

    def save(self) -> None:
        masking = self.rank.gather("masking", self.strategy.state_dict())  # every process's (all take part)
        kept = self.rank.gather("masking", self.strategy.tensors())
        state = Checkpoint(
            self.config,
            self.step,
            self.model.state_dict(),
            self.optimizer.state_dict(),
            self.rank.gather("mask", self.generator.get_state()),
            {**masking, "data": self.fingerprint, "spec": spec_to_dict(self.dataset.spec)},
            {f"{key}/{name}": tensor for key, tensors in kept.items() for name, tensor in tensors.items()},
        )
        self.folder.save(state)  # refuses non-finite weights: TrainingDiverged naming the checkpoint kept
        self.rank.barrier()  # rank 0 wrote it before any process goes on


def build_run(folder: RunFolder, config: Config, resume: bool = False, dataset: Dataset | None = None) -> Run:
    """Check the config, read the data, build model, optimizer and strategy; restore them on `resume`.

    `folder` is open (locked, writable, holding a run exactly when `resume`)."""
    validate(config)
    check_strategy(config.masking, config.model)  # before any data is read
    t = config.train
    if t.threads:
        torch.set_num_threads(t.threads)
    run_dir = folder.path
    dataset = dataset or load_dataset(config.data)
    check_fits(config, dataset.spec)
    check_strategy(config.masking, config.model, dataset.spec)
    rank = distributed.setup(pick_device(t.device), t.dist_timeout)
    torch.manual_seed(t.seed)
    model = MaskedAutoencoder(dataset.spec, config.model).to(rank.device)
    if t.recompute:
        model.recompute()
        bound_heap()  # without it, glibc's fragmented heap keeps what recomputing frees (anymae/heap.py)
    if config.train.compile:
        model.compile_layers()
    run = Run(
        config,
        folder,
        dataset,
        rank.device,
        model,
        make_optimizer(model, t),
        build_strategy(config.masking, dataset.spec, config.model),
        torch.Generator().manual_seed(rank.seed(t.seed)),
        min(t.batch_size, len(dataset.splits["train"])),
        rank,
    )
    rank.check_batch(run.batch_size)
    run.fingerprint = data_fingerprint(dataset)
    if resume:
        saved = load_checkpoint(run.checkpoint_file)
        check_checkpoint(saved, run.checkpoint_file, run.model, run.optimizer, generators=("mask",))
        folder.resumed(saved, run.fingerprint)  # the same data; metric lines after the checkpoint dropped
        run.model.load_state_dict(saved.model)
        run.optimizer.load_state_dict(saved.optimizer)
        # a rank the saved run did not have keeps its fresh generator and takes rank 0's strategy state
        run.generator.set_state(rank.own(saved.generators, "mask", run.generator.get_state()))
        run.strategy.load_state_dict(rank.own(saved.extra, "masking", saved.extra.get("masking", {})))
        kept: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in saved.masking.items():
            owner, name = key.rsplit("/", 1)
            kept.setdefault(owner, {})[name] = tensor
        run.strategy.load_tensors(rank.own(kept, "masking", kept.get("masking", {})))
        run.step = saved.step
    config.data.name = absolute_name(config.data.name)  # a run used from another folder still finds its data
    if rank.main:
        save_config(config, run_dir / "config.yaml")
    run.objective = distributed.wrap(model, reconstruction, rank)
    return run


@dataclass
class StepResult:
    loss: float  # mean over the accumulated batches; non-finite: the step stopped, no update was made
    masked: list[torch.Tensor]  # each batch's mask, for the diagnostics


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


@dataclass
class StepContext:
    """What every optimizer step of a run uses: the model and its optimizer, the masking strategy and
    its generator, and how a step runs (gradient clipping, autocast, the objective, the process group)."""

    model: MaskedAutoencoder
    optimizer: torch.optim.Optimizer
    strategy: MaskingStrategy
    generator: torch.Generator
    clip: float = 0.0
    autocast: contextlib.AbstractContextManager | None = None
    objective: Callable | None = None
    rank: distributed.Rank = distributed.SINGLE


def train_step(context: StepContext, batches: list[TokenBatch], lr: float, progress: float) -> StepResult:
    """One optimizer step: mask and reconstruct each batch (gradients accumulated), clip, update.

    `objective` is `reconstruction` of `model` (DDP-wrapped under several processes). The loss
    is the mean over processes; when it is non-finite on any of them, all stop before that
    batch's backward pass and make no update.
    """
    c = context
    objective = c.objective or functools.partial(reconstruction, c.model)
    for group in c.optimizer.param_groups:
        group["lr"] = lr
    total, masks = 0.0, []
    for batch in batches:
        with c.autocast or contextlib.nullcontext():
            out = objective(batch, c.strategy, c.generator, progress=progress)
        masks.append(out.masked)
        loss = c.rank.mean(out.loss)
        if not math.isfinite(loss):
            c.optimizer.zero_grad(set_to_none=True)
            return StepResult(loss, masks)
        (out.loss / len(batches)).backward()
        total += loss / len(batches)
    if c.clip > 0:
        torch.nn.utils.clip_grad_norm_(c.model.parameters(), c.clip)
    c.optimizer.step()
    c.optimizer.zero_grad(set_to_none=True)
    return StepResult(total, masks)


class MetricsWindow:
    """Mean loss and throughput over the steps since the last metrics line."""

    def __init__(self, samples_per_step: int) -> None:
        self.samples_per_step = samples_per_step
        self.started = time.perf_counter()
        self.reset()

    def reset(self) -> None:
        self.loss, self.steps, self.window_start = 0.0, 0, time.perf_counter()
        self.cpu_start = time.process_time()

    def add(self, loss: float) -> None:
        self.loss, self.steps = self.loss + loss, self.steps + 1

    def record(self, step: int, lr: float) -> dict:
        now = time.perf_counter()
        record = {
            "step": step,
            "loss": self.loss / self.steps,
            "lr": lr,
            "samples_per_s": self.steps * self.samples_per_step / max(now - self.window_start, 1e-9),
            "elapsed_s": now - self.started,
            "cpu_s": time.process_time() - self.cpu_start,  # this process's CPU time over the window (all threads)
        }
        self.reset()
        return record


def pretrain(
    config: Config, run_dir: Path, resume: bool = False, stop_after: int | None = None, dataset: Dataset | None = None
) -> RunResult:
    """Pretrain a masked autoencoder; `stop_after` ends early (as an interruption would) for tests."""
    writer = distributed.is_main()  # under torchrun, rank 0 alone locks, prepares and writes the folder
    with RunFolder(run_dir, writer).open(resume) as folder:  # one run at a time in a folder
        return train(build_run(folder, config, resume, dataset), stop_after)


def train(run: Run, stop_after: int | None = None) -> RunResult:
    """The loop: steps, metrics lines, checkpoints, until train.steps (or `stop_after`)."""
    config = run.config
    t = config.train
    end = t.steps if stop_after is None else min(t.steps, stop_after)
    batches = run.batches()
    context = StepContext(
        run.model, run.optimizer, run.strategy, run.generator, t.clip, autocast_for(run.device), run.objective, run.rank
    )
    progress = Progress(t.steps, run.step, t.log_every, enabled=run.rank.main)
    diagnostics = MaskDiagnostics(run.dataset, config.masking, run.device)
    window = MetricsWindow(run.batch_size * t.accumulate)
    loss = float("nan")
    run.model.train()
    with open(run.run_dir / "metrics.jsonl" if run.rank.main else os.devnull, "a") as metrics:  # rank 0 writes
        while run.step < end:
            lr = learning_rate(run.step, t)
            micro = [next(batches) for _ in range(t.accumulate)]
            result = train_step(context, micro, lr, run.step / t.steps)
            for batch, masked in zip(micro, result.masked):
                diagnostics.observe(masked, batch.valid)
            if not math.isfinite(result.loss):
                progress.close()
                raise run.folder.diverged(f"loss became {result.loss} at step {run.step + 1}")
            run.step, loss = run.step + 1, result.loss
            window.add(loss)
            record = None
            if run.step % t.log_every == 0 or run.step == end:
                record = {**window.record(run.step, lr), **diagnostics.report(run.model)}
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
            progress.update(run.step, record)
            if run.step % t.checkpoint_every == 0 or run.step == end:
                run.save()
    progress.close()
    return RunResult(steps=run.step, final_loss=loss, seconds=time.perf_counter() - window.started, run_dir=run.run_dir)


def load_model(run: Path, dataset: Dataset | None = None) -> tuple[MaskedAutoencoder, Config]:
    """The pretrained model of a run folder (or checkpoint file), in eval mode on the CPU."""
    saved = load_checkpoint(run)
    dataset = dataset or load_dataset(saved.config.data)
    model = MaskedAutoencoder(dataset.spec, saved.config.model)
    check_checkpoint(saved, run, model)  # every tensor there, shapes of the model its config builds, finite
    model.load_state_dict(saved.model)
    return model.eval(), saved.config
