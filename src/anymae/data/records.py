"""Strict record handling shared by the readers: bad records fail, or are skipped and counted."""

from __future__ import annotations

import bz2
import contextlib
import contextvars
import gzip
import io
import math
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
        self.first = ""  # the first bad record and its problem, for messages about the file as a whole

    def __call__(self, where: str, problem: str) -> None:
        """Record one bad record at `where` (e.g. 'line 12'); raises under the fail policy."""
        if self.policy == "fail":
            raise UserError(f"{self.path}, {where}: {problem} (use --on-bad-record skip to skip such records)")
        self.first = self.first or f"first: {where}, {problem}"
        self.places.append(where)

    def take(self, other: BadRecords, prefix: str = "") -> None:
        """Count another file's bad records as this one's, each place after `prefix` (shards read as one)."""
        self.places += [prefix + place for place in other.places]
        self.first = self.first or other.first.replace("first: ", f"first: {prefix}", 1)

    def summary(self) -> str:
        """'N bad' and the first one, for a file left with too few records."""
        return f"{self.count} bad" + (f"; {self.first}" if self.first else "")

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
    number, total, limit = 0, 0, max_file_bytes()
    with open_binary(path) as f:
        try:
            for raw in split_lines(f):
                number += 1
                total += len(raw)
                if len(raw) > MAX_LINE_BYTES:
                    raise UserError(
                        f"{path}, line {number}: longer than the limit of {MAX_LINE_BYTES // MIB} MiB for one line"
                    )
                if total > limit:
                    check_size(path, total)
                if number == 1:
                    if raw.startswith(UTF16_BOMS):
                        raise UserError(f"{path}: UTF-16 text; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8)")
                    raw = raw.removeprefix(b"\xef\xbb\xbf")
                yield number, raw.rstrip(b"\r\n")
        except (OSError, EOFError, zlib_error) as error:
            raise UserError(f"{path}, line {number + 1}: damaged or cut short ({brief(error)})") from None


def split_lines(f: io.BufferedIOBase) -> Iterator[bytes]:
    """The lines of a binary file, each with its line end. Lines end at LF or CR LF; a file whose first
    64 KiB hold CR but no LF ends its lines at CR (classic Mac OS). A line is cut after MAX_LINE_BYTES + 1
    bytes (the caller refuses it)."""
    head = f.peek(1 << 16)[: 1 << 16] if hasattr(f, "peek") else b""
    if not (b"\r" in head and b"\n" not in head):
        while raw := f.readline(MAX_LINE_BYTES + 1):
            yield raw
        return
    rest = b""
    while chunk := f.read(1 << 20):
        *lines, rest = (rest + chunk).split(b"\r")
        yield from (line + b"\r" for line in lines)
        if len(rest) > MAX_LINE_BYTES:
            yield rest
            return
    if rest:
        yield rest


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


def class_labels(values: list) -> tuple[np.ndarray, list[str]]:
    """Labels -> class ids 0..K-1 and the class names. Numbers are compared as numbers (1 and 1.0
    are one class, -0 and 0 too; whole numbers are named as integers), words as text, sorted."""
    numbers = [parse_number(v) for v in values]
    if values and all(n is not None for n in numbers):
        keys: list = numbers
        names = {n: str(int(n)) if n == int(n) else repr(n) for n in set(numbers)}
    else:
        keys = [str(v).strip() for v in values]
        names = {k: k for k in set(keys)}
    order = sorted(names)
    index = {key: i for i, key in enumerate(order)}
    return np.array([index[k] for k in keys], dtype=np.int64), [names[k] for k in order]


def label_problem(value) -> str:
    """What makes one label unusable ('' when it is fine): missing, or a number that is not finite."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "label is missing"
    number = parse_number(value)
    if number is not None and not math.isfinite(number):
        return f"label {value!r} is not a finite number"
    return ""


def odd_kind_labels(values: list) -> set[int]:
    """A label column holds numbers or words, not both: the indices of the minority kind (words
    among numbers, or numbers among words), each a bad record ('1"' beside 0 and 1 is no class)."""
    numeric = [parse_number(v) is not None or odd_number(v) for v in values]  # odd ones: labels_and_task
    minority = sum(numeric) * 2 > len(values)  # True: the words are the odd ones out
    return {i for i, is_number in enumerate(numeric) if is_number != minority}


def labels_and_task(values: list, where: str, task: str | None = None) -> tuple[np.ndarray, str, dict]:
    """Labels -> (y, task, notes). Unless `task` is given: numbers with more than 20 distinct
    values, or any non-integer number, are a regression target; anything else is a class label.
    Labels are finite (make_dataset skips or refuses the others)."""
    odd = next((v for v in values if odd_number(v)), None)
    if odd is not None:
        raise UserError(f"{where}: label {odd!r} is not a plain number (write 10, not 1_0)")
    if task == "classification":
        ids, names = class_labels(values)
        return ids, task, {"classes": names}
    numbers = [parse_number(v) for v in values]
    if any(n is None for n in numbers):
        numbers = None
    if task == "regression" and numbers is None:
        raise UserError(f"{where}: regression labels must be numbers")
    if numbers is not None:
        y = np.array(numbers, dtype=np.float64)
        if np.abs(y).max(initial=0.0) > np.finfo(np.float32).max:
            raise UserError(f"{where}: label {values[int(np.argmax(np.abs(y)))]!r} is too large for float32")
        if task == "regression" or len(set(numbers)) > 20 or not np.all(y == np.round(y)):
            return y.astype(np.float32), "regression", {}
    ids, names = class_labels(values)
    return ids, "classification", {"classes": names}
