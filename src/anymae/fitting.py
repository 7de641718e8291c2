"""Fitting a network to labels: the `Task`, the fit loop with early stopping on validation, one fit per
learning rate (the recipes), the encoder's head (started as a linear probe) and its parameter groups.

Fine-tuning (anymae.finetune) and the baselines that train a network (anymae.baselines) both fit here.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from torch import nn

from anymae.config import FinetuneConfig
from anymae.evaluate import REGULARISATION, one_blas_thread, pool
from anymae.metrics import Metric
from anymae.model import MaskedAutoencoder


class EncoderHead(nn.Module):
    """The encoder (no masking), mean-pooled, then LayerNorm and one linear layer."""

    def __init__(self, encoder: MaskedAutoencoder, outputs: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = nn.LayerNorm(encoder.config.dim)
        self.head = nn.Linear(encoder.config.dim, outputs)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        for name, p in encoder.named_parameters():  # the decoder is not part of the fine-tuned model
            if not encoder_part(name):
                p.requires_grad_(False)

    def forward(self, batch) -> torch.Tensor:
        encoded = self.encoder.encode(batch)
        return self.head(self.norm(pool(encoded.memory, encoded.memory_valid)))


def encoder_part(name: str) -> bool:
    return name.split(".")[0] in ("embed", "position", "embed_norm", "latents", "guide", "blocks", "norm")


def layer_of(name: str, depth: int) -> int:
    """0 = embeddings, 1 = guide layer, 1 + i = block i, depth + 1 = final norm and head."""
    part = name.split(".")
    if part[0] == "encoder":
        part = part[1:]
    if part[0] in ("embed", "position", "embed_norm", "latents"):
        return 0
    if part[0] == "guide":
        return 1
    if part[0] == "blocks":
        return 2 + int(part[1])
    return depth + 1


def param_groups(net: nn.Module, depth: int, layer_decay: float, weight_decay: float) -> list[dict]:
    """AdamW groups with layer-wise lr scales; no weight decay on biases, norms and 1-row embeddings."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        layer = layer_of(name, depth) if depth else 0
        decay = p.ndim >= 2 and p.shape[0] != 1
        group = groups.setdefault(
            (layer, decay),
            {"params": [], "weight_decay": weight_decay if decay else 0.0, "scale": layer_decay ** (depth + 1 - layer)},
        )
        group["params"].append(p)
    return list(groups.values())


def schedule(step: int, steps: int, warmup: float, halvings: int | None = None) -> float:
    """The lr multiplier at `step`: linear warm-up over the first `warmup` of the cap, then cosine to 0
    at the cap (a fixed budget), or, with `halvings` given (the budget by epochs), 0.5 ** halvings: the
    lr halves at every validation pass that is not better, since validation, not the cap, ends the run."""
    warm = max(1, int(warmup * steps))
    if step < warm:
        return (step + 1) / warm
    if halvings is not None:
        return 0.5**halvings
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


@dataclass
class Task:
    """What a fit needs: inputs for an index batch, targets, the metric and the splits."""

    inputs: Callable[[np.ndarray], object]
    labels: np.ndarray
    metric: Metric
    splits: dict[str, np.ndarray]  # train (the labelled subset), val, test


def outputs_of(net: nn.Module, task: Task, index: np.ndarray, batch_size: int = 512) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        parts = [net(task.inputs(index[s : s + batch_size])).float().numpy() for s in range(0, len(index), batch_size)]
    return np.concatenate(parts)


# On a tiny labelled subset an epoch is a step or two: validating that often would let a few noisy
# passes end the run, so validation waits at least this many steps.
MIN_STEPS_BETWEEN_VALIDATIONS = 20


