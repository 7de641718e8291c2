"""Pictures and mask summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anymae.cli import main
from anymae.show import masked_neighbour_share, mean_run_length, summarise
from tests.test_cli import TINY


def test_mean_run_length_counts_runs_of_masked_tokens():
    masked = np.array([[1, 1, 1, 0, 1, 0], [0, 1, 1, 0, 0, 0]], dtype=bool)
    assert mean_run_length(masked) == pytest.approx(6 / 3)


def test_masked_neighbour_share_on_a_grid():
    block = np.zeros((1, 16), dtype=bool)
    block[0, [0, 1, 4, 5]] = True  # a 2x2 block in a 4x4 grid
    scattered = np.zeros((1, 16), dtype=bool)
    scattered[0, [0, 2, 8, 10]] = True  # no two adjacent
    assert masked_neighbour_share(block, (4, 4)) == 1.0
    assert masked_neighbour_share(scattered, (4, 4)) == 0.0


def test_summary_reports_position_frequency_beside_random():
    valid = np.ones((4, 3), dtype=bool)
    masked = np.array([[1, 0, 0]] * 4, dtype=bool)
    random = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=bool)
    summary = summarise(masked, random, valid, None)
    assert summary["position_frequency"]["max"] == 1.0 and summary["position_frequency"]["min"] == 0.0
    assert summary["position_frequency"]["random_std"] < summary["position_frequency"]["std"]


@pytest.mark.parametrize("strategy", ["sma", "random"])
def test_show_draws_a_png_and_writes_the_summary(tmp_path, strategy, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "--data", "digits", "--strategy", strategy, "--steps", "3", "--out", str(run), *TINY]) == 0
    out = tmp_path / "masks.png"
    assert main(["show", "--checkpoint", str(run), "--out", str(out), "--samples", "3"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["strategy"] == strategy and summary["samples"] == 359
    assert summary["loss_own_masks"] > 0 and summary["loss_random_masks"] > 0
    if strategy == "random":  # the same kind of masks, drawn twice: similar losses
        assert abs(summary["loss_own_masks"] - summary["loss_random_masks"]) < 0.25 * summary["loss_random_masks"]
    assert (
        0 <= summary["masked_neighbour_share"] <= 1
        and "masked tokens with a masked neighbour" in capsys.readouterr().out
    )


@pytest.mark.parametrize("kind", ["text", "table"])
def test_show_draws_strips_for_sequences_and_a_heat_map_for_features(tmp_path, kind):
    rng = np.random.default_rng(0)
    if kind == "text":
        data = tmp_path / "lines.txt"
        data.write_text("".join(f"sample number {i} says {'ab' * (i % 7)}\n" for i in range(60)))
    else:
        data = tmp_path / "table.csv"
        rows = "".join(",".join(f"{v:.3f}" for v in rng.normal(size=6)) + f",{i % 2}\n" for i in range(60))
        data.write_text("a,b,c,d,e,f,y\n" + rows)
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(data), "--steps", "2", "--out", str(run), *TINY, "train.batch_size=16"]) == 0
    out = tmp_path / "masks.png"
    assert main(["show", "--checkpoint", str(run), "--out", str(out), "--samples", "4"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["samples"] == 12 and "masked_neighbour_share" not in summary  # no grid
