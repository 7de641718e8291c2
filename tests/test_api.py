"""The Python API: the README example, loading from the checkpoint alone, raw inputs, absolute data paths."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import anymae
from anymae.checkpoint import load_checkpoint, save_checkpoint
from anymae.cli import main
from anymae.errors import UserError
from anymae.tokens import ByteSequence, ImagePatches, spec_from_dict, spec_to_dict
from tests.test_cli import TINY
from tests.test_specs import CASES

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"model.dim": 32, "model.depth": 2, "model.decoder_dim": 32, "model.decoder_depth": 1, "train.batch_size": 32}


def readme_example() -> str:
    """The first python code block of the README's 'Python API' section."""
    section = ROOT.joinpath("README.md").read_text().split("### Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_import_is_light():
    code = "import sys, anymae; print('torch' in sys.modules, callable(anymae.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_the_readme_example_runs_and_its_run_is_usable_from_another_folder(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    assert namespace["features"].shape == (569, 32) and namespace["encoder"].step == 50
    assert "(569, 32) after 50 steps" in capsys.readouterr().out
    monkeypatch.chdir(second)  # the same run, used from elsewhere, gives the same features
    encoder = anymae.load(first / "runs" / "bc")
    assert np.array_equal(encoder.embed(namespace["rows"]), namespace["features"])
    assert main(["embed", "--checkpoint", str(first / "runs" / "bc"), "--out", "f.npy"]) == 0
    assert np.load(second / "f.npy").shape == (569, 32)


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)) * [1, 10, 100, 0.1] + [0, 5, -50, 1]
    x[3, 2] = np.nan
    cells = [",".join("" if np.isnan(v) else f"{v:.4f}" for v in row) for row in x]
    lines = ["a,b,c,d,y"] + [f"{c},{i % 2}" for i, c in enumerate(cells)]
    (folder / "t.csv").write_text("\n".join(lines) + "\n")
    encoder = anymae.pretrain(folder / "t.csv", folder / "run", {**SMALL, "train.steps": 2, "data.label": "y"})
    return folder, encoder, np.round(x, 4)


def test_a_file_and_an_array_give_the_same_features(table_run, tmp_path):
    folder, encoder, x = table_run
    from_array = encoder.embed(x)
    assert from_array.shape == (60, 32) and np.isfinite(from_array).all()
    # another file: columns in another order, the label column left out, its own mean and spread
    cell = [["" if np.isnan(v) else f"{v:.4f}" for v in row] for row in x]
    lines = ["d,y,b,a,c"] + [f"{c[3]},1,{c[1]},{c[0]},{c[2]}" for c in cell]
    (tmp_path / "other.csv").write_text("\n".join(lines) + "\n")
    assert np.allclose(encoder.embed(tmp_path / "other.csv", label="y"), from_array, atol=1e-4)
    assert np.allclose(encoder.embed(x[:5]), from_array[:5], atol=1e-6)  # a sample's features do not depend on others


def test_raw_inputs_that_do_not_fit_are_one_clear_error(table_run, tmp_path):
    _, encoder, x = table_run
    with pytest.raises(UserError, match="expected rows of 4 features"):
        encoder.embed(x[:, :3])
    with pytest.raises(UserError, match="pass a list of strings"):
        encoder.embed("no such text.csv")
    (tmp_path / "few.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(UserError, match="no feature c, d"):
        encoder.embed(tmp_path / "few.csv")


def test_strings_from_a_list_and_from_a_file_agree(tmp_path):
    lines = [f"MKTAYIAKQR{'ACDEFG'[: i % 6]}" for i in range(30)]
    (tmp_path / "p.txt").write_text("\n".join(lines) + "\n")
    settings = {**SMALL, "train.steps": 2, "data.modality": "protein"}
    encoder = anymae.pretrain(tmp_path / "p.txt", tmp_path / "run", settings)
    assert np.allclose(encoder.embed(lines), encoder.embed(tmp_path / "p.txt"), atol=1e-6)
    assert np.allclose(encoder.embed(["mktayiakqr*"]), encoder.embed(["MKTAYIAKQR"]))  # as the readers clean them
    with pytest.raises(UserError, match=r"inputs\[1\]: letter 'J'"):
        encoder.embed(["MKT", "MJT"])
    with pytest.raises(UserError, match="protein strings"):
        encoder.embed(np.zeros((2, 3)))


def strip_spec(run: Path) -> None:
    """Rewrite a checkpoint as one written before the spec was stored."""
    saved = load_checkpoint(run)
    del saved.extra["spec"]
    save_checkpoint(run / "checkpoint.safetensors", saved)


def test_older_checkpoints_fall_back_to_the_data_or_say_why_not(tmp_path, table_run):
    folder, encoder, x = table_run
    strip_spec(folder / "run")
    assert np.array_equal(anymae.load(folder / "run").embed(x), encoder.embed(x))  # rebuilt from t.csv
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "checkpoint.safetensors").write_bytes((folder / "run" / "checkpoint.safetensors").read_bytes())
    config = yaml.safe_load((folder / "run" / "config.yaml").read_text())
    (folder / "t.csv").rename(folder / "moved.csv")
    try:
        with pytest.raises(UserError, match="predates stored modality specs.*unknown dataset"):
            anymae.load(copy)
    finally:
        (folder / "moved.csv").rename(folder / "t.csv")
    assert Path(config["data"]["name"]).is_absolute()


