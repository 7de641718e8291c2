"""Pictures and mask summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anymae import load_dataset
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


@pytest.fixture
def figures(monkeypatch):
    """The figures `anymae show` saves, by file name, kept open for inspection."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    saved = {}
    original = Figure.savefig

    def keep(self, path, *args, **kwargs):
        saved[Path(path).name] = self
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


@pytest.mark.parametrize("kind", ["text", "table", "series"])
def test_show_draws_values_reconstructions_captions_legends_and_curves(tmp_path, kind, figures):
    rng = np.random.default_rng(0)
    if kind == "text":
        data = tmp_path / "lines.txt"
        data.write_text("".join(f"sample number {i} says {'ab' * (i % 7)}\n" for i in range(60)))
    elif kind == "table":
        data = tmp_path / "table.csv"
        rows = "".join(",".join(f"{v:.3f}" for v in rng.normal(size=6)) + f",{i % 2}\n" for i in range(60))
        data.write_text("alpha,beta,gamma,delta,eps,zeta,y\n" + rows)
    else:
        data = tmp_path / "series.csv"
        data.write_text("".join(",".join(f"{np.sin(t / 3 + i):.3f}" for t in range(20)) + "\n" for i in range(60)))
    flags = ["--modality", "series"] if kind == "series" else ["--label", "y"] if kind == "table" else []
    run = tmp_path / "run"
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(data),
                *flags,
                "--steps",
                "2",
                "--out",
                str(run),
                *TINY,
                "train.batch_size=16",
                "train.log_every=1",
            ]
        )
        == 0
    )
    out = tmp_path / "masks.png"
    assert main(["show", "--checkpoint", str(run), "--out", str(out), "--samples", "4"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["samples"] == 12 and "masked_neighbour_share" not in summary  # no grid
    picture, curves = figures["masks.png"], figures["masks-curves.png"]
    ratio = {"text": "fixed:0.15", "table": "fixed:0.2", "series": "fixed:0.3"}[kind]
    for figure in (picture, curves):
        assert all(part in figure.get_suptitle() for part in ("random", ratio, "checkpoint step 2"))
    assert picture.legends and all(ax.get_legend() for ax in curves.axes)
    labels = [line.get_label() for line in curves.axes[0].get_lines()]
    assert labels == ["training loss (under the run's own masks)", "loss on a fixed held-out batch, random masks"]
    assert len(curves.axes[0].get_lines()[0].get_xdata()) == 2  # one point per logged step
    if kind == "text":  # each shown token once, and each masked one again as the predicted letter
        dataset = load_dataset(data)
        n = dataset.tokens.valid[dataset.splits["test"][:4]].sum(1)
        masked = np.clip(np.round(0.15 * n), 1, n - 1)
        assert len(texts(picture)) == int((n + masked).sum())
        assert any(h.get_label() == "predicted, wrong" for h in picture.legends[0].legend_handles)
    elif kind == "table":  # feature names label the tokens; each sample's values and reconstructions drawn
        names = [t.get_text() for t in picture.axes[-1].get_xticklabels()]
        assert names == ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
        assert len(picture.axes) == 5 and all(len(ax.get_lines()) >= 3 for ax in picture.axes[:4])
    else:  # each sample's curve: 20 steps in 5 tokens of 4
        truth = picture.axes[0].get_lines()[0]
        assert len(truth.get_xdata()) == 20
