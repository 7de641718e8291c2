"""Run folders that cannot be corrupted: one run at a time, checked before training, metrics that match the checkpoint.

A run holds an exclusive `fcntl.flock` on RUN/.anymae.lock while it trains. The kernel drops the
lock when the process ends, however it ends (SIGKILL included), so a lock left by a dead run never
blocks a resume, while a live one turns a second run away.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path

from anymae.checkpoint import FILENAME, PREVIOUS, Checkpoint, NonFiniteState, save_checkpoint
from anymae.errors import TrainingDiverged, UserError

LOCK = ".anymae.lock"
METRICS = "metrics.jsonl"


def check_out(out: str | Path, flag: str = "--out") -> Path:
    """Refuse an empty output path (it would mean the current folder)."""
    if not str(out).strip():
        raise UserError(f"{flag} is empty; name a run folder, for example {flag} runs/first")
    return Path(out)


def data_fingerprint(dataset) -> dict:
    """What a resumed run must find again: sample count, split sizes and token layout of its data."""
    return {
        "samples": len(dataset),
        "splits": {name: len(index) for name, index in dataset.splits.items()},
        "tokens": list(dataset.tokens.inputs.shape[1:]),
    }


class RunFolder:
    """The --out folder of a training run, locked for the life of the run (use as a context manager)."""

    def __init__(self, path: str | Path, writer: bool = True) -> None:
        """`writer=False`: a process of a torchrun run other than rank 0, which never locks or writes the folder."""
        self.path, self.writer = check_out(path), writer
        self.checkpoint = self.path / FILENAME
        self.kept: tuple[Path, int] | None = None  # the newest checkpoint known whole, and its step
        self.lock_file = None

    def open(self, resume: bool) -> RunFolder:
        """Create and lock the folder, check it is writable and holds what `resume` expects."""
        if not self.writer:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file, not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass
            self.lock_file = open(self.path / LOCK, "a+")
        except OSError as error:
            raise UserError(f"cannot write to the run folder {self.path}: {error.strerror or error}") from None
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock_file.seek(0)
            owner = (self.lock_file.read().split() or ["unknown"])[-1][:20]  # the pid the holder wrote
            self.close()
            raise UserError(
                f"{self.path} is in use by another anymae run (process {owner}); "
                "wait for it to end or choose another --out"
            ) from None
        self.lock_file.seek(0)
        self.lock_file.truncate()
        self.lock_file.write(f"{os.getpid()}\n")
        self.lock_file.flush()
        try:
            self.prepare(resume)
        except BaseException:
            self.close()
            raise
        return self

    def prepare(self, resume: bool) -> None:
        has_run = self.checkpoint.exists() or (self.path / PREVIOUS).exists()
        if not resume and has_run:
            raise UserError(f"{self.path} already holds a run; pass --resume to continue it or choose another --out")
        for name in (FILENAME + ".tmp", PREVIOUS + ".tmp"):  # left by a write that a crash cut short
            (self.path / name).unlink(missing_ok=True)
        if not resume:  # metrics of a run that died before its first checkpoint: start them afresh
            (self.path / METRICS).unlink(missing_ok=True)

    def close(self) -> None:
        if self.lock_file is not None:
            self.lock_file.close()  # closing the file releases the flock
            self.lock_file = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def resumed(self, saved: Checkpoint, dataset) -> None:
        """Check a resumed run is on its own data, and drop metric lines logged after its checkpoint."""
        expected = saved.extra.get("data")
        if expected is not None and expected != data_fingerprint(dataset):
            raise UserError(
                f"{self.checkpoint}: --resume on other data: the run was trained on {expected['samples']} samples "
                f"{expected['tokens']}, this data has {len(dataset)} {list(dataset.tokens.inputs.shape[1:])}"
            )
        self.kept = (self.checkpoint, saved.step)
        if self.writer:
            trim_metrics(self.path / METRICS, saved.step)

    def save(self, checkpoint: Checkpoint) -> None:
        """Write a checkpoint (a writer); non-finite weights stop the run instead of being saved."""
        try:
            if self.writer:
                save_checkpoint(self.checkpoint, checkpoint)
        except NonFiniteState as error:
            raise self.diverged(
                f"weights or optimizer state became non-finite at step {checkpoint.step}: {error}"
            ) from None
        self.kept = (self.checkpoint, checkpoint.step)

    def diverged(self, what: str) -> TrainingDiverged:
        """The stop message: what happened, and which checkpoint (if any) is kept."""
        if self.kept is None:
            kept = "no checkpoint was written"
        else:
            kept = f"the last good checkpoint, {self.kept[0]} (step {self.kept[1]}), is kept"
        return TrainingDiverged(f"{what}; stopped, {kept}. Try a lower train.lr or a higher train.warmup")


def trim_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint's step (they will be logged again),
    and a last line that a crash cut short."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("step", step + 1) <= step:
            kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)
