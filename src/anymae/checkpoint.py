"""Checkpoints: one safetensors file holding weights, optimizer state and RNG states.

Non-tensor state (config, step, optimizer hyper-parameters) travels as JSON in the file's
metadata, so loading never unpickles anything. Writes are atomic: temp file, fsync, os.replace.

Every file carries a SHA-256 of its metadata and tensor bytes, checked on every load (set
ANYMAE_SKIP_CHECKSUM=1, or pass verify=False, to skip it for huge files), and a list of the
optimizer tensors it holds, so a file with tensors missing is refused rather than half loaded.
Before a file is replaced, the one it replaces is kept as checkpoint.prev.safetensors.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from anymae.config import Config
from anymae.errors import TrainingDiverged, UserError
from anymae.tokens import spec_from_dict

FILENAME = "checkpoint.safetensors"
PREVIOUS = "checkpoint.prev.safetensors"
FORMAT = "anymae-checkpoint-3"
# Format 2 (before the guide layer became a Block) is read with its guide keys renamed; format 1 is refused.
GUIDE_KEYS_2 = {
    "norm_q": "block.norm",
    "norm_kv": "block.norm_memory",
    "q": "block.q",
    "kv": "block.kv",
    "proj": "block.proj",
    "norm_mlp": "block.norm_mlp",
    "mlp": "block.mlp",
}
SKIP_CHECKSUM = "ANYMAE_SKIP_CHECKSUM"  # environment variable: "1" skips the SHA-256 check on load
ADAMW_STATE = ("exp_avg", "exp_avg_sq", "step")  # what torch's AdamW keeps per parameter (no amsgrad)
RNG_BYTES = torch.Generator().get_state().numel()  # a CPU generator's state (Mersenne Twister)


@dataclass
class Checkpoint:
    config: Config
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict | None  # a torch optimizer state dict
    generators: dict[str, torch.Tensor]  # name -> generator state
    extra: dict  # JSON-able
    masking: dict[str, torch.Tensor] = field(default_factory=dict)  # a strategy's tensor state (per process)


class NonFiniteState(TrainingDiverged):
    """save_checkpoint refused to write weights or optimizer state holding NaN or inf."""


def digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 of the metadata (less the digest itself) and of each tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        h.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return h.hexdigest()


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def write_atomic(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    """Write to a temp file, fsync, keep the file it replaces as PREVIOUS, then rename over it.

    The previous file is hard-linked (an atomic rename of a link) before the rename, so at every
    moment `path` is a whole checkpoint, whatever instant a crash hits.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if path.exists() and path.name == FILENAME:
            keep = path.with_name(PREVIOUS + ".tmp")
            keep.unlink(missing_ok=True)
            try:
                os.link(path, keep)
            except OSError as error:  # a file system without hard links: a copy, synced before the rename
                if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                    raise
                shutil.copyfile(path, keep)
                with open(keep, "rb") as f:
                    os.fsync(f.fileno())
            os.replace(keep, path.with_name(PREVIOUS))
        os.replace(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except (OSError, SafetensorError) as error:  # safetensors reports a full disk as its own error
        tmp.unlink(missing_ok=True)
        reason = getattr(error, "strerror", None) or " ".join(str(error).split())[:200]
        raise UserError(f"cannot write {path}: {reason}; the checkpoint before it is unchanged") from None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write a checkpoint; refuses (NonFiniteState) weights or optimizer state that are not finite."""
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in checkpoint.model.items()}
    groups, listed = [], {}
    if checkpoint.optimizer is not None:
        for index, state in checkpoint.optimizer["state"].items():
            listed[str(index)] = sorted(state)
            for name, value in state.items():
                tensors[f"optim.{index}.{name}"] = value.detach().contiguous().cpu()
        groups = checkpoint.optimizer["param_groups"]
    bad = non_finite(tensors)
    if bad:
        raise NonFiniteState(f"non-finite values in {len(bad)} tensors ({', '.join(bad[:3])})")
    tensors.update({f"rng.{k}": v for k, v in checkpoint.generators.items()})
    tensors.update({f"masking.{k}": v.detach().contiguous().cpu() for k, v in checkpoint.masking.items()})
    metadata = {
        "format": FORMAT,
        "step": str(checkpoint.step),
        "config": json.dumps(checkpoint.config.to_dict()),
        "optimizer_groups": json.dumps(groups),
        "optimizer_state": json.dumps(listed if checkpoint.optimizer is not None else None),
        "extra": json.dumps(checkpoint.extra),
    }
    metadata["sha256"] = digest(tensors, metadata)
    write_atomic(tensors, metadata, Path(path))


def checkpoint_path(run: Path) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    run = Path(run)
    if run.is_dir() and run.name == FILENAME:  # a run folder named after the file: RUN/checkpoint.safetensors/
        raise UserError(f"{run} is a folder, not a checkpoint file; give the run folder above it ({run.parent})")
    return run / FILENAME if run.is_dir() else run


class Damaged(ValueError):
    """What is wrong with a checkpoint file (turned into a UserError naming the file)."""


def refusal(path: Path, problem: str) -> UserError:
    """One line naming the file and the problem; points at the previous checkpoint when that one is whole."""
    message = f"{path}: {problem}"
    previous = path.with_name(PREVIOUS)
    if path.name == FILENAME and previous.exists():
        try:
            step = read_checkpoint(previous, verify=True).step
        except (ValueError, UserError, *READ_ERRORS):
            message += f"; the previous checkpoint {previous} is damaged too"
        else:
            message += (
                f"; the previous checkpoint {previous} (step {step}) is whole: "
                f"to go on from it, `mv {previous} {path}` and resume"
            )
    return UserError(message)


READ_ERRORS = (SafetensorError, KeyError, OSError, json.JSONDecodeError, UnicodeDecodeError, TypeError)


def load_checkpoint(run: Path, verify: bool | None = None) -> Checkpoint:
    """Read and check a checkpoint; `verify` (default: unless $ANYMAE_SKIP_CHECKSUM=1) checks its SHA-256."""
    path = checkpoint_path(run)
    if not path.exists():
        raise UserError(f"no checkpoint at {path} (give the run folder written by `anymae pretrain --out`)")
    if verify is None:
        verify = os.environ.get(SKIP_CHECKSUM, "") not in ("1", "true", "yes")
    try:
        return read_checkpoint(path, verify)
    except Damaged as error:
        raise refusal(path, f"damaged checkpoint: {error}") from None
    except UserError:  # its own one line (a config value the checkpoint holds, named)
        raise
    except (SafetensorError, ValueError, *READ_ERRORS) as error:
        raise refusal(path, f"not a readable anymae checkpoint ({error})") from None


def read_checkpoint(path: Path, verify: bool) -> Checkpoint:
    """The checkpoint in `path`, its completeness checked; raises Damaged (or a reader's error)."""
    if path.is_dir():
        raise Damaged("a folder, not a checkpoint file")
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") not in (FORMAT, "anymae-checkpoint-2"):
        older = " (written by an older anymae, before checksums: retrain it)"
        raise Damaged(
            f"format is {metadata.get('format')!r}, expected {FORMAT!r}"
            + older * (metadata.get("format") == "anymae-checkpoint-1")
        )
    if verify and metadata.get("sha256") != digest(tensors, metadata):
        raise Damaged("its SHA-256 does not match its contents (the file was damaged or edited)")
    if metadata["format"] == "anymae-checkpoint-2":
        tensors = {guide_key_3(key): value for key, value in tensors.items()}
    try:
        step = int(metadata["step"])
    except ValueError:
        raise Damaged(f"step {metadata['step']!r} in its metadata is not a number") from None
    if step < 0:
        raise Damaged(f"step {step} in its metadata is negative")
    values = {key: json.loads(metadata[key]) for key in ("config", "optimizer_state", "optimizer_groups", "extra")}
    check_types(values)
    config = Config.from_dict(values["config"], source=f"{path} (config)")
    for key, value in tensors.items():
        if key.split(".", 1)[0] not in ("model", "optim", "rng", "masking"):
            raise Damaged(f"unexpected tensor {key!r}")
        if key.startswith("rng.") and (value.dtype != torch.uint8 or value.numel() != RNG_BYTES):
            raise Damaged(f"RNG state {key!r} has {value.numel()} {value.dtype} values, expected {RNG_BYTES} uint8")
    listed = values["optimizer_state"]
    optimizer = None
    if listed is not None:
        state: dict[int, dict] = {}
        for index, names in listed.items():
            for name in names:
                key = f"optim.{index}.{name}"
                if key not in tensors:
                    raise Damaged(f"optimizer tensor {key!r} is missing")
                state.setdefault(int(index), {})[name] = tensors[key]
        unlisted = [
            k for k in tensors if k.startswith("optim.") and k.split(".", 2)[2] not in listed.get(k.split(".")[1], [])
        ]
        if unlisted:
            raise Damaged(f"unexpected optimizer tensor {unlisted[0]!r}")
        optimizer = {"state": state, "param_groups": values["optimizer_groups"]}
    elif any(k.startswith("optim.") for k in tensors):
        raise Damaged("optimizer tensors in a checkpoint that says it has none")
    return Checkpoint(
        config=config,
        step=step,
        model={k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")},
        optimizer=optimizer,
        generators={k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")},
        extra=values["extra"],
        masking={k[len("masking.") :]: v for k, v in tensors.items() if k.startswith("masking.")},
    )


def guide_key_3(key: str) -> str:
    """A format-2 tensor name in format 3: the guide layer's parameters moved into its `block`."""
    parts = key.split(".")
    if parts[:2] == ["model", "guide"] and len(parts) > 3 and parts[2] in GUIDE_KEYS_2:
        return ".".join(["model", "guide", GUIDE_KEYS_2[parts[2]], *parts[3:]])
    return key


def check_types(values: dict) -> None:
    """The JSON parts of the metadata have the shapes the loader relies on."""
    listed, groups = values["optimizer_state"], values["optimizer_groups"]
    if not isinstance(values["config"], dict) or not isinstance(values["extra"], dict):
        raise Damaged("its config or extra metadata is not a mapping")
    if listed is not None and not (
        isinstance(listed, dict)
        and all(isinstance(v, list) and all(isinstance(n, str) for n in v) for v in listed.values())
    ):
        raise Damaged("its optimizer_state metadata is not a mapping of parameter to tensor names")
    if not (
        isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)
    ):
        raise Damaged("its optimizer_groups metadata is not a list of parameter groups")


def shape_problems(saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> list[str]:
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    wrong = [k for k in expected if k in saved and saved[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} {what} tensors missing ({', '.join(missing[:2])})")
    if extra:
        problems.append(f"{len(extra)} unexpected {what} tensors ({', '.join(extra[:2])})")
    for k in wrong[:2]:
        problems.append(f"{what} tensor {k} has shape {list(saved[k].shape)}, expected {list(expected[k].shape)}")
    return problems


def check_checkpoint(
    saved: Checkpoint,
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    generators: tuple[str, ...] = (),
) -> None:
    """Refuse (UserError naming the file) a checkpoint that does not fit the model built from its config or
    holds non-finite weights; with `optimizer`, also one without the optimizer state or the named RNG states."""
    path = checkpoint_path(path)
    problems = shape_problems(saved.model, model.state_dict(), "model")
    trained = saved_spec(saved)
    if problems and trained is not None and spec_words(trained) != spec_words(getattr(model, "spec", trained)):
        raise UserError(
            f"{path}: the run was trained on {spec_words(trained)}, and this data is {spec_words(model.spec)}; "
            "its encoder takes only data of the first kind (give --data of that kind, or pretrain on this data)"
        )
    if problems:
        raise refusal(path, "does not fit the model its config builds for this data: " + "; ".join(problems))
    bad = non_finite(saved.model)
    if bad:
        raise refusal(path, f"holds non-finite weights ({', '.join(bad[:3])}); it cannot be used")
    if optimizer is None:
        return
    if saved.optimizer is None:
        problems = ["no optimizer state"]
    else:
        problems = optimizer_problems(saved.optimizer, optimizer)
    problems += [f"RNG state {name!r} is missing" for name in generators if name not in saved.generators]
    if problems:
        raise refusal(path, "cannot be resumed exactly: " + "; ".join(problems))


def saved_spec(saved: Checkpoint):
    """The modality spec stored with the checkpoint, or None (older checkpoints, or unreadable)."""
    try:
        return spec_from_dict(saved.extra["spec"])
    except (KeyError, ValueError, TypeError):
        return None


def spec_words(spec) -> str:
    """A modality spec in words: 'images of 28x28 pixels in 4x4 patches (49 tokens)', 'a 13-feature table'."""
    kind = type(spec).__name__
    if kind == "ImagePatches":
        return (
            f"images of {spec.height}x{spec.width} pixels in {spec.patch}x{spec.patch} patches ({spec.max_tokens} "
            "tokens)"
        )
    if kind == "FeatureTokens":
        return f"a {len(spec.features)}-feature table"
    if kind == "SeriesPatches":
        return f"series of {spec.series_channels} channel(s) in patches of {spec.patch} steps"
    if kind == "ValueSet":
        return f"sets of elements with {spec.channels} values"
    return f"{spec.name} sequences of up to {spec.max_tokens} tokens"


def optimizer_problems(saved: dict, optimizer: torch.optim.Optimizer) -> list[str]:
    """AdamW's state per parameter: all of ADAMW_STATE, each moment shaped like its parameter."""
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    saved_sizes = [len(g["params"]) for g in saved["param_groups"]]
    if saved_sizes != sizes:
        return [f"optimizer groups hold {saved_sizes} parameters, expected {sizes}"]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    problems = []
    for index, state in sorted(saved["state"].items()):
        if not 0 <= index < len(params):
            problems.append(f"optimizer state for parameter {index}, of {len(params)}")
        elif set(state) != set(ADAMW_STATE):
            problems.append(f"optimizer state of parameter {index} holds {sorted(state)}, expected {list(ADAMW_STATE)}")
        elif any(state[name].shape != params[index].shape for name in ("exp_avg", "exp_avg_sq")):
            name = "exp_avg" if state["exp_avg"].shape != params[index].shape else "exp_avg_sq"
            shape, expected = list(state[name].shape), list(params[index].shape)
            problems.append(f"optimizer tensor {index}.{name} has shape {shape}, expected {expected}")
        elif state["step"].numel() != 1:
            problems.append(f"optimizer step of parameter {index} has {state['step'].numel()} values")
        if problems:
            break
    if not saved["state"]:
        problems.append("optimizer state is empty")
    return problems
