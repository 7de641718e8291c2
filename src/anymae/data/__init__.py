"""Datasets: built-in real data, users' own files and prepared stores, as tokens with splits."""

from __future__ import annotations

import glob
from pathlib import Path

from anymae.data.catalog import BUILTINS
from anymae.data.corpus import load_dataset
from anymae.data.dataset import Dataset, random_splits


def absolute_name(name: str) -> str:
    """A path or glob made absolute (so a run works from any folder); built-in and unknown names as given."""
    if not name.strip() or name in BUILTINS:  # Path('') is the current folder: kept empty, to be refused
        return name
    if Path(name).exists():
        return str(Path(name).resolve())
    return str(Path(name).absolute()) if glob.has_magic(name) else name


__all__ = ["BUILTINS", "Dataset", "absolute_name", "load_dataset", "random_splits"]
