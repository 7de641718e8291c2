"""The scores a dataset is judged by: one `Metric` per name (a dataset's `metric`), holding its direction,
whether its labels are classes, and how it scores a network's outputs or a fitted scikit-learn model.

A new metric is one entry of `METRICS`; nothing else branches on a metric's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import accuracy_score, roc_auc_score

from anymae.errors import UserError


def rmse(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(predicted).reshape(-1) - y) ** 2)))


# What a metric reads: from network outputs (class logits, or one value per example) and from a fitted model.
FROM_OUTPUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "class": lambda outputs: outputs.argmax(1),
    "probability": lambda outputs: torch.from_numpy(outputs).softmax(1)[:, 1].numpy(),  # of class 1
    "value": lambda outputs: outputs.reshape(-1),
}
FROM_MODEL: dict[str, Callable[[object, np.ndarray], np.ndarray]] = {
    "class": lambda model, x: model.predict(x),  # type: ignore[attr-defined]
    "probability": lambda model, x: model.predict_proba(x)[:, 1],  # type: ignore[attr-defined]
    "value": lambda model, x: model.predict(x),  # type: ignore[attr-defined]
}


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    classifies: bool  # labels are classes (a classifier is fitted), not values (a regressor)
    reads: str  # a key of FROM_OUTPUTS / FROM_MODEL: what `score` compares with the labels
    score: Callable[[np.ndarray, np.ndarray], float]  # (labels, what it reads)

    def of_outputs(self, y: np.ndarray, outputs: np.ndarray) -> float:
        """The score of network outputs (N, classes) or (N, 1) against labels y."""
        return float(self.score(y, FROM_OUTPUTS[self.reads](outputs)))

    def of_model(self, model, x: np.ndarray, y: np.ndarray) -> float:
        """The score of a fitted scikit-learn model on (x, y)."""
        return float(self.score(y, FROM_MODEL[self.reads](model, x)))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


METRICS = {
    m.name: m
    for m in (
        Metric("accuracy", higher_is_better=True, classifies=True, reads="class", score=accuracy_score),
        Metric("roc_auc", higher_is_better=True, classifies=True, reads="probability", score=roc_auc_score),
        Metric("rmse", higher_is_better=False, classifies=False, reads="value", score=rmse),
    )
}


def metric_named(name: str, dataset: str, what: str) -> Metric:
    """The metric a dataset names; `what` (probe, fine-tuning, bench) says who cannot score another."""
    if name not in METRICS:
        raise UserError(f"dataset '{dataset}': {what} cannot score the metric '{name}' (known: {', '.join(METRICS)})")
    return METRICS[name]
