"""Run folders that cannot be corrupted: one run at a time, checked before training, metrics that match the checkpoint.

A run holds an exclusive `fcntl.flock` on RUN/.anymae.lock while it trains. The kernel drops the
lock when the process ends, however it ends (SIGKILL included), so a lock left by a dead run never
blocks a resume, while a live one turns a second run away.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from anymae.checkpoint import FILENAME, PREVIOUS, Checkpoint, NonFiniteState, save_checkpoint
from anymae.errors import TrainingDiverged, UserError
from anymae.tokens import spec_to_dict

LOCK = ".anymae.lock"
METRICS = "metrics.jsonl"


def check_out(out: str | Path, flag: str = "--out") -> Path:
    """Refuse an empty output path (it would mean the current folder)."""
    if not str(out).strip():
        raise UserError(f"{flag} is empty; name a run folder, for example {flag} runs/first")
    if Path(out).name == FILENAME or Path(out).parent.name == FILENAME:
        raise UserError(f"{flag} {out}: name the run folder, not its {FILENAME} (for example {flag} runs/first)")
    return Path(out)


def content_hash(dataset) -> str:
    """SHA-256 of the tokens, their validity, the splits and the spec (its scales: a table whose values
    were all multiplied by 1000 standardises to the same tokens, but not to the same spec); for a
    token store, of the spec and the store's own fingerprint (so a run on a store resumes on that store)."""
    h = hashlib.sha256(json.dumps(spec_to_dict(dataset.spec), sort_keys=True, default=str).encode())
    prepared = (dataset.notes or {}).get("fingerprint")
    if prepared:  # a token store: the SHA-256 of its arrays taken when it was prepared (hashing every token
        h.update(f"store {prepared}".encode())  # of a large store at each start would read all of it)
        return h.hexdigest()
    for array in (dataset.tokens.inputs, dataset.tokens.valid, *dataset.splits.values()):
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype}{array.shape}".encode())
        h.update(array.reshape(-1).view(np.uint8))
    return h.hexdigest()


def data_fingerprint(dataset) -> dict:
    """What a resumed run must find again: sample count, split sizes, token layout and the content hash
    of its data (computed once per run: the run keeps the dict)."""
    return {
        "samples": len(dataset),
        "splits": {name: len(index) for name, index in dataset.splits.items()},
        "tokens": list(dataset.tokens.inputs.shape[1:]),
        "sha256": content_hash(dataset),
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
            if (self.path / LOCK).is_dir():
                raise UserError(f"{self.path / LOCK} is a folder; it must be the run's lock file: remove the folder")
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

    def resumed(self, saved: Checkpoint, fingerprint: dict) -> None:
        """Check a resumed run is on its own data (`fingerprint`: data_fingerprint of the data read now),
        and drop metric lines logged after its checkpoint. A checkpoint written before content hashes
        resumes on a check of the shapes alone, and says so."""
        expected = saved.extra.get("data")
        if isinstance(expected, dict):
            shape = {k: v for k, v in fingerprint.items() if k != "sha256"}
            if {k: v for k, v in expected.items() if k != "sha256"} != shape:
                raise UserError(
                    f"{self.checkpoint}: --resume on other data: the run was trained on {expected.get('samples')} "
                    f"samples {expected.get('tokens')}, this data has {shape['samples']} {shape['tokens']}"
                )
            if "sha256" not in expected:
                print(
                    f"anymae: note: {self.checkpoint} predates data content hashes; only the data's shape could be "
                    "checked (same samples, splits and tokens), not its values",
                    file=sys.stderr,
                )
            elif expected["sha256"] != fingerprint["sha256"]:
                raise UserError(
                    f"{self.checkpoint}: --resume on changed data: same shape ({shape['samples']} samples), but its "
                    "values differ from the data the run was trained on (content hash); restore that data or "
                    "start another --out"
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
