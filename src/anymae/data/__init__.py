"""Datasets: built-in real data and users' own files, as tokens with splits."""

from __future__ import annotations

from pathlib import Path

from anymae.config import DataConfig
from anymae.data.catalog import BUILTINS, load_builtin
from anymae.data.dataset import Dataset, random_splits
from anymae.data.files import load_file
from anymae.errors import UserError
from anymae.tokens import DnaSequence


def load_dataset(config: DataConfig) -> Dataset:
    """A built-in dataset by name, or a user's file by path."""
    if not config.name.strip():
        raise UserError("--data (data.name) is empty: name a built-in dataset or a file path")
    dataset = read_dataset(config)
    if config.kmer != 1 and not isinstance(dataset.spec, DnaSequence):
        raise UserError(f"data.kmer applies to DNA only; {config.name} is {dataset.spec.name} data")
    if (config.layer or config.normalise != "none") and "matrix" not in dataset.notes:
        raise UserError(f"data.layer and data.normalise apply to .h5ad files only, not to {config.name}")
    return dataset


def read_dataset(config: DataConfig) -> Dataset:
    """The dataset a name or path gives, before the checks of settings that fit one kind of data."""
    if config.name in BUILTINS:
        modality = BUILTINS[config.name].modality
        if config.modality and config.modality != modality:
            raise UserError(f"dataset '{config.name}' is {modality} data, not --modality {config.modality}")
        return load_builtin(config.name, config)
    path = Path(config.name)
    if path.exists():
        return load_file(path, config)
    raise UserError(
        f"unknown dataset '{config.name}': not a built-in name ({', '.join(BUILTINS)}) "
        "and no such file; `anymae data list` shows the built-in datasets"
    )


def absolute_name(name: str) -> str:
    """A path made absolute (so a run works from any folder); built-in names and unknown names as given."""
    empty = not name.strip()  # Path('') is the current folder: kept empty, to be refused
    return name if empty or name in BUILTINS or not Path(name).exists() else str(Path(name).resolve())


__all__ = ["BUILTINS", "Dataset", "absolute_name", "load_dataset", "random_splits"]
