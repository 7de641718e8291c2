"""The cases of "Nothing silently wrong, round three" (issue 17), in tables as tests/test_reader_cases.py.

Refused: the reader raises one UserError naming the file and the line, sample or field, and the CLI
exits 2 with that one line. Read: the data is checked against what the file holds. Then the runs
(resume on changed data, edited config.yaml, a full disk), `show`, the command line and the API.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import anymae
from anymae.checkpoint import load_checkpoint, save_checkpoint
from anymae.cli import main
from anymae.errors import UserError
from tests.test_reader_cases import DATA, TINY, cli_args, load, png, table_rows, write


def labelled_table(tmp, labels: list[str]):
    rows = table_rows(len(labels))
    text = [rows[0]] + [row.rsplit(",", 1)[0] + f",{label}" for row, label in zip(rows[1:], labels)]
    return write(tmp / "t.csv", "\n".join(text) + "\n")


def ts_with_label(tmp, label: str):
    lines = (DATA / "ItalyPowerDemand_head.ts").read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.lower().startswith("@data")) + 3
    lines[index] = lines[index].rsplit(":", 1)[0] + f":{label}\n"
    return write(tmp / "s.ts", "".join(lines)), index + 1


def images_npz(tmp, x: np.ndarray, **arrays):
    np.savez(tmp / "a.npz", x=x, **arrays)
    return tmp / "a.npz"


# refused: (id, make(tmp) -> (path, settings), fragments of the one-line message; the first names the file)


def words_among_number_labels(tmp):
    return labelled_table(tmp, ["1", "0", "cat", "1", "0", "1"]), {"label": "y"}


def inf_label(tmp):
    return labelled_table(tmp, ["1", "0", "inf", "1", "0", "1"]), {"label": "y"}


def nan_label_in_npz(tmp):
    y = np.array([0.0, 1.0, np.nan, 1.0])
    return images_npz(tmp, np.zeros((4, 8, 8), dtype=np.uint8), y=y), {}


def undeclared_ts_label(tmp):
    path, _ = ts_with_label(tmp, "3")  # @classLabel true 1 2
    return path, {}


def list_column_parquet(tmp):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0], "lst": [[1, 2], [3], [4, 5], []], "b": [0.5, 1.5, 2.5, 3.5]})
    pq.write_table(table, tmp / "t.parquet")
    return tmp / "t.parquet", {}


def scalar_x(tmp):
    return images_npz(tmp, np.array(5.0)), {}


def random_bytes_npy(tmp):
    return write(tmp / "a.npy", np.random.default_rng(0).bytes(300)), {}


def fifo(tmp):
    os.mkfifo(tmp / "t.txt")
    return tmp / "t.txt", {}


def binary_text_under_skip(tmp):
    return write(tmp / "t.txt", bytes(range(128, 256)) * 40), {"on_bad_record": "skip"}


def binary_csv_under_skip(tmp):
    return write(tmp / "t.csv", bytes(range(128, 256)) * 40), {"on_bad_record": "skip"}


def wide_integer_pixels(tmp):
    return images_npz(tmp, np.full((4, 8, 8), 70000, dtype=np.int64)), {}


def negative_integer_pixels(tmp):
    return images_npz(tmp, np.full((4, 8, 8), -1, dtype=np.int32)), {}


def float_pixels_of_0_255(tmp):
    return images_npz(tmp, np.random.default_rng(0).uniform(0, 255, (4, 8, 8))), {}


REFUSED = [
    ("words among number labels", words_among_number_labels, ["t.csv, line 4", "label 'cat' is a word"]),
    ("inf label", inf_label, ["t.csv, line 4", "label 'inf' is not a finite number"]),
    ("NaN label in .npz", nan_label_in_npz, ["a.npz, image 2", "label nan is not a finite number"]),
    ("undeclared .ts label", undeclared_ts_label, ["s.ts, line", "label '3' is not one of the classes", "1, 2"]),
    ("list column in Parquet", list_column_parquet, ["t.parquet", "column 'lst'", "list"]),
    (".npz x a scalar", scalar_x, ["a.npz", "field 'x' is a single number"]),
    ("random bytes as .npy", random_bytes_npy, ["a.npy", "not a readable numpy file", "numpy.save"]),
    ("a FIFO", fifo, ["t.txt", "not a regular file"]),
    ("binary text under skip", binary_text_under_skip, ["t.txt", "0 usable", "line 1, not UTF-8"]),
    ("binary CSV under skip", binary_csv_under_skip, ["t.csv", "no readable header line", "not UTF-8"]),
    ("integer pixels beyond 16 bits", wide_integer_pixels, ["a.npz", "0-65535", "70000"]),
    ("negative integer pixels", negative_integer_pixels, ["a.npz", "integer pixels must lie in 0-255"]),
    (
        "float pixels of 0-255",
        float_pixels_of_0_255,
        ["a.npz", "float pixels must lie in [0, 1]", "divide them by 255"],
    ),
]


@pytest.mark.parametrize("make,fragments", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_one_line_naming_the_place(make, fragments, tmp_path, capsys):
    path, settings = make(tmp_path)
    with pytest.raises(UserError) as error:
        load(path, **settings)
    for fragment in fragments:
        assert fragment in str(error.value)
    status = main(["pretrain", "--out", str(tmp_path / "run"), "--steps", "1", *cli_args(path, settings), *TINY])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err and fragments[0] in err


# read correctly: labels


@pytest.mark.parametrize(
    "labels,classes",
    [
        (["1", "1.0", "0", "0.0", "1", "0"], ["0", "1"]),
        (["-0", "0", "1", "1", "0", "-0"], ["0", "1"]),
        (["2", "10", "2.0", "10", "1", "1"], ["1", "2", "10"]),  # as numbers: 10 after 2
    ],
    ids=["1 and 1.0", "-0 and 0", "sorted as numbers"],
)
def test_numeric_labels_are_compared_as_numbers(labels, classes, tmp_path):
    dataset = load(labelled_table(tmp_path, labels), label="y")
    assert dataset.task == "classification" and dataset.notes["classes"] == classes
    names = [classes[i] for i in dataset.labels]
    assert names == [str(int(float(v))) for v in labels]


def test_bad_labels_are_skipped_and_counted(tmp_path):
    dataset = load(labelled_table(tmp_path, ["1", "0", "inf", "1", "cat", "0"]), label="y", on_bad_record="skip")
    assert dataset.notes["skipped_at"] == ["line 4", "line 6"] and dataset.labels.tolist() == [1, 0, 1, 0]
    path, _ = nan_label_in_npz(tmp_path)
    assert load(path, on_bad_record="skip").notes["skipped_at"] == ["image 2"]


def test_undeclared_ts_label_is_skipped_under_skip(tmp_path):
    path, line = ts_with_label(tmp_path, "3")
    whole = load(DATA / "ItalyPowerDemand_head.ts")
    dataset = load(path, on_bad_record="skip")
    assert dataset.notes["skipped_at"] == [f"line {line}"] and len(dataset) == len(whole) - 1
    assert dataset.notes["classes"] == ["1", "2"]


# read correctly: image folders, any size, one pixel rule


def test_the_class_is_the_first_folder_level(tmp_path):
    rng = np.random.default_rng(0)
    for top in ("x", "y"):
        for i in range(3):
            png(tmp_path / "imgs" / top / "sub" / f"{i}.png", rng.integers(0, 255, (8, 8), dtype=np.uint8))
    dataset = load(tmp_path / "imgs")
    assert dataset.notes["classes"] == ["x", "y"] and dataset.labels.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "size,patch,tokens",
    [((25, 25), 5, 25), ((30, 30), 2, 225), ((227, 227), 15, 256), ((1, 64), 1, 64), ((28, 28), 4, 49)],
    ids=["25x25", "30x30", "227x227", "1x64 strip", "28x28"],
)
def test_any_image_size_reads_and_round_trips(size, patch, tokens, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        png(tmp_path / "imgs" / f"{i}.png", rng.integers(0, 256, size, dtype=np.uint8))
    dataset = load(tmp_path / "imgs")
    assert (dataset.spec.patch, dataset.spec.max_tokens) == (patch, tokens)
    assert dataset.tokens.valid.all()  # padding fills part of the last patches only: no token is all padding
    pixels = np.stack(
        [np.asarray(__import__("PIL.Image").Image.open(f)) for f in sorted((tmp_path / "imgs").iterdir())]
    )
    assert np.array_equal(np.round(dataset.spec.to_images(dataset.tokens.inputs)[..., 0] * 255), pixels)


def test_a_folder_of_mixed_sizes_pads_the_smaller_images(tmp_path):
    from PIL import Image

    sizes = {"a.png": (8, 8), "b.png": (12, 16), "c.png": (4, 12)}  # (height, width)
    rng = np.random.default_rng(0)
    for name, size in sizes.items():
        png(tmp_path / "imgs" / name, rng.integers(1, 256, size, dtype=np.uint8))
    dataset = load(tmp_path / "imgs", patch=4)
    assert (dataset.spec.height, dataset.spec.width, dataset.spec.grid) == (12, 16, (3, 4))
    # tokens wholly in padding are invalid: 8x8 -> 2x2 patches, 12x16 -> all 12, 4x12 -> 1x3
    assert dataset.tokens.valid.sum(1).tolist() == [4, 12, 3]
    images = dataset.spec.to_images(dataset.tokens.inputs)[..., 0]
    for image, name in zip(images, sizes):
        truth = np.asarray(Image.open(tmp_path / "imgs" / name)) / 255.0
        h, w = truth.shape
        assert np.allclose(image[:h, :w], truth) and not image[h:].any() and not image[:, w:].any()


def test_padded_images_train_and_show(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(12):
        png(tmp_path / "imgs" / str(i % 2) / f"{i}.png", rng.integers(0, 256, (10, 10), dtype=np.uint8))
    run = tmp_path / "run"
    argv = ["pretrain", "--data", str(tmp_path / "imgs"), "--out", str(run), "--steps", "2", "data.patch=4", *TINY]
    assert main(argv) == 0
    assert main(["show", "--checkpoint", str(run), "--out", str(tmp_path / "m.png"), "--samples", "2"]) == 0


def test_one_rule_for_every_integer_dtype(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8))
    tokens = {}
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.uint64):
        (tmp_path / dtype.__name__).mkdir()
        np.savez(tmp_path / dtype.__name__ / "a.npz", x=pixels.astype(dtype))
        dataset = load(tmp_path / dtype.__name__ / "a.npz")
        tokens[dtype] = dataset.tokens.inputs
        assert dataset.spec.pixel_scale == 255.0
    assert all(np.array_equal(t, tokens[np.uint8]) for t in tokens.values())
    assert np.allclose(tokens[np.uint8].max(), pixels.max() / 255.0)
    np.savez(tmp_path / "deep.npz", x=(pixels * 257).astype(np.int64))  # 16-bit values: by 65535
    assert load(tmp_path / "deep.npz").spec.pixel_scale == 65535.0


# read correctly: text files


def test_rfc4180_quoted_newline_in_a_column_of_words_is_read(tmp_path):
    text = 'a,note,y\n1,"two\nlines",0\n2,short,1\n3,short,0\n4,"two\nlines",1\n'
    dataset = load(write(tmp_path / "t.csv", text), label="y")
    assert len(dataset) == 4 and dataset.notes["skipped"] == 0
    assert dataset.spec.features == ("a", "note=short", "note=two\nlines")


@pytest.mark.parametrize("suffix", [".txt", ".fasta"])
def test_cr_only_line_endings_read_as_lines(suffix, tmp_path):
    lines = ["hello world", "second line", "third one", "fourth line"]
    if suffix == ".fasta":
        lines = [">a", "MKVLA", "GG", ">b", "LLAKV", ">c", "MKKLV"]
    unix = load(write(tmp_path / f"unix{suffix}", "\n".join(lines) + "\n"))
    mac = load(write(tmp_path / f"mac{suffix}", "\r".join(lines) + "\r"))
    assert len(mac) == len(unix) and np.array_equal(mac.tokens.inputs, unix.tokens.inputs)


# runs: resume on changed data, an edited config.yaml, a full disk


def table_run(tmp_path, scale: float = 1.0):
    rows = table_rows(40)
    scaled = [rows[0]] + [
        ",".join(f"{float(v) * scale:.6g}" for v in row.split(",")[:-1]) + "," + row.rsplit(",", 1)[1]
        for row in rows[1:]
    ]
    return write(tmp_path / "t.csv", "\n".join(scaled) + "\n")


def pretrain(data, run, steps: int, *extra) -> int:
    return main(["pretrain", "--data", str(data), "--out", str(run), "--steps", str(steps), *TINY, *extra])


def test_resume_on_changed_values_is_refused(tmp_path, capsys):
    data, run = table_run(tmp_path), tmp_path / "run"
    assert pretrain(data, run, 1) == 0
    table_run(tmp_path, scale=1000.0)  # same rows and columns, every value times 1000: same tokens, other scales
    capsys.readouterr()
    assert pretrain(data, run, 2, "--resume") == 2
    err = capsys.readouterr().err
    assert err.count("anymae: error") == 1 and "--resume on changed data" in err and "values differ" in err
    table_run(tmp_path)  # the data as it was: the run goes on
    assert pretrain(data, run, 2, "--resume") == 0 and load_checkpoint(run).step == 2


def test_a_checkpoint_without_a_content_hash_still_resumes_and_says_so(tmp_path, capsys):
    data, run = table_run(tmp_path), tmp_path / "run"
    assert pretrain(data, run, 1) == 0
    saved = load_checkpoint(run)
    saved.extra["data"].pop("sha256")  # as written before content hashes
    save_checkpoint(run / "checkpoint.safetensors", saved)
    capsys.readouterr()
    assert pretrain(data, run, 2, "--resume") == 0
    assert "predates data content hashes" in capsys.readouterr().err
    assert "sha256" in load_checkpoint(run).extra["data"]  # the next checkpoint has it


def test_edits_to_config_yaml_are_read_on_resume(tmp_path, capsys):
    data, run = table_run(tmp_path), tmp_path / "run"
    assert pretrain(data, run, 1) == 0
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("steps: 1\n", "steps: 3\n"))
    assert main(["pretrain", "--out", str(run), "--resume"]) == 0
    assert load_checkpoint(run).step == 3
    (run / "config.yaml").write_text(config.replace("dim: 16\n", "dim: 32\n", 1))
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), "--resume", "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("anymae: error") == 1 and "config.yaml: model.dim was edited to 32" in err


def test_a_full_disk_is_one_line_and_keeps_the_checkpoint(tmp_path, capsys, monkeypatch):
    from safetensors import SafetensorError

    data, run = table_run(tmp_path), tmp_path / "run"
    assert pretrain(data, run, 1) == 0

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, message: "No space left on device" })')

    monkeypatch.setattr("anymae.checkpoint.save_file", full)
    capsys.readouterr()
    assert pretrain(data, run, 2, "--resume") == 2
    err = capsys.readouterr().err
    assert err.count("anymae: error") == 1 and "No space left on device" in err and "unchanged" in err
    assert load_checkpoint(run).step == 1 and not (run / "checkpoint.safetensors.tmp").exists()


def test_show_refuses_a_non_finite_reconstruction_loss(tmp_path, capsys):
    data, run = table_run(tmp_path), tmp_path / "run"
    assert pretrain(data, run, 1) == 0
    saved = load_checkpoint(run)
    for name, tensor in saved.model.items():
        if name.startswith(("decoder.", "head.")) and tensor.ndim == 2:
            saved.model[name] = tensor * 1e18  # finite weights whose outputs overflow
    save_checkpoint(run / "checkpoint.safetensors", saved)
    capsys.readouterr()
    assert main(["show", "--checkpoint", str(run), "--out", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reconstruction loss is not finite" in err


# the command line


def image_npz(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 8, 8), dtype=np.uint8)
    return images_npz(tmp_path, x, y=np.arange(12) % 2)


PLACES = [
    ("train.threads=100000", "train.threads must be 0 (torch's default) to this machine's"),
    ("train.steps=1e23", "train.steps must be at most 1,000,000,000"),
    ("train.steps=2000000000", "train.steps must be at most 1,000,000,000"),
    ("train.accumulate=1e9 train.steps=10", "train.accumulate must be at most 1,000,000,000 / train.steps"),
]


@pytest.mark.parametrize("override,fragment", PLACES, ids=[p[0] for p in PLACES])
def test_counts_have_upper_bounds(override, fragment, tmp_path, capsys):
    assert (
        main(["pretrain", "--data", str(image_npz(tmp_path)), "--out", str(tmp_path / "run"), *override.split()]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


@pytest.mark.parametrize(
    "recipe,fragment",
    [("train: 5\n", "section 'train' must hold settings"), ("model: [1, 2]\n", "section 'model' must hold settings")],
    ids=["scalar", "list"],
)
def test_a_yaml_section_that_is_not_a_mapping_is_named(recipe, fragment, tmp_path, capsys):
    path = write(tmp_path / "r.yaml", recipe)
    assert main(["pretrain", "--data", str(image_npz(tmp_path)), "--config", str(path), "--out", "x"]) == 2
    assert fragment in capsys.readouterr().err


def test_an_empty_yaml_section_is_no_settings(tmp_path):
    path = write(tmp_path / "r.yaml", "train:\nmodel:\n  dim: 16\n  heads: 2\n")
    from anymae.config import load_config

    assert load_config(path, []).model.dim == 16


def test_overrides_may_come_after_flags(tmp_path):
    run = tmp_path / "run"
    argv = ["pretrain", "model.dim=16", "--data", str(image_npz(tmp_path)), "model.heads=2", "--out", str(run)]
    assert main([*argv, "train.steps=1", "--steps", "1", *TINY[3:]]) == 0
    assert load_checkpoint(run).config.model.dim == 16
    with pytest.raises(SystemExit):
        main(["pretrain", "--data", "x", "--out", str(run), "--bogus"])


def test_empty_data_is_refused_not_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--data", "", "--out", "run", "--steps", "1"]) == 2
    assert "data.name" in capsys.readouterr().err


def test_a_checkpoint_of_another_modality_says_what_each_is(tmp_path, capsys):
    run = tmp_path / "run"
    assert pretrain(image_npz(tmp_path), run, 1, "data.patch=2") == 0
    capsys.readouterr()
    assert main(["probe", "--checkpoint", str(run), "--data", str(table_run(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "trained on images of 8x8 pixels in 2x2 patches (16 tokens), and this data is a 4-feature table" in err


def test_run_paths_that_name_the_checkpoint_file_or_a_lock_folder(tmp_path, capsys):
    data = image_npz(tmp_path)
    assert pretrain(data, tmp_path / "r" / "checkpoint.safetensors", 1) == 2
    assert "name the run folder, not its checkpoint.safetensors" in capsys.readouterr().err
    (tmp_path / "run" / ".anymae.lock").mkdir(parents=True)
    assert pretrain(data, tmp_path / "run", 1) == 2
    assert ".anymae.lock is a folder" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "run")
    assert pretrain(data, tmp_path / "run", 1) == 0
    (tmp_path / "run" / "checkpoint.safetensors.d").mkdir()
    nested = tmp_path / "nested" / "checkpoint.safetensors"
    nested.mkdir(parents=True)
    assert main(["probe", "--checkpoint", str(nested)]) == 2
    assert "is a folder, not a checkpoint file" in capsys.readouterr().err


# the Python API


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    small = {"model.dim": 16, "model.depth": 2, "model.heads": 2, "model.decoder_dim": 16, "train.steps": 1}
    small["model.decoder_heads"] = 2
    x = np.random.default_rng(0).integers(0, 256, (12, 8, 8), dtype=np.uint8)
    images = anymae.pretrain(images_npz(tmp, x), tmp / "images", {**small, "data.patch": 4})
    table = anymae.pretrain(table_run(tmp), tmp / "table", small)
    text = anymae.pretrain(DATA / "glosses.txt", tmp / "text", small)
    return {"images": images, "table": table, "text": text}


def test_user_error_is_a_value_error():
    assert issubclass(anymae.UserError, ValueError)


API_CASES = [
    (
        "float images in 0-255",
        "images",
        lambda: np.full((2, 8, 8), 200.0),
        ValueError,
        "float pixels must lie in [0, 1]",
    ),
    ("complex images", "images", lambda: np.zeros((2, 8, 8), dtype=complex), TypeError, "real numbers, got complex"),
    ("one 2-D image", "images", lambda: np.zeros((8, 8)), ValueError, "one image? pass x[None]"),
    ("uint16 beyond the run's 8 bits", "images", lambda: np.full((2, 8, 8), 300, np.uint16), ValueError, "1/255"),
    ("complex table", "table", lambda: np.zeros((2, 4), dtype=complex), TypeError, "real numbers"),
    (
        "all-NaN row",
        "table",
        lambda: np.array([[1.0, 2.0, 3.0, 0.0], [np.nan] * 4]),
        ValueError,
        "inputs[1]: no valid token",
    ),
    ("inf in a row", "table", lambda: np.array([[1.0, np.inf, 3.0, 0.0]]), ValueError, "inf at index (0, 1)"),
    ("empty string", "text", lambda: ["fine", ""], ValueError, "inputs[1]: no valid token"),
    ("empty path", "text", lambda: "", ValueError, "empty path"),
    ("no samples", "table", lambda: np.zeros((0, 4)), ValueError, "inputs is empty"),
    ("text for a table", "table", lambda: ["a", "b"], TypeError, "real numbers"),
]


@pytest.mark.parametrize("which,make,kind,fragment", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_inputs_are_checked_as_the_readers_check_files(which, make, kind, fragment, encoders):
    with pytest.raises(kind) as error:
        encoders[which].embed(make())
    assert isinstance(error.value, UserError) and fragment in str(error.value)


def test_api_batch_size_and_settings_are_named(encoders, tmp_path):
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        encoders["table"].embed(np.zeros((2, 4)), batch_size=0)
    with pytest.raises(TypeError, match="settings must be one of dict"):
        anymae.pretrain(DATA / "glosses.txt", tmp_path / "run", ["train.steps=2"])
    with pytest.raises(TypeError, match="out must be"):
        anymae.pretrain(DATA / "glosses.txt", None)


def test_api_images_follow_the_runs_pixel_scale(encoders):
    pixels = np.random.default_rng(1).integers(0, 256, (3, 8, 8))
    encoder = encoders["images"]
    assert encoder.spec.pixel_scale == 255.0
    as_int64 = encoder.embed(pixels.astype(np.int64))
    assert np.allclose(as_int64, encoder.embed(pixels.astype(np.uint8)), atol=1e-6)
    assert np.allclose(as_int64, encoder.embed(pixels / 255.0), atol=1e-6)
