"""Variable-size sets (e.g. particles in a jet) from `.npz`: `x` (total, C) holds every
element of every set, concatenated; `counts` (n,) the size of each set; `y` (n,) optional
labels. Elements are sorted by channel 0 descending (pT) and standardised per channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, random_splits
from anymae.data.records import BadRecords, labels_and_task
from anymae.errors import UserError
from anymae.tokens import ValueSet, fit_scale


def sets_dataset(
    name: str,
    sets: list[np.ndarray],
    labels: list | np.ndarray | None,
    config: DataConfig,
    notes: dict | None = None,
    task: str | None = "classification",
    source: str = "",
    license: str = "",
) -> Dataset:
    channels = sets[0].shape[1]
    mean, scale = fit_scale(np.concatenate(sets))
    spec = ValueSet(
        channels=channels, max_tokens=min(max(len(s) for s in sets), config.max_tokens), mean=mean, scale=scale
    )
    notes = dict(notes or {})
    y, found = None, "none"
    if labels is not None:
        y, found, extra = labels_and_task(list(labels), name, task)
        notes.update(extra)
    return Dataset(
        name=name,
        spec=spec,
        tokens=spec.tokenize(sets),
        labels=y,
        splits=random_splits(len(sets), seed=0),
        task=found,
        source=source or name,
        license=license,
        notes=notes,
    )


def load_set_arrays(path: Path, arrays: dict[str, np.ndarray], config: DataConfig) -> Dataset:
    x, counts = arrays.get("x"), arrays["counts"]
    if x is None or x.ndim != 2:
        raise UserError(f"{path}: field 'x' must be (all elements, C), got {getattr(x, 'shape', None)}")
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != len(x):
        raise UserError(f"{path}: field 'counts' must be set sizes that add up to len(x) = {len(x)}")
    labels = arrays.get("y")
    if labels is not None and labels.shape != counts.shape:
        raise UserError(f"{path}: field 'y' must hold one label per set ({len(counts)}), got shape {labels.shape}")
    bad = BadRecords(path, config.on_bad_record)
    sets, keep = [], []
    for i, part in enumerate(np.split(x.astype(np.float32), np.cumsum(counts)[:-1])):
        if len(part) == 0:
            bad(f"set {i}", "is empty")
        elif not np.isfinite(part).all():
            bad(f"set {i}", "has NaN or inf values")
        else:
            sets.append(part)
            keep.append(i)
    if len(sets) < 2:
        raise UserError(f"{path}: fewer than 2 usable sets ({bad.count} bad)")
    notes = bad.report()
    y = None if labels is None else labels[keep]
    return sets_dataset(path.name, sets, y, config, notes, source=str(path))
