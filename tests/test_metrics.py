"""One Metric per name: direction, classes or values, and the same score from outputs and from a model."""

from __future__ import annotations

import numpy as np
import pytest

from anymae.errors import UserError
from anymae.metrics import METRICS, metric_named


class Fixed:
    """A 'fitted model' that predicts given values and probabilities."""

    def __init__(self, predicted: np.ndarray, probability: np.ndarray | None = None) -> None:
        self.predicted, self.probability = predicted, probability

    def predict(self, x):
        return self.predicted

    def predict_proba(self, x):
        return np.stack([1 - self.probability, self.probability], 1)


def test_each_metric_scores_outputs_and_models_alike():
    y = np.array([0, 1, 1, 0, 1])
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0], [-1.0, 1.0]])
    accuracy, auc = METRICS["accuracy"], METRICS["roc_auc"]
    assert accuracy.of_outputs(y, logits) == 0.6  # rows 0, 1, 4 right
    assert accuracy.of_model(Fixed(logits.argmax(1)), None, y) == 0.6
    p = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    assert auc.of_outputs(y, logits) == pytest.approx(auc.of_model(Fixed(None, p), None, y))
    assert auc.of_outputs(y, logits) == pytest.approx(3 / 6)  # 3 of the 6 (positive, negative) pairs in order
    values = np.array([1.0, 2.0, 4.0])
    rmse = METRICS["rmse"]
    assert rmse.of_outputs(values, (values + [0.0, 0.0, 3.0])[:, None]) == pytest.approx(np.sqrt(3.0))
    assert rmse.of_model(Fixed(values + 1), None, values) == pytest.approx(1.0)


def test_direction_and_kind():
    assert [m.classifies for m in METRICS.values()] == [True, True, False]
    assert METRICS["accuracy"].better(0.9, 0.8) and not METRICS["accuracy"].better(0.8, 0.8)
    assert METRICS["rmse"].better(0.1, 0.2) and not METRICS["rmse"].better(0.2, 0.1)


def test_an_unknown_metric_is_one_clear_error():
    with pytest.raises(UserError, match="dataset 'x': the probe cannot score the metric 'none'"):
        metric_named("none", "x", "the probe")
