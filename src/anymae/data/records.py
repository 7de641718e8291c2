"""Strict record handling shared by the readers: bad records fail, or are skipped and counted."""

from __future__ import annotations

import bz2
import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from zlib import error as zlib_error

import numpy as np

from anymae.errors import UserError

POLICIES = ("fail", "skip")


class BadRecords:
    """Collects bad records of one file. `fail`: the first one raises UserError naming file and
    line; `skip`: each is counted, and `report` prints one warning line with the count and the
    first few places (nothing is dropped silently)."""

    def __init__(self, path: Path | str, policy: str = "fail") -> None:
        if policy not in POLICIES:
            raise UserError(f"data.on_bad_record must be one of {', '.join(POLICIES)}, got '{policy}'")
        self.path, self.policy = path, policy
        self.places: list[str] = []

    def __call__(self, where: str, problem: str) -> None:
        """Record one bad record at `where` (e.g. 'line 12'); raises under the fail policy."""
        if self.policy == "fail":
            raise UserError(f"{self.path}, {where}: {problem} (use --on-bad-record skip to skip such records)")
        self.places.append(where)

    @property
    def count(self) -> int:
        return len(self.places)

    def report(self) -> dict:
        if self.places:
            first = ", ".join(self.places[:5]) + (", ..." if len(self.places) > 5 else "")
            print(f"anymae: warning: {self.path}: skipped {self.count} bad records ({first})", file=sys.stderr)
        return {"skipped": self.count, "skipped_at": self.places[:20]}


def open_binary(path: Path) -> io.BufferedIOBase:
    suffix = path.suffix.lower()
    opener = gzip.open if suffix == ".gz" else bz2.open if suffix == ".bz2" else open
    try:
        return opener(path, "rb")
    except OSError as error:
        raise UserError(f"{path}: cannot open ({error})") from None


def numbered_lines(path: Path, bad: BadRecords | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) for each line of a plain, .gz or .bz2 file.

    Each line is decoded as strict UTF-8: an undecodable line is a bad record (skippable when
    `bad` is given); a broken archive is always an error naming the line.
    """
    number = 0
    with open_binary(path) as f:
        try:
            for number, raw in enumerate(f, 1):  # noqa: B007 (number is read after the loop on error)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    if bad is None:
                        raise UserError(f"{path}, line {number}: not UTF-8 text ({error.reason})") from None
                    bad(f"line {number}", f"not UTF-8 text ({error.reason} at byte {error.start})")
                    continue
                yield number, text.rstrip("\r\n")
        except (OSError, EOFError, zlib_error) as error:
            raise UserError(f"{path}, line {number + 1}: damaged or cut short ({error})") from None


def class_labels(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """String labels -> class ids 0..K-1 (sorted names) and the names."""
    names = sorted(set(values))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in values], dtype=np.int64), names


def labels_and_task(values: list, where: str, task: str | None = None) -> tuple[np.ndarray, str, dict]:
    """Labels -> (y, task, notes). Unless `task` is given: numbers with more than 20 distinct
    values, or any non-integer number, are a regression target; anything else is a class label."""
    if task == "classification":
        ids, names = class_labels([str(v) for v in values])
        return ids, task, {"classes": names}
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            numbers = None
            break
    if task == "regression" and numbers is None:
        raise UserError(f"{where}: regression labels must be numbers")
    if numbers is not None:
        y = np.array(numbers, dtype=np.float64)
        if not np.isfinite(y).all():
            raise UserError(f"{where}: label {values[int(np.flatnonzero(~np.isfinite(y))[0])]!r} is not finite")
        if task == "regression" or len(set(numbers)) > 20 or not np.all(y == np.round(y)):
            return y.astype(np.float32), "regression", {}
    ids, names = class_labels([str(v) for v in values])
    return ids, "classification", {"classes": names}
