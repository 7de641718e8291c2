"""The command line end to end on `digits`, and clear errors (exit status 2) on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import load_dataset

TINY = ["model.dim=32", "model.depth=2", "model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=64"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    assert (
        main(
            [
                "pretrain",
                "--data",
                "digits",
                "--strategy",
                "random",
                "--steps",
                "6",
                "--seed",
                "1",
                "--out",
                str(out),
                *TINY,
            ]
        )
        == 0
    )
    return out


def test_pretrain_writes_checkpoint_config_and_metrics(run_dir):
    assert (run_dir / "checkpoint.safetensors").exists()
    config = (run_dir / "config.yaml").read_text()
    assert "seed: 1" in config and "steps: 6" in config and "dim: 32" in config
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 6 and np.isfinite(records[-1]["loss"]) and records[-1]["samples_per_s"] > 0
    # diagnostics: random masks hit every position about equally; held-out loss under random masks
    assert 0 < records[-1]["mask_freq_min"] <= 0.75 <= records[-1]["mask_freq_max"] < 1
    assert np.isfinite(records[-1]["val_loss_random_masks"])


def test_probe_reports_three_feature_sets(run_dir, capsys):
    assert main(["probe", "--checkpoint", str(run_dir), "--data", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("pretrained", "untrained", "raw"):
        for probe in ("linear", "knn"):
            assert 0.0 <= report[name][probe]["test"] <= 1.0
    assert report["raw"]["linear"]["test"] > 0.8  # digits are easy from pixels
    assert report["sizes"] == {"train": 1079, "val": 359, "test": 359}
    assert json.loads((run_dir / "probe.json").read_text()) == report


def test_embed_writes_one_row_per_sample(run_dir, tmp_path):
    out = tmp_path / "features.npy"
    assert main(["embed", "--checkpoint", str(run_dir), "--data", "digits", "--out", str(out)]) == 0
    features = np.load(out)
    assert features.shape == (1797, 32) and np.isfinite(features).all()
    assert main(["embed", "--checkpoint", str(run_dir), "--split", "test", "--out", str(out)]) == 0
    test_index = load_dataset(DataConfig(name="digits")).splits["test"]
    assert np.allclose(np.load(out), features[test_index], atol=1e-5)


def test_pretrain_on_a_users_npz_file(tmp_path):
    data = tmp_path / "images.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), y=rng.integers(0, 2, 40))
    assert main(["pretrain", "--data", str(data), "--steps", "2", "--out", str(tmp_path / "run"), *TINY]) == 0
    assert main(["embed", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "f.npy")]) == 0
    assert np.load(tmp_path / "f.npy").shape == (40, 32)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["pretrain", "--data", "no-such-data", "--out", "{tmp}/r"], "unknown dataset 'no-such-data'"),
        (["pretrain", "--data", "{tmp}/missing.npz", "--out", "{tmp}/r"], "unknown dataset"),
        (["pretrain", "--data", "{tmp}/notes.docx", "--out", "{tmp}/r"], "no reader for '.docx'"),
        (["pretrain", "--data", "{tmp}/broken.npz", "--out", "{tmp}/r"], "broken.npz: not a readable numpy file"),
        (["pretrain", "--data", "digits", "--out", "{tmp}/r", "model.size=3"], "unknown setting 'model.size'"),
        (["pretrain", "--data", "digits", "--out", "{tmp}/r", "train.lr=fast"], "train.lr must be a number"),
        (["pretrain", "--data", "digits", "--ratio", "uniform:0.9,0.1", "--out", "{tmp}/r"], "ratio"),
        (["pretrain", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/r"], "config file not found"),
        (["probe", "--checkpoint", "{tmp}/corrupt"], "not a readable anymae checkpoint"),
        (["probe", "--checkpoint", "{tmp}/nothing-here"], "no checkpoint"),
    ],
)
def test_bad_input_gives_one_clear_line_and_status_2(argv, message, tmp_path, capsys):
    (tmp_path / "notes.docx").write_text("hello\n")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "checkpoint.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    (tmp_path / "nothing-here").mkdir()
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_unknown_option_value_exits_2_via_the_console(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "anymae", "pretrain", "--strategy", "bogus", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "invalid choice: 'bogus'" in done.stderr and "Traceback" not in done.stderr


def test_every_command_has_help():
    for argv in (
        ["--help"],
        ["pretrain", "--help"],
        ["probe", "--help"],
        ["embed", "--help"],
        ["show", "--help"],
        ["data", "list", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0


def test_data_list_shows_the_builtin_datasets(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist" in out and "digits" in out and "BSD-3-Clause" in out and "ready" in out


def test_binary_tasks_can_be_scored_by_roc_auc():
    from anymae.evaluate import evaluate_features
    from anymae.metrics import METRICS

    rng = np.random.default_rng(0)
    y = {s: rng.integers(0, 2, n) for s, n in (("train", 200), ("val", 100), ("test", 100))}
    x = {s: (labels[:, None] + rng.normal(0, 1.0, (len(labels), 3))).astype(np.float32) for s, labels in y.items()}
    report = evaluate_features(METRICS["roc_auc"], x, y, k=10)
    assert 0.7 < report["linear"]["test"] <= 1.0 and 0.6 < report["knn"]["test"] <= 1.0
    noise = {s: rng.normal(0, 1.0, (len(labels), 3)) for s, labels in y.items()}
    assert abs(evaluate_features(METRICS["roc_auc"], noise, y, k=10)["linear"]["test"] - 0.5) < 0.15


@pytest.mark.parametrize(
    "argv,message",
    [
        (["show", "--checkpoint", "{run}", "--out", "{tmp}/m.png", "--samples", "0"], "--samples must be at least 1"),
        (["show", "--checkpoint", "{run}", "--out", "{tmp}/m.png", "--samples", "-3"], "--samples must be at least 1"),
        (["probe", "--checkpoint", "{run}", "probe.knn_k=0"], "probe.knn_k must be an integer >= 1"),
        (["probe", "--checkpoint", "{run}", "probe.max_train=0"], "probe.max_train must be an integer >= 1"),
        (["probe", "--checkpoint", "{run}", "probe.batch_size=0"], "probe.batch_size must be an integer >= 1"),
        (["probe", "--checkpoint", "{run}", "--on-bad-record", "skip", "probe.knn_k=x"], "probe.knn_k must be"),
        (["pretrain", "--out", "{run}", "--resume", "model.dim=64"], "drop the change to model.dim"),
        (["pretrain", "--out", "{run}", "--resume", "--data", "fashion-mnist"], "drop the change to data.name"),
        (["pretrain", "--out", "{run}", "--resume", "train.log_every=0"], "train.log_every must be an integer >= 1"),
    ],
)
def test_bad_settings_on_a_run_are_one_line(argv, message, run_dir, tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the settings were checked")

    monkeypatch.setattr("anymae.data.load_dataset", refuse)
    monkeypatch.setattr("anymae.train.load_dataset", refuse)
    before = (run_dir / "checkpoint.safetensors").read_bytes()
    assert main([a.replace("{run}", str(run_dir)).replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert (run_dir / "checkpoint.safetensors").read_bytes() == before
