from __future__ import annotations

import torch

from anymae.config import DataConfig, MaskingConfig
from anymae.data import load_dataset
from anymae.diagnostics import MaskDiagnostics
from tests.conftest import tiny_model


def test_position_frequency_spread_shows_a_mask_stuck_on_positions():
    dataset = load_dataset(DataConfig(name="digits"))
    diagnostics = MaskDiagnostics(dataset, MaskingConfig(), torch.device("cpu"), batch_size=8)
    n = dataset.spec.max_tokens
    valid = torch.ones(10, n, dtype=torch.bool)
    stuck = torch.zeros(10, n, dtype=torch.bool)
    stuck[:, :4] = True  # always the same four positions
    diagnostics.observe(stuck, valid)
    model = tiny_model()
    model.spec = dataset.spec
    report = diagnostics.report(model.__class__(dataset.spec, model.config))
    assert report["mask_freq_min"] == 0.0 and report["mask_freq_max"] == 1.0
    assert report["mask_freq_std"] > 0.4 and torch.isfinite(torch.tensor(report["val_loss_random_masks"]))
    assert diagnostics.masked.sum() == 0  # the window starts afresh
