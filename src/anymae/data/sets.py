"""Variable-size sets (e.g. particles in a jet) from `.npz`: `x` (total, C) holds every
element of every set, concatenated; `counts` (n,) the size of each set; `y` (n,) optional
labels. Elements are sorted by channel 0 descending (pT) and standardised per channel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, make_dataset
from anymae.data.records import BadRecords, array_task
from anymae.errors import UserError
from anymae.tokens import FLOAT32_MAX, ValueSet, fit_scale


def sets_dataset(
    sets: list[np.ndarray], places: list[str], bad: BadRecords, config: DataConfig, labels=None, **about
) -> Dataset:
    """Sets (each (k, C)) standardised per channel. `about`: name, source, license, metric, task."""
    channels = sets[0].shape[1]
    mean, scale = fit_scale(np.concatenate(sets))
    spec = ValueSet(
        channels=channels, max_tokens=min(max(len(s) for s in sets), config.max_tokens), mean=mean, scale=scale
    )
    return make_dataset(spec, sets, places, bad, labels=labels, **about)


def load_set_arrays(path: Path, arrays: dict[str, np.ndarray], config: DataConfig, label: str = "y") -> Dataset:
    x, counts = arrays.get("x"), arrays["counts"]
    if x is None or x.ndim != 2 or x.shape[1] < 1:
        raise UserError(f"{path}: field 'x' must be (all elements, C), got {getattr(x, 'shape', None)}")
    if x.dtype.kind not in "biuf":
        raise UserError(f"{path}: field 'x' must hold numbers, got {x.dtype} values")
    if counts.dtype.kind not in "iu" or counts.ndim != 1:
        raise UserError(f"{path}: field 'counts' must be a 1-D array of integers (set sizes), got {counts.dtype}")
    if (counts < 0).any() or counts.sum() != len(x):
        raise UserError(f"{path}: field 'counts' must be set sizes that add up to len(x) = {len(x)}")
    labels = arrays.get(label)
    if labels is not None and labels.shape != counts.shape:
        raise UserError(
            f"{path}: field '{label}' must hold one label per set ({len(counts)}), got shape {labels.shape}"
        )
    bad = BadRecords(path, config.on_bad_record)
    sets, keep, places = [], [], []
    for i, part in enumerate(np.split(x, np.cumsum(counts)[:-1])):
        if len(part) == 0:
            bad(f"set {i}", "is empty")
        elif not np.isfinite(part).all():
            bad(f"set {i}", "has NaN or inf values")
        elif np.abs(part).max() > FLOAT32_MAX:
            bad(f"set {i}", "has values beyond the float32 range")
        else:
            sets.append(part.astype(np.float32))
            keep.append(i)
            places.append(f"set {i}")
    if len(sets) < 2:
        raise UserError(f"{path}: fewer than 2 usable sets ({bad.count} bad)")
    y = None if labels is None else labels[keep].tolist()
    task = array_task(labels)
    return sets_dataset(sets, places, bad, config, labels=y, task=task, name=path.name, source=str(path))