def budget(n_train: int, config: FinetuneConfig) -> tuple[int, int, int, int]:
    """(batch size, the cap in steps, steps between validation passes, the steps the schedule is laid
    out over: `epochs` passes over the subset) for n_train labelled examples."""
    batch_size = min(config.batch_size, n_train)
    epoch = math.ceil(n_train / batch_size)
    planned = min(config.max_steps, config.epochs * epoch)
    if config.evals:  # a fixed budget: that many validation passes spread over the plan
        return batch_size, planned, min(max(1, planned // config.evals), planned), planned
    every = max(epoch, MIN_STEPS_BETWEEN_VALIDATIONS)
    # The cap counts validation passes, not epochs: where validation waits longer than an epoch (a tiny
    # subset), `epochs` epochs would allow too few passes for patience, not the cap, to end the run.
    cap = min(config.max_steps, config.epochs * every)
    return batch_size, cap, min(every, cap), planned


def fit(net: nn.Module, groups: list[dict], task: Task, config: FinetuneConfig, lr: float, seed: int) -> dict:
    """Train on the labelled subset until validation stops improving (or the cap), keep the state best
    on validation, score the test split once. Warm-up, then the lr halves at each validation pass that
    is not better (by epochs, config.evals = 0), or cosine to the cap (a fixed budget of config.evals passes)."""
    classify = task.metric.classifies
    train = task.splits["train"]
    y = task.labels
    mean, std = (0.0, 1.0) if classify else (float(y[train].mean()), float(y[train].std() or 1.0))
    batch_size, steps, every, planned = budget(len(train), config)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    order, cursor = rng.permutation(train), 0
    started = time.perf_counter()
    # step 0 is a candidate too: with a probe-initialised head, fine-tuning must beat the probe on val
    initial = task.metric.of_outputs(y[task.splits["val"]], predict(net, task, "val", mean, std))
    best = {"val": initial, "step": 0, "state": copy.deepcopy(net.state_dict())}
    stale, step = 0, 0
    halvings = 0 if not config.evals else None  # by epochs: the lr halves at each pass that is not better
    while step < steps and stale < config.patience:
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(train), 0
        index = order[cursor : cursor + batch_size]
        cursor += batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("scale", 1.0) * schedule(step, planned, config.warmup, halvings)
        net.train()
        out = net(task.inputs(index))
        if classify:
            loss = F.cross_entropy(out.float(), torch.from_numpy(y[index]).long())
        else:
            target = torch.from_numpy(((y[index] - mean) / std).astype(np.float32))
            loss = F.mse_loss(out.float().reshape(-1), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % every == 0 or step == steps:
            val = task.metric.of_outputs(y[task.splits["val"]], predict(net, task, "val", mean, std))
            if task.metric.better(val, best["val"]):
                best, stale = {"val": val, "step": step, "state": copy.deepcopy(net.state_dict())}, 0
            else:
                stale += 1
                halvings = None if halvings is None else halvings + 1
    net.load_state_dict(best["state"])
    test = task.metric.of_outputs(y[task.splits["test"]], predict(net, task, "test", mean, std))
    return {
        "val": best["val"],
        "test": test,
        "best_step": best["step"],
        "steps_run": step,
        "stopped": "validation" if stale >= config.patience else "cap",
        "lr": lr,
        "seconds": time.perf_counter() - started,
    }


def predict(net: nn.Module, task: Task, split: str, mean: float, std: float) -> np.ndarray:
    out = outputs_of(net, task, task.splits[split])
    return out if task.metric.classifies else out * std + mean


def fit_recipes(build: Callable[[], tuple[nn.Module, list[dict]]], task: Task, config: FinetuneConfig, seed: int):
    """Fit once per learning rate; the run best on validation is kept (with its network)."""
    chosen = None
    for lr in config.lr:
        net, groups = build()
        result = fit(net, groups, task, config, lr, seed)
        if chosen is None or task.metric.better(result["val"], chosen[0]["val"]):
            chosen = (result, net)
    return chosen


def n_outputs(task: Task) -> int:
    """Classes (from the training and validation labels: test labels are never read), or 1 value."""
    if not task.metric.classifies:
        return 1
    seen = np.concatenate([task.labels[task.splits["train"]], task.labels[task.splits["val"]]])
    return int(seen.max()) + 1


PROBE_HEAD_MAX = 5000  # training examples the head's probe is fitted on (a fixed subsample)


def probe_head(net: EncoderHead, task: Task) -> None:
    """Start the head as the linear probe (logistic or ridge, C chosen on validation) on the frozen,
    normed, pooled features: fine-tuning then starts from the probe's solution, not a random head."""
    train = task.splits["train"]
    if len(train) > PROBE_HEAD_MAX:
        train = np.sort(np.random.default_rng(0).choice(train, PROBE_HEAD_MAX, replace=False))
    net.eval()
    with torch.no_grad():
        features = {}
        for split, index in (("train", train), ("val", task.splits["val"])):
            parts = []
            for s in range(0, len(index), 512):
                encoded = net.encoder.encode(task.inputs(index[s : s + 512]))
                parts.append(net.norm(pool(encoded.memory, encoded.memory_valid)).float().numpy())
            features[split] = np.concatenate(parts)
    y = {"train": task.labels[train], "val": task.labels[task.splits["val"]]}
    classify = task.metric.classifies
    if classify and len(np.unique(y["train"])) < 2:
        return  # one class seen: nothing to fit; the head keeps its random init
    mean, std = (0.0, 1.0) if classify else (float(y["train"].mean()), float(y["train"].std() or 1.0))
    best = None
    for c in REGULARISATION:
        head = LogisticRegression(C=c, max_iter=300) if classify else Ridge(alpha=1.0 / c)
        with warnings.catch_warnings(), one_blas_thread():  # a start for fine-tuning: unconverged is fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            head.fit(features["train"], y["train"] if classify else (y["train"] - mean) / std)
        if classify:
            val = task.metric.of_model(head, features["val"], y["val"])
        else:
            val = task.metric.score(y["val"], head.predict(features["val"]) * std + mean)
        if best is None or task.metric.better(val, best[0]):
            best = (val, head)
    head = best[1]
    weight = torch.zeros_like(net.head.weight)
    bias = torch.zeros_like(net.head.bias)
    coef, intercept = np.atleast_2d(head.coef_), np.atleast_1d(head.intercept_)
    if classify and len(coef) == 1:  # binary: logits -z/2 and z/2 give the same probabilities
        coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    rows = head.classes_.astype(int) if classify else np.arange(1)
    weight[rows] = torch.as_tensor(coef, dtype=weight.dtype)
    bias[rows] = torch.as_tensor(intercept, dtype=bias.dtype)
    with torch.no_grad():
        net.head.weight.copy_(weight)
        net.head.bias.copy_(bias)