def test_a_relative_data_path_is_recorded_as_absolute_and_works_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    Path("lines.txt").write_text("".join(f"sample {i} {'xy' * (i % 5)}\n" for i in range(40)))
    assert main(["pretrain", "--data", "lines.txt", "--steps", "2", "--out", "run", *TINY]) == 0
    recorded = yaml.safe_load(Path("run/config.yaml").read_text())["data"]["name"]
    assert recorded == str(tmp_path / "a" / "lines.txt")
    resume = ["pretrain", "--data", "lines.txt", "--steps", "3", "--out", "run", "--resume", *TINY]
    assert main(resume) == 0  # the same relative path is the same data
    monkeypatch.chdir(tmp_path / "b")
    assert main(["embed", "--checkpoint", str(tmp_path / "a" / "run"), "--out", "f.npy"]) == 0
    assert np.load("f.npy").shape == (40, 32)
    assert main(["pretrain", "--data", "digits", "--steps", "1", "--out", "d", *TINY]) == 0
    assert yaml.safe_load(Path("d/config.yaml").read_text())["data"]["name"] == "digits"  # a built-in name stays


SPECS = {name: spec for name, (spec, _) in CASES.items()}
SPECS.update(image=ImagePatches(8, 8, 3, 2), text=ByteSequence(9))


@pytest.mark.parametrize("name", list(SPECS))
def test_every_spec_survives_the_checkpoint_metadata(name):
    spec = SPECS[name]
    again = spec_from_dict(json.loads(json.dumps(spec_to_dict(spec))))
    assert again == spec and type(again) is type(spec)


def test_series_from_a_ts_file_and_from_arrays_agree(tmp_path):
    from anymae.data.records import BadRecords
    from anymae.data.series import read_ts

    path = ROOT / "tests" / "data" / "ItalyPowerDemand_head.ts"
    encoder = anymae.pretrain(path, tmp_path / "run", {**SMALL, "train.steps": 2, "train.batch_size": 8})
    series, _, _ = read_ts(path, BadRecords(path))
    from_file = encoder.embed(path)
    assert from_file.shape == (len(series), 32)
    assert np.allclose(encoder.embed(np.stack([s[:, 0] for s in series])), from_file, atol=1e-6)
    assert np.allclose(encoder.embed(series[:3]), from_file[:3], atol=1e-6)


def test_images_as_integers_or_floats_give_the_same_features(tmp_path):
    encoder = anymae.pretrain("digits", tmp_path / "run", {**SMALL, "train.steps": 1})
    pixels = np.random.default_rng(0).integers(0, 17, size=(5, 8, 8), dtype=np.uint8)  # digits: 0-16
    assert encoder.spec.pixel_scale == 16.0  # the run's scale, recorded with it
    assert np.allclose(encoder.embed(pixels), encoder.embed(pixels / 16.0), atol=1e-6)
    with pytest.raises(UserError, match="scaled by 1/16"):
        encoder.embed(pixels * 15)
    with pytest.raises(UserError, match="expected images of 8x8x1"):
        encoder.embed(np.zeros((2, 9, 9)))
