"""A dataset as anymae sees it: tokens, optional labels, fixed splits, and where it came from;
and `make_dataset`, the one ending every reader and loader shares."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from anymae.data.records import BadRecords, label_problem, labels_and_task, odd_kind_labels, parse_number
from anymae.errors import UserError
from anymae.tokens import ModalitySpec, TokenArrays

MIN_TOKENS = 2  # a sample needs one token to hide and one to see


@dataclass
class Dataset:
    name: str
    spec: ModalitySpec
    tokens: TokenArrays
    labels: np.ndarray | None  # (n,) class ids or regression targets; None when unlabelled
    splits: dict[str, np.ndarray]  # "train", "val", "test" -> sample indices
    task: str = "classification"  # "classification", "regression" or "none"
    metric: str = ""  # empty: the task's usual metric (accuracy, rmse, or none)
    source: str = ""
    license: str = ""
    notes: dict = field(default_factory=dict)
    ids: Sequence[str] | None = None  # one per sample, to join outputs back (FASTA header, line, row, file name)

    def __post_init__(self) -> None:
        if not self.metric:
            self.metric = {"classification": "accuracy", "regression": "rmse"}.get(self.task, "none")

    def __len__(self) -> int:
        return len(self.tokens)


def random_splits(n: int, seed: int, val: float = 0.2, test: float = 0.2) -> dict[str, np.ndarray]:
    """A fixed random train / val / test split of n samples."""
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = int(round(n * test)), int(round(n * val))
    return {
        "train": np.sort(order[n_test + n_val :]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "test": np.sort(order[:n_test]),
    }


Splits = dict[str, np.ndarray] | Callable[[np.ndarray], dict[str, np.ndarray]] | None


def make_dataset(
    spec: ModalitySpec,
    raw: Sequence,
    places: Sequence[str],
    bad: BadRecords,
    *,
    name: str,
    labels: Sequence | np.ndarray | None = None,
    task: str | None = None,
    splits: Splits = None,
    importance: Sequence | None = None,
    notes: dict | None = None,
    source: str = "",
    license: str = "",
    metric: str = "",
    min_tokens: int = MIN_TOKENS,
    ids: Sequence[str] | None = None,
) -> Dataset:
    """Tokenize `raw` (one sample per place), drop samples with fewer than 2 valid tokens as bad
    records, read labels (class names or regression targets) and split.

    `splits`: None = a fixed random 60/20/20 split (seed 0) of the kept samples; a dict of
    indices into `raw` (remapped to the kept samples); or a function from the kept indices
    into `raw` to splits of the kept samples (e.g. a scaffold split). `importance`: one
    per-token map per sample (the values of its tokens, or of all `spec.max_tokens` slots).
    `min_tokens`: 1 keeps single-token samples (published benchmarks with one-atom molecules);
    a dataset whose samples can never hold 2 tokens is always an error. `ids`: one per sample of
    `raw` (default: `places`), kept beside the samples kept.
    """
    if spec.max_tokens < MIN_TOKENS:
        hint = ": choose a smaller data.patch" if spec.grid is not None else " (one to hide, one to see)"
        raise UserError(f"{name}: each {spec.name} sample is {spec.max_tokens} token; masking needs at least 2{hint}")
    tokens = spec.tokenize(raw)
    counts = tokens.valid.sum(1)
    maps = None if importance is None else np.zeros(tokens.valid.shape, dtype=np.float32)
    odd_labels = set() if labels is None else odd_kind_labels([labels[i] for i in range(len(places))])
    keep = []
    for i, place in enumerate(places):
        if counts[i] < max(min_tokens, 1):
            bad(place, too_few(int(counts[i])))
            continue
        if maps is not None and not fill_map(maps[i], importance[i], int(counts[i]), place, bad):
            continue
        problem = "" if labels is None else label_problem(labels[i])
        if i in odd_labels and not problem:
            kind = "a word" if parse_number(labels[i]) is None else "a number"
            problem = f"label {labels[i]!r} is {kind}; the other labels are not (a label column holds one or the other)"
        if problem:
            bad(place, problem)
            continue
        keep.append(i)
    keep = np.array(keep, dtype=np.int64)
    if len(keep) < 2:
        raise UserError(f"{name}: fewer than 2 usable records ({len(keep)} usable, {bad.summary()}); at least 2 needed")
    report = bad.report()
    if len(keep) < len(tokens):
        tokens = TokenArrays(tokens.inputs[keep], tokens.valid[keep])
    tokens.importance = None if maps is None else maps[keep]
    y, found_task = None, "none"
    if labels is not None:
        y, found_task, extra = labels_and_task([labels[i] for i in keep], name, task)
        report.update(extra)
    notes = {**report, **(notes or {})}
    parts = split_kept(splits, keep, len(raw))
    if len(parts["train"]) == 0:
        raise UserError(
            f"{name}: the training split is empty ({len(keep)} usable records, "
            f"{len(parts['val'])} in val and {len(parts['test'])} in test); one batch needs at least 1 training "
            "record: add records (molecules: ones with other scaffolds)"
        )
    return Dataset(
        name=name,
        spec=spec,
        tokens=tokens,
        labels=y,
        splits=parts,
        task=found_task,
        metric=metric,
        source=source or name,
        license=license,
        notes=notes,
        ids=[(places if ids is None else ids)[i] for i in keep],
    )


def too_few(count: int) -> str:
    """What is wrong with a sample of `count` (< 2) valid tokens."""
    what = "no valid token" if count == 0 else "only 1 valid token"
    return f"has {what} (a sample needs at least {MIN_TOKENS}: one to hide, one to see)"


class Cuts:
    """Samples longer than data.max_tokens, which are cut there: counted (and the longest kept),
    so that no cut is silent."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens, self.count, self.longest = max_tokens, 0, 0

    def add(self, lengths: np.ndarray) -> None:
        """The lengths in tokens of samples before any cut."""
        lengths = np.asarray(lengths)
        self.count += int((lengths > self.max_tokens).sum())
        self.longest = max(self.longest, int(lengths.max(initial=0)))

    def report(self, name: str, total: int) -> dict:
        """A warning line on stderr when any sample was cut, and the note a dataset (and a store) keeps."""
        if self.count:
            print(
                f"anymae: warning: {name}: {self.count:,} of {total:,} samples are longer than data.max_tokens="
                f"{self.max_tokens} and were cut there (the longest has {self.longest:,} tokens)",
                file=sys.stderr,
            )
        return {"cut": {"max_tokens": self.max_tokens, "samples": self.count, "longest": self.longest}}


def split_kept(splits: Splits, keep: np.ndarray, n_raw: int) -> dict[str, np.ndarray]:
    if splits is None:
        return random_splits(len(keep), seed=0)
    if callable(splits):
        return splits(keep)
    position = np.full(n_raw, -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    return {part: np.sort(position[index][position[index] >= 0]) for part, index in splits.items()}


def fill_map(row: np.ndarray, values, n_valid: int, place: str, bad: BadRecords) -> bool:
    """Copy one sample's importance map into its token slots; a map of the wrong length or with
    NaN / inf is a bad record."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    size = len(row)
    if len(values) == size or (len(values) > size and n_valid == size):
        values = values[:size]
    elif len(values) != n_valid:
        bad(place, f"its importance map has {len(values)} values, the sample has {n_valid} tokens")
        return False
    if not np.isfinite(values).all() or np.abs(values).max(initial=0.0) > np.finfo(np.float32).max:
        bad(place, "its importance map has NaN, inf or values too large for float32")
        return False
    row[: len(values)] = values
    return True
