"""Progress of the long phases: in a log (stderr not a terminal) a line every few seconds and a closing
line; on a terminal a bar. The clock is set by the test, so nothing here depends on timing."""

from __future__ import annotations

import numpy as np

from anymae import progress
from anymae.config import ProbeConfig
from anymae.evaluate import probe_report
from anymae.progress import Counter
from tests.test_finetune import image_dataset, tiny_encoder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_log_gets_a_line_every_few_seconds_and_one_at_the_end(monkeypatch, capsys):
    clock = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    fits = Counter("fine-tuning on toy", "fits", total=6, every=10.0)
    for fit in range(6):
        fits.doing(f"seed {fit}")
        clock.now += 4.0
        fits.update(1)
    fits.close()
    assert capsys.readouterr().err.splitlines() == [
        "fine-tuning on toy: 3 of 6 fits (4.0 s each); seed 2",  # 12 s in: the first line after 10 s
        "fine-tuning on toy: 6 of 6 fits (4.0 s each); seed 5",
        "fine-tuning on toy: 6 fits in 24.0 s (4.0 s each)",
    ]
    read = Counter("reading x", "records", every=10.0)
    clock.now += 20.0
    read.update(5000)
    read.close()
    assert capsys.readouterr().err.splitlines() == [
        "reading x: 5,000 records (250/s)",
        "reading x: 5,000 records in 20.0 s (250/s)",
    ]


def test_the_probe_counts_the_samples_it_embeds(capsys):
    dataset = image_dataset()
    report = probe_report(tiny_encoder(dataset), dataset, ProbeConfig(max_train=50, max_eval=30))
    assert report["sizes"] == {"train": 50, "val": 30, "test": 30}
    embedded = 2 * (50 + 30 + 30)  # pretrained and untrained encoders
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("probe on toy")]
    assert len(lines) == 1 and lines[0].startswith(f"probe on toy: {embedded} samples embedded in "), lines
    assert np.isfinite(report["pretrained"]["linear"]["test"])
