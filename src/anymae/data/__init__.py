"""Datasets: built-in real data, users' own files and prepared stores, as tokens with splits."""

from __future__ import annotations

from pathlib import Path

from anymae.data.catalog import BUILTINS
from anymae.data.corpus import load_dataset
from anymae.data.dataset import Dataset, random_splits


def absolute_name(name: str) -> str:
    """A path made absolute (so a run works from any folder); built-in names and unknown names as given."""
    return name if name in BUILTINS or not Path(name).exists() else str(Path(name).resolve())


__all__ = ["BUILTINS", "Dataset", "absolute_name", "load_dataset", "random_splits"]
