"""Strict record handling shared by the readers: bad records fail, or are skipped and counted."""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import gzip
import io
import os
import re
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


MIB = 1 << 20
MAX_LINE_BYTES = 16 * MIB  # one line (one record of text, or one FASTA sequence line)
MAX_FILE_BYTES = 2048 * MIB  # one file, after decompression; readers hold their data in memory
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def brief(error: BaseException | str, limit: int = 200) -> str:
    """A library's error message on one line, cut to `limit` characters (messages are one line)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


STREAMING = contextvars.ContextVar("streaming", default=False)


@contextlib.contextmanager
def streaming() -> Iterator[None]:
    """Lift the size limit of one file: a reader consumed in chunks (data/store.py) holds no file in memory."""
    token = STREAMING.set(True)
    try:
        yield
    finally:
        STREAMING.reset(token)


def max_file_bytes() -> int:
    """The size limit of one input file: MAX_FILE_BYTES, or $ANYMAE_MAX_FILE_BYTES when set (none while streaming)."""
    if STREAMING.get():
        return 1 << 62
    value = os.environ.get("ANYMAE_MAX_FILE_BYTES", "")
    if value:
        if not value.isdigit():
            raise UserError(f"ANYMAE_MAX_FILE_BYTES must be a number of bytes, got '{value}'")
        return int(value)
    return MAX_FILE_BYTES


def check_size(path: Path, size: int) -> None:
    """Refuse a file (or its decompressed contents) larger than the limit, before reading it."""
    limit = max_file_bytes()
    if size > limit:
        raise UserError(
            f"{path}: {size / MIB:,.0f} MiB is more than the limit of {limit / MIB:,.0f} MiB for one file "
            "(prepare a store from it, read in chunks: anymae data prepare FILE --out STORE; or raise "
            "ANYMAE_MAX_FILE_BYTES)"
        )


def open_binary(path: Path) -> io.BufferedIOBase:
    suffix = path.suffix.lower()
    opener = gzip.open if suffix == ".gz" else bz2.open if suffix == ".bz2" else open
    try:
        if opener is open:
            check_size(path, path.stat().st_size)
        return opener(path, "rb")
    except OSError as error:
        raise UserError(f"{path}: cannot open ({brief(error)})") from None


def raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line end) for each line of a plain, .gz or .bz2 file.

    Refused with an error naming the line: a broken archive, a line longer than MAX_LINE_BYTES,
    more than the file limit after decompression, and UTF-16 text (a byte-order mark). A UTF-8
    byte-order mark at the start is dropped.
    """
    number, total = 0, 0
    with open_binary(path) as f:
        try:
            while True:
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                total += len(raw)
                if len(raw) > MAX_LINE_BYTES:
                    raise UserError(
                        f"{path}, line {number}: longer than the limit of {MAX_LINE_BYTES // MIB} MiB for one line"
                    )
                if total > max_file_bytes():
                    check_size(path, total)
                if number == 1:
                    if raw.startswith(UTF16_BOMS):
                        raise UserError(f"{path}: UTF-16 text; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)")
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                yield number, raw.rstrip(b"\r\n")
        except (OSError, EOFError, zlib_error) as error:
            raise UserError(f"{path}, line {number + 1}: damaged or cut short ({brief(error)})") from None


def decode(raw: bytes) -> tuple[str | None, str]:
    """A line as strict UTF-8 text without NUL bytes, or (None, what is wrong)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text ({error.reason} at byte {error.start})"
    if "\x00" in text:
        return None, "contains NUL bytes (UTF-16 text? convert it to UTF-8)"
    return text, ""


def numbered_lines(path: Path, bad: BadRecords | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) for each line (see raw_lines).

    An undecodable line is a bad record (skippable when `bad` is given), else an error.
    """
    for number, raw in raw_lines(path):
        text, problem = decode(raw)
        if text is None:
            if bad is None:
                raise UserError(f"{path}, line {number}: {problem}")
            bad(f"line {number}", problem)
            continue
        yield number, text


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE | re.ASCII)


def parse_number(value) -> float | None:
    """A number written as a plain decimal (1, -2.5, .5, 1e-3, inf, nan), else None.

    Stricter than float(): '1_0' (which float reads as 10), '0x10' and padded spaces are not numbers.
    """
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        value = value.strip(" \t\r\n")
        return float(value) if NUMBER.fullmatch(value) else None
    return None


def odd_number(value) -> bool:
    """True for text that float() reads as a number but that is no plain decimal ('1_0', '٣')."""
    if not isinstance(value, str) or parse_number(value) is not None:
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def array_task(labels: np.ndarray | None) -> str | None:
    """Labels stored as an array: integers, booleans and strings are classes; floats are inferred
    (labels_and_task: a regression target unless they are few whole numbers)."""
    return "classification" if labels is not None and labels.dtype.kind in "biuU" else None


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
    odd = next((v for v in values if odd_number(v)), None)
    if odd is not None:
        raise UserError(f"{where}: label {odd!r} is not a plain number (write 10, not 1_0)")
    numbers = []
    for value in values:
        number = parse_number(value)
        if number is None:
            numbers = None
            break
        numbers.append(number)
    if task == "regression" and numbers is None:
        raise UserError(f"{where}: regression labels must be numbers")
    if numbers is not None:
        y = np.array(numbers, dtype=np.float64)
        if not np.isfinite(y).all():
            raise UserError(f"{where}: label {values[int(np.flatnonzero(~np.isfinite(y))[0])]!r} is not finite")
        if np.abs(y).max(initial=0.0) > np.finfo(np.float32).max:
            raise UserError(f"{where}: label {values[int(np.argmax(np.abs(y)))]!r} is too large for float32")
        if task == "regression" or len(set(numbers)) > 20 or not np.all(y == np.round(y)):
            return y.astype(np.float32), "regression", {}
    ids, names = class_labels([str(v) for v in values])
    return ids, "classification", {"classes": names}
