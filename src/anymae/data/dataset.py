"""A dataset as anymae sees it: tokens, optional labels, fixed splits, and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anymae.tokens import ModalitySpec, TokenArrays


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
