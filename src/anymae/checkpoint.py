"""Checkpoints: one safetensors file holding weights, optimizer state and RNG states.

Non-tensor state (config, step, optimizer hyper-parameters) travels as JSON in the file's
metadata, so loading never unpickles anything. Writes are atomic: temp file, fsync, os.replace.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from anymae.config import Config
from anymae.errors import UserError

FILENAME = "checkpoint.safetensors"
FORMAT = "anymae-checkpoint-1"


@dataclass
class Checkpoint:
    config: Config
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict | None  # a torch optimizer state dict
    generators: dict[str, torch.Tensor]  # name -> generator state
    extra: dict  # JSON-able


def write_atomic(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in checkpoint.model.items()}
    groups = []
    if checkpoint.optimizer is not None:
        for index, state in checkpoint.optimizer["state"].items():
            for name, value in state.items():
                tensors[f"optim.{index}.{name}"] = value.detach().contiguous().cpu()
        groups = checkpoint.optimizer["param_groups"]
    tensors.update({f"rng.{k}": v for k, v in checkpoint.generators.items()})
    metadata = {
        "format": FORMAT,
        "step": str(checkpoint.step),
        "config": json.dumps(checkpoint.config.to_dict()),
        "optimizer_groups": json.dumps(groups),
        "has_optimizer": json.dumps(checkpoint.optimizer is not None),
        "extra": json.dumps(checkpoint.extra),
    }
    write_atomic(tensors, metadata, path)


def checkpoint_path(run: Path) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    run = Path(run)
    return run / FILENAME if run.is_dir() else run


def load_checkpoint(run: Path) -> Checkpoint:
    path = checkpoint_path(run)
    if not path.exists():
        raise UserError(f"no checkpoint at {path} (give the run folder written by `anymae pretrain --out`)")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"format is {metadata.get('format')!r}, expected {FORMAT!r}")
        config = Config.from_dict(json.loads(metadata["config"]), source=f"{path} (config)")
        optimizer = None
        if json.loads(metadata["has_optimizer"]):
            state: dict[int, dict] = {}
            for key, value in tensors.items():
                if key.startswith("optim."):
                    _, index, name = key.split(".", 2)
                    state.setdefault(int(index), {})[name] = value
            optimizer = {"state": state, "param_groups": json.loads(metadata["optimizer_groups"])}
        return Checkpoint(
            config=config,
            step=int(metadata["step"]),
            model={k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
            optimizer=optimizer,
            generators={k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")},
            extra=json.loads(metadata.get("extra", "{}")),
        )
    except (SafetensorError, ValueError, KeyError, OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not a readable anymae checkpoint ({error})") from None
