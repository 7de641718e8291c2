"""The engine: one readable pretraining loop with checkpoints, exact resume and metrics.

The loop knows nothing about masking: it asks the objective for a loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from anymae.checkpoint import FILENAME, Checkpoint, load_checkpoint, save_checkpoint
from anymae.config import Config, TrainConfig, save_config
from anymae.data import Dataset, load_dataset
from anymae.diagnostics import MaskDiagnostics
from anymae.errors import TrainingDiverged, UserError
from anymae.masking import build_strategy
from anymae.model import MaskedAutoencoder
from anymae.objective import reconstruction


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
    if name not in ("cpu", "cuda"):
        raise UserError(f"train.device must be auto, cpu or cuda, not '{name}'")
    return torch.device(name)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    warmup = max(1, int(config.warmup * config.steps))
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms, embeddings of positions, latents and the mask token."""
    decay = [p for p in model.parameters() if p.ndim >= 2 and p.shape[0] != 1]
    no_decay = [p for p in model.parameters() if not (p.ndim >= 2 and p.shape[0] != 1)]
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

    def __init__(self, total: int, start: int, log_every: int) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.log_every = total, log_every
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not self.tty)
        self.started, self.start_step = time.perf_counter(), start

    def update(self, step: int, record: dict | None) -> None:
        self.bar.update(1)
        if record is None:
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


def trim_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint's step (they will be logged again)."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in lines))


def pretrain(
    config: Config, run_dir: Path, resume: bool = False, stop_after: int | None = None, dataset: Dataset | None = None
) -> RunResult:
    """Pretrain a masked autoencoder; `stop_after` ends early (as an interruption would) for tests."""
    t = config.train
    if t.steps < 1 or t.batch_size < 1 or t.accumulate < 1:
        raise UserError("train.steps, train.batch_size and train.accumulate must be at least 1")
    if t.threads:
        torch.set_num_threads(t.threads)
    run_dir = Path(run_dir)
    ckpt_file = run_dir / FILENAME
    if not resume and ckpt_file.exists():
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    dataset = dataset or load_dataset(config.data)
    device = pick_device(t.device)
    train_index = dataset.splits["train"]
    batch_size = min(t.batch_size, len(train_index))

    torch.manual_seed(t.seed)
    model = MaskedAutoencoder(dataset.spec, config.model).to(device)
    strategy = build_strategy(config.masking, dataset.spec, config.model)
    optimizer = make_optimizer(model, t)
    mask_generator = torch.Generator().manual_seed(t.seed)
    step = 0
    if resume:
        saved = load_checkpoint(ckpt_file)
        model.load_state_dict(saved.model)
        optimizer.load_state_dict(saved.optimizer)
        mask_generator.set_state(saved.generators["mask"])
        step = saved.step
        trim_metrics(run_dir / "metrics.jsonl", step)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")

    def checkpoint() -> None:
        state = Checkpoint(
            config, step, model.state_dict(), optimizer.state_dict(), {"mask": mask_generator.get_state()}, {}
        )
        save_checkpoint(ckpt_file, state)

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    batches = batch_order(len(train_index), batch_size, t.seed, step * t.accumulate)
    end = t.steps if stop_after is None else min(t.steps, stop_after)
    progress = Progress(t.steps, step, t.log_every)
    diagnostics = MaskDiagnostics(dataset, config.masking, device)
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    started, loss_value = time.perf_counter(), float("nan")
    model.train()
    with open(run_dir / "metrics.jsonl", "a") as metrics:
        while step < end:
            lr = learning_rate(step, t)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = 0.0
            for _ in range(t.accumulate):
                batch = dataset.tokens.batch(train_index[next(batches)], dataset.spec.discrete).to(device)
                with autocast:
                    out = reconstruction(model, batch, strategy, mask_generator, progress=step / t.steps)
                loss = out["loss"]
                diagnostics.observe(out["masked"], batch.valid)
                if not torch.isfinite(loss):
                    progress.close()
                    raise TrainingDiverged(
                        f"loss became {loss.item()} at step {step + 1}; stopped. The last good checkpoint "
                        f"({ckpt_file}) is kept; try a lower train.lr or a higher train.warmup"
                    )
                (loss / t.accumulate).backward()
                step_loss += loss.item() / t.accumulate
            if t.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            loss_value = step_loss
            window_loss, window_steps = window_loss + step_loss, window_steps + 1
            record = None
            if step % t.log_every == 0 or step == end:
                elapsed = time.perf_counter() - window_start
                record = {
                    "step": step,
                    "loss": window_loss / window_steps,
                    "lr": lr,
                    "samples_per_s": window_steps * batch_size * t.accumulate / max(elapsed, 1e-9),
                    "elapsed_s": time.perf_counter() - started,
                    **diagnostics.report(model),
                }
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
            progress.update(step, record)
            if step % t.checkpoint_every == 0 or step == end:
                checkpoint()
    progress.close()
    return RunResult(steps=step, final_loss=loss_value, seconds=time.perf_counter() - started, run_dir=run_dir)


def load_model(run: Path, dataset: Dataset | None = None) -> tuple[MaskedAutoencoder, Config]:
    """The pretrained model of a run folder (or checkpoint file), in eval mode on the CPU."""
    saved = load_checkpoint(run)
    dataset = dataset or load_dataset(saved.config.data)
    model = MaskedAutoencoder(dataset.spec, saved.config.model)
    try:
        model.load_state_dict(saved.model)
    except RuntimeError as error:
        raise UserError(
            f"{run}: the checkpoint does not fit its own config or this data ({str(error)[:300]})"
        ) from None
    return model.eval(), saved.config
