"""Every odd or hostile data case of the Reliability issue, and more, in one table.

Each case makes a file and either refuses it (the CLI exits 2 with one line on stderr naming
the file and the line or field) or reads it correctly (checked against what the file holds).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import load_dataset
from anymae.errors import UserError

DATA = Path(__file__).parent / "data"
TINY = [
    "model.dim=16",
    "model.depth=2",
    "model.heads=2",
    "model.decoder_dim=16",
    "model.decoder_depth=1",
    "model.decoder_heads=2",
    "train.batch_size=4",
]


def load(path: Path, **settings):
    return load_dataset(DataConfig(name=str(path), **settings))


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def table_rows(n: int = 40, columns: int = 3) -> list[str]:
    rng = np.random.default_rng(0)
    header = ",".join([f"f{i}" for i in range(columns)] + ["y"])
    return [header] + [",".join(f"{v:.3f}" for v in rng.normal(size=columns)) + f",{i % 2}" for i in range(n)]


def png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(path)


def image_folder(tmp: Path, size=(8, 8), n: int = 4, dtype=np.uint8) -> Path:
    rng = np.random.default_rng(0)
    top = 65535 if dtype == np.uint16 else 255
    for i in range(n):
        png(tmp / "imgs" / str(i % 2) / f"{i}.png", rng.integers(0, top, size, dtype=dtype))
    return tmp / "imgs"


# refused: (id, make(tmp) -> (path, settings), fragments of the one-line message)


def stray_quote(tmp):
    rows = table_rows()
    rows[6] = '"' + rows[6]  # line 7 opens a quote that closes 35 lines further down
    rows[41 - 1] = rows[41 - 1] + '"'
    return write(tmp / "t.csv", "\n".join(rows) + "\n"), {"label": "y"}


def utf16(tmp):
    return write(tmp / "t.txt", "first line\nsecond line\n".encode("utf-16")), {}


def utf16_csv(tmp):
    return write(tmp / "t.csv", "\n".join(table_rows(5)).encode("utf-16")), {}


def underscore_label(tmp):
    return write(tmp / "t.csv", "a,b,y\n1,2,1_0\n3,4,2.5\n5,6,3.5\n"), {"label": "y"}


def underscore_value(tmp):
    return write(tmp / "t.csv", "a,b,y\n1,2_0,1\n3,4,0\n5,6,1\n"), {"label": "y"}


def label_image_folder(tmp):
    return image_folder(tmp), {"label": "kind"}


def label_ts(tmp):
    return shutil.copy(DATA / "ItalyPowerDemand_head.ts", tmp / "s.ts"), {"label": "y"}


def label_npz_missing(tmp):
    np.savez(tmp / "a.npz", x=np.zeros((4, 8, 8), dtype=np.uint8), y=np.arange(4))
    return tmp / "a.npz", {"label": "kind"}


def one_pixel_images(tmp):
    np.savez(tmp / "a.npz", x=np.zeros((10, 1, 1), dtype=np.uint8))
    return tmp / "a.npz", {}


def one_char_lines(tmp):
    return write(tmp / "t.txt", "a\nb\nc\nd\n"), {}


def one_column_table(tmp):
    return write(tmp / "t.csv", "a\n1\n2\n3\n4\n"), {"modality": "tabular"}


def patch_is_image(tmp):
    return image_folder(tmp), {"patch": 8}


def patch_sixteen(tmp):
    return image_folder(tmp), {"patch": 16}


def patch_negative(tmp):
    return image_folder(tmp), {"patch": -2}


def huge_npz_values(tmp):
    x = np.random.default_rng(0).normal(size=(10, 4))
    x[3, 2] = 1e300
    np.savez(tmp / "a.npz", x=x)
    return tmp / "a.npz", {"modality": "tabular"}


def huge_npz_images(tmp):
    x = np.random.default_rng(0).random((4, 8, 8))
    x[1, 2, 3] = 1e300
    np.savez(tmp / "a.npz", x=x)
    return tmp / "a.npz", {}


def float32_overflow_csv(tmp):
    return write(tmp / "t.csv", "a,b,y\n1,2,0\n3,1e39,1\n5,6,0\n7,8,1\n"), {"label": "y"}


def float32_overflow_parquet(tmp):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 3e300, 2.0, 1.0], "y": [0, 1, 0, 1]}), tmp / "t.pq")
    path = tmp / "t.parquet"
    (tmp / "t.pq").rename(path)
    return path, {"label": "y"}


def huge_smiles(tmp):
    pytest.importorskip("rdkit")
    return write(tmp / "m.smi", "CCO\nc1ccccc1\n" + "C" * 20_000_000 + "\nCCN\n"), {}


def long_smiles(tmp):
    pytest.importorskip("rdkit")
    return write(tmp / "m.smi", "CCO\nc1ccccc1\n" + "C" * 20_000 + "\nCCN\n"), {}


def empty_train_split(tmp):
    pytest.importorskip("rdkit")
    return write(tmp / "m.csv", "smiles\nc1ccccc1O\nc1ccccc1N\n"), {}


def decompression_bomb(tmp):
    png(tmp / "imgs" / "0" / "a.png", np.zeros((8, 8), dtype=np.uint8))
    png(tmp / "imgs" / "0" / "b.png", np.zeros((8, 8), dtype=np.uint8))
    png(tmp / "imgs" / "1" / "bomb.png", np.zeros((5000, 5000), dtype=np.uint8))
    return tmp / "imgs", {}


def npz_string_x(tmp):
    np.savez(tmp / "a.npz", x=np.array([["a", "b"], ["c", "d"]]))
    return tmp / "a.npz", {"modality": "tabular"}


def npz_object_x(tmp):
    np.savez(tmp / "a.npz", x=np.array([{"a": 1}, None], dtype=object))
    return tmp / "a.npz", {}


def npz_zero_size(tmp):
    np.savez(tmp / "a.npz", x=np.zeros((0, 8, 8)))
    return tmp / "a.npz", {}


def npz_float_counts(tmp):
    np.savez(tmp / "a.npz", x=np.ones((4, 2)), counts=np.array([2.0, 2.0]))
    return tmp / "a.npz", {}


def npz_bytes_y(tmp):
    np.savez(tmp / "a.npz", x=np.zeros((2, 8, 8)), y=np.array([b"a", b"b"]))
    return tmp / "a.npz", {}


def huge_line(tmp):
    return write(tmp / "t.txt", "ok line\n" + "x" * (17 << 20) + "\n"), {}


def huge_file(tmp, monkeypatch):
    monkeypatch.setenv("ANYMAE_MAX_FILE_BYTES", "1000")
    return write(tmp / "t.txt", "a line of text\n" * 100), {}


def gzip_bomb(tmp, monkeypatch):
    monkeypatch.setenv("ANYMAE_MAX_FILE_BYTES", "100000")
    (tmp / "t.txt.gz").write_bytes(gzip.compress(b"a line of text\n" * 20000))
    return tmp / "t.txt.gz", {}


def npz_bomb(tmp, monkeypatch):
    monkeypatch.setenv("ANYMAE_MAX_FILE_BYTES", "100000")
    np.savez_compressed(tmp / "a.npz", x=np.zeros((100, 64, 64), dtype=np.uint8))
    return tmp / "a.npz", {}


def nul_bytes(tmp):
    return write(tmp / "t.txt", b"fine line\nwith \x00 nul\nanother line\n"), {}


def all_missing_table(tmp):
    return write(tmp / "t.csv", "a,b,c\n1,2,3\n,,\n4,5,6\n7,8,9\n"), {}


def nan_npz_images(tmp):
    x = np.random.default_rng(0).random((4, 8, 8))
    x[2, 0, 0] = np.nan
    np.savez(tmp / "a.npz", x=x)
    return tmp / "a.npz", {}


def quote_in_header(tmp):
    return write(tmp / "t.csv", 'a,"b,y\n1,2,0\n3,4,1\n'), {}


def garbage_after_quote(tmp):
    return write(tmp / "t.csv", 'a,b,y\n1,2,0\n"3"x,4,1\n5,6,0\n7,8,1\n'), {"label": "y"}


def quote_to_end(tmp):
    return write(tmp / "t.csv", 'a,b,y\n1,2,0\n"3,4,1\n5,6,0\n7,8,1\n'), {"label": "y"}


def label_fasta(tmp):
    return shutil.copy(DATA / "uniprot_head.fasta", tmp / "p.fasta"), {"label": "y"}


def label_lines(tmp):
    return shutil.copy(DATA / "glosses.txt", tmp / "g.txt"), {"label": "y"}


def importance_wrong_length(tmp):
    x = np.random.default_rng(0).random((4, 8, 8))
    np.savez(tmp / "a.npz", x=x, m=np.ones((4, 3)))
    return tmp / "a.npz", {"importance": "m"}


def importance_missing_key(tmp):
    np.savez(tmp / "a.npz", x=np.random.default_rng(0).random((4, 8, 8)))
    return tmp / "a.npz", {"importance": "m"}


def importance_bad_cell(tmp):
    return write(tmp / "t.csv", "text,m\nab,1 2\ncd,1 x\nef,3 4\n"), {"importance": "m"}


def importance_file_rows(tmp):
    np.save(tmp / "m.npy", np.ones((2, 4)))
    return shutil.copy(DATA / "glosses.txt", tmp / "g.txt"), {"importance": str(tmp / "m.npy")}


def fasta_non_utf8_fail(tmp):
    lines = (DATA / "uniprot_head.fasta").read_bytes().split(b"\n")
    lines[1] = b"MKV\xff\xfeLL"
    return write(tmp / "p.fasta", b"\n".join(lines)), {}


def sets_with_huge(tmp):
    x = np.ones((6, 2))
    x[1, 0] = 1e300
    np.savez(tmp / "s.npz", x=x, counts=np.array([2, 2, 2]))
    return tmp / "s.npz", {}


def series_huge_value(tmp):
    lines = (DATA / "ItalyPowerDemand_head.ts").read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.lower().startswith("@data")) + 2
    lines[index] = "1e300," + lines[index].split(",", 1)[1]
    return write(tmp / "s.ts", "".join(lines)), {}


def quote_pair_in_a_table(tmp):
    return write(tmp / "t.csv", 'a,b,y\n1,2,0\n"3\n5",6,1\n7,8,1\n9,10,0\n'), {}


def single_row(tmp):
    return write(tmp / "t.csv", "a,b\n1,2\n"), {}


REFUSED = [
    ("stray quote (line 7)", stray_quote, ["t.csv, line 7", "the header has 4", "runs on to line 41"]),
    ("UTF-16 text", utf16, ["t.txt", "UTF-16"]),
    ("UTF-16 CSV", utf16_csv, ["t.csv", "UTF-16"]),
    ("1_0 label", underscore_label, ["t.csv", "'1_0' is not a plain number"]),
    ("2_0 value", underscore_value, ["t.csv, line 2", "field 'b'", "not a plain number"]),
    ("--label on image folder", label_image_folder, ["imgs", "--label does not apply"]),
    ("--label on .ts", label_ts, ["s.ts", "--label does not apply"]),
    ("--label missing in .npz", label_npz_missing, ["a.npz", "--label kind", "arrays: x, y"]),
    ("--label on FASTA", label_fasta, ["p.fasta", "no label"]),
    ("--label on text lines", label_lines, ["g.txt", "no label"]),
    ("1x1 images", one_pixel_images, ["a.npz", "each image sample is 1 token; masking needs at least 2"]),
    ("one-character lines", one_char_lines, ["t.txt, line 1", "only 1 valid token"]),
    ("one-column table", one_column_table, ["t.csv", "each tabular sample is 1 token"]),
    ("patch = image size", patch_is_image, ["imgs", "each image sample is 1 token", "choose a smaller data.patch"]),
    ("patch 16 on 8x8", patch_sixteen, ["imgs", "each image sample is 1 token", "choose a smaller data.patch"]),
    ("patch negative", patch_negative, ["data.patch"]),
    ("1e300 in a table .npz", huge_npz_values, ["a.npz, row 4", "field 'x2'", "beyond the float32 range"]),
    ("1e300 in image .npz", huge_npz_images, ["a.npz", "field 'x'", "beyond float32", "first: 1"]),
    ("NaN in image .npz", nan_npz_images, ["a.npz", "field 'x' has NaN"]),
    (
        "float32 overflow in CSV",
        float32_overflow_csv,
        ["t.csv, line 3", "field 'b' is 1e+39, beyond the float32 range"],
    ),
    ("float32 overflow in Parquet", float32_overflow_parquet, ["t.parquet, row 2", "field 'b'", "float32"]),
    ("SMILES of 20 MB", huge_smiles, ["m.smi, line 3", "longer than the limit of 16 MiB"]),
    ("SMILES of 20,000 characters", long_smiles, ["m.smi, line 3", "longer than the limit of 10,000"]),
    ("empty training split", empty_train_split, ["m.csv", "the training split is empty", "at least 1 training"]),
    ("decompression bomb", decompression_bomb, ["imgs, file 1/bomb.png", "is 5000x5000", "limit"]),
    (".npz string x", npz_string_x, ["a.npz", "field 'x' must hold numbers"]),
    (".npz object x (pickle)", npz_object_x, ["a.npz", "not a readable numpy file"]),
    (".npz zero size", npz_zero_size, ["a.npz", "field 'x' is empty"]),
    (".npz float counts", npz_float_counts, ["a.npz", "field 'counts' must be a 1-D array of integers"]),
    (".npz bytes y", npz_bytes_y, ["a.npz", "field 'y' must hold numbers or strings"]),
    ("line of 17 MiB", huge_line, ["t.txt, line 2", "longer than the limit"]),
    ("file over the limit", huge_file, ["t.txt", "more than the limit", "ANYMAE_MAX_FILE_BYTES"]),
    ("gzip bomb", gzip_bomb, ["t.txt.gz", "more than the limit"]),
    (".npz bomb", npz_bomb, ["a.npz", "more than the limit"]),
    ("NUL bytes", nul_bytes, ["t.txt, line 2", "NUL bytes"]),
    ("quote in header", quote_in_header, ["t.csv, line 1", "quote"]),
    ("garbage after a quote", garbage_after_quote, ["t.csv, line 3", "not valid CSV"]),
    ("quote open to the end", quote_to_end, ["t.csv, line 3", "runs on to line 5"]),
    ("importance of the wrong length", importance_wrong_length, ["a.npz, image 0", "importance map has 3 values"]),
    ("importance key missing", importance_missing_key, ["a.npz", "data.importance m: no such array"]),
    ("importance cell not numbers", importance_bad_cell, ["t.csv, line 3", "field 'm' (data.importance)"]),
    ("importance file of other rows", importance_file_rows, ["m.npy", "with 12 rows"]),
    ("non-UTF-8 line in FASTA", fasta_non_utf8_fail, ["p.fasta, line 1", "line 2 not UTF-8"]),
    ("1e300 in a set", sets_with_huge, ["s.npz, set 0", "float32"]),
    ("1e300 in a .ts", series_huge_value, ["s.ts, line", "finite numbers"]),
    ("quote pair over lines in a table", quote_pair_in_a_table, ["t.csv, line 3", "runs over several lines"]),
    ("one row", single_row, ["t.csv", "fewer than 2 usable records"]),
]
NEEDS_MONKEYPATCH = {huge_file, gzip_bomb, npz_bomb}
FLAGS = {"label": "--label", "modality": "--modality"}


def cli_args(path: Path, settings: dict) -> list[str]:
    """Flags first, then key=value overrides (argparse takes the positionals in one run)."""
    flags = [arg for key, value in settings.items() if key in FLAGS for arg in (FLAGS[key], str(value))]
    overrides = [f"data.{key}={value}" for key, value in settings.items() if key not in FLAGS]
    return ["--data", str(path), *flags, *overrides]


@pytest.mark.parametrize("make,fragments", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_one_line_naming_the_place(make, fragments, tmp_path, capsys, monkeypatch):
    path, settings = make(tmp_path, monkeypatch) if make in NEEDS_MONKEYPATCH else make(tmp_path)
    with pytest.raises(UserError) as error:
        load(path, **settings)
    for fragment in fragments:
        assert fragment in str(error.value)
    status = main(["pretrain", "--out", str(tmp_path / "run"), "--steps", "1", *cli_args(path, settings), *TINY])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err and fragments[0] in err


# read correctly


def test_stray_quote_under_skip_loses_only_its_own_line(tmp_path, capsys):
    path, settings = stray_quote(tmp_path)
    dataset = load(path, on_bad_record="skip", **settings)
    # line 41 holds the quote's other end: its label '1"' is no class beside 0 and 1
    assert dataset.notes["skipped"] == 2 and dataset.notes["skipped_at"] == ["line 7", "line 41"]
    assert len(dataset) == 38  # 40 rows, two of them bad; the 33 others below line 7 are read
    assert "skipped 2 bad records (line 7, line 41)" in capsys.readouterr().err


def test_quoted_field_over_two_lines_is_one_record(tmp_path):
    path = write(tmp_path / "t.csv", 'text,y\n"a review\nover two lines",a\nshort one,b\nthird,a\n')
    dataset = load(path, label="y")
    assert len(dataset) == 3 and dataset.spec.to_text(dataset.tokens.inputs[0], dataset.tokens.valid[0]).startswith(
        "a review\nover"
    )


def test_bom_before_the_smiles_column(tmp_path):
    pytest.importorskip("rdkit")
    path = write(tmp_path / "m.csv", "\ufeffsmiles,y\nCCO,1.5\nc1ccccc1,2.5\nCCN,0.5\nCCCl,3.0\n")
    dataset = load(path, label="y")
    assert dataset.spec.name == "smiles" and len(dataset) == 4 and dataset.task == "regression"


def test_bom_before_the_label_column(tmp_path):
    path = write(tmp_path / "t.csv", "\ufeffy,a,b\n0,1,2\n1,3,4\n0,5,6\n")
    dataset = load(path, label="y")
    assert dataset.labels.tolist() == [0, 1, 0] and dataset.spec.features == ("a", "b")


def test_bom_in_fasta_and_text(tmp_path):
    fasta = write(tmp_path / "p.fasta", b"\xef\xbb\xbf>a\nMKV\n>b\nLLA\n")
    assert load(fasta).notes["skipped"] == 0 and len(load(fasta)) == 2
    text = write(tmp_path / "t.txt", b"\xef\xbb\xbfhello\nworld\n")
    dataset = load(text)
    assert dataset.spec.to_text(dataset.tokens.inputs[0], dataset.tokens.valid[0]) == "hello"


def test_sixteen_bit_png_is_exact(tmp_path):
    folder = image_folder(tmp_path, size=(32, 32), dtype=np.uint16)
    from PIL import Image

    dataset = load(folder, patch=4)
    pixels = dataset.spec.to_images(dataset.tokens.inputs)[..., 0]
    files = sorted(folder.rglob("*.png"))
    truth = np.stack([np.asarray(Image.open(f), dtype=np.float64) for f in files])
    assert np.array_equal(np.round(pixels.astype(np.float64) * 65535), truth)
    assert len(np.unique(truth)) > 256  # more levels than 8 bits hold


def test_float_labels_in_npz_are_a_regression_target(tmp_path):
    y = np.array([0.5, 1.25, 2.0, 3.75])
    np.savez(tmp_path / "a.npz", x=np.random.default_rng(0).random((4, 8, 8)), y=y)
    dataset = load(tmp_path / "a.npz")
    assert dataset.task == "regression" and np.allclose(dataset.labels, y)


def test_label_names_another_npz_array(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 8, 8), dtype=np.uint8), kind=np.array(["a", "b", "a", "b"]))
    dataset = load(tmp_path / "a.npz", label="kind")
    assert dataset.labels.tolist() == [0, 1, 0, 1] and dataset.notes["classes"] == ["a", "b"]


def test_non_utf8_line_in_fasta_skips_the_whole_record(tmp_path):
    path, _ = fasta_non_utf8_fail(tmp_path)
    whole = load(DATA / "uniprot_head.fasta")
    dataset = load(path, on_bad_record="skip")
    assert dataset.notes["skipped"] == 1 and len(dataset) == len(whole) - 1
    kept = {dataset.spec.to_text(i, v) for i, v in zip(dataset.tokens.inputs, dataset.tokens.valid)}
    first = whole.spec.to_text(whole.tokens.inputs[0], whole.tokens.valid[0])
    assert first not in kept and not any(k.startswith("MKV") for k in kept)


def test_one_char_lines_among_others_are_skipped_and_counted(tmp_path):
    path = write(tmp_path / "t.txt", "hello\nx\nworld\nagain\n")
    dataset = load(path, on_bad_record="skip")
    assert len(dataset) == 3 and dataset.notes["skipped_at"] == ["line 2"]


def test_row_with_every_cell_missing_is_skipped_and_training_stays_finite(tmp_path, capsys):
    path, _ = all_missing_table(tmp_path)
    dataset = load(path, on_bad_record="skip")
    assert len(dataset) == 3 and dataset.notes["skipped_at"] == ["line 3"]
    out = tmp_path / "run"
    argv = ["pretrain", "--data", str(path), "--on-bad-record", "skip", "--out", str(out), "--steps", "2", *TINY]
    assert main(argv) == 0
    assert "final loss nan" not in capsys.readouterr().out


def test_huge_but_float32_values_standardise_to_finite_tokens(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3))
    x[:, 1] *= 1e37
    np.savez(tmp_path / "a.npz", x=x)
    dataset = load(tmp_path / "a.npz", modality="tabular")
    values = dataset.tokens.inputs[..., 0]
    assert np.isfinite(values).all() and abs(values[:, 1].std() - 1.0) < 1e-3


def test_huge_series_values_z_normalise_to_finite_tokens(tmp_path):
    rows = ["t1,t2,t3,t4,t5,t6,t7,t8"] + [",".join(f"{v:.6e}" for v in np.arange(8) * 1e37 * (i + 1)) for i in range(3)]
    dataset = load(write(tmp_path / "s.csv", "\n".join(rows) + "\n"), modality="series")
    assert np.isfinite(dataset.tokens.inputs).all() and np.abs(dataset.tokens.inputs).max() < 2


def test_crlf_lines_and_tsv(tmp_path):
    dataset = load(write(tmp_path / "t.tsv", "a\tb\ty\r\n1\t2\t0\r\n3\t4\t1\r\n5\t6\t0\r\n"), label="y")
    assert dataset.labels.tolist() == [0, 1, 0] and dataset.spec.features == ("a", "b")


def test_string_labels_in_npz_are_class_names(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 8, 8)), y=np.array(["cat", "dog", "dog", "cat"]))
    assert load(tmp_path / "a.npz").notes["classes"] == ["cat", "dog"]


def test_single_class_labels_give_a_clear_probe_error(tmp_path, capsys):
    path = write(tmp_path / "t.csv", "a,b,y\n" + "".join(f"{i},{i * 2 % 7},same\n" for i in range(20)))
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(path), "--label", "y", "--out", str(run), "--steps", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["probe", "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs at least 2 classes" in err


# data.importance: the per-token map of masking.map_source=given


def test_importance_from_an_npz_key_reaches_the_batches(tmp_path):
    x = np.random.default_rng(0).random((6, 8, 8))
    maps = np.random.default_rng(1).random((6, 4))
    np.savez(tmp_path / "a.npz", x=x, m=maps)
    dataset = load(tmp_path / "a.npz", importance="m", patch=4)
    assert np.allclose(dataset.tokens.importance, maps)
    batch = dataset.tokens.batch(np.array([2, 0]), dataset.spec.discrete)
    assert np.allclose(batch.importance.numpy(), maps[[2, 0]])


def test_importance_from_a_csv_column_for_text(tmp_path):
    path = write(tmp_path / "t.csv", "text,m\nabc,1 2 3\nde,5 4\nfgh,0 0 1\n")
    dataset = load(path, importance="m")
    assert dataset.tokens.importance[1, :2].tolist() == [5.0, 4.0] and dataset.tokens.importance[1, 2:].sum() == 0


def test_importance_from_a_second_file_for_a_table(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,c\n1,2,3\n4,5,6\n7,8,9\n")
    np.save(tmp_path / "m.npy", np.arange(9.0).reshape(3, 3))
    dataset = load(path, importance=str(tmp_path / "m.npy"))
    assert dataset.tokens.importance.tolist() == np.arange(9.0).reshape(3, 3).tolist()


def test_importance_column_is_not_a_feature(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,m\n1,2,0.1 0.9\n4,5,0.5 0.5\n7,8,1 0\n")
    dataset = load(path, importance="m", modality="tabular")
    assert dataset.spec.features == ("a", "b") and dataset.tokens.importance[2].tolist() == [1.0, 0.0]


def test_pretrain_with_a_given_map_from_the_cli(tmp_path):
    x = np.random.default_rng(0).random((12, 8, 8))
    np.savez(tmp_path / "a.npz", x=x, m=np.random.default_rng(1).random((12, 4)))
    argv = ["pretrain", "--data", str(tmp_path / "a.npz"), "--loss-weighting", "attention-guided", *TINY]
    argv += ["masking.map_source=given", "data.importance=m", "data.patch=4", "--steps", "2"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0


def test_given_map_without_importance_names_the_setting(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", x=np.random.default_rng(0).random((12, 8, 8)))
    argv = ["pretrain", "--data", str(tmp_path / "a.npz"), "--loss-weighting", "attention-guided", *TINY]
    argv += ["masking.map_source=given", "data.patch=4", "--steps", "1", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert "data.importance" in capsys.readouterr().err


def test_integer_labels_in_npz_are_classes_however_many(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((60, 8, 8), dtype=np.uint8), y=np.arange(60) % 30)
    dataset = load(tmp_path / "a.npz")
    assert dataset.task == "classification" and len(dataset.notes["classes"]) == 30
