"""Readers for users' files: small real excerpts (tests/data, see LICENSE.md there) and malformed
variants of them. Each bad case: one clear line naming the file and the line or field, exit
status 2 from the CLI, and a count of skipped records under --on-bad-record skip."""

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
TINY = ["model.dim=32", "model.depth=2", "model.decoder_dim=32", "model.decoder_depth=1", "train.batch_size=8"]


def load(path: Path, **settings):
    return load_dataset(DataConfig(name=str(path), **settings))


def has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


needs_rdkit = pytest.mark.skipif(not has("rdkit"), reason="rdkit (anymae[chem]) not installed")


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copy(DATA / name, target)
    return target


def with_lines(path: Path, edit) -> Path:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))
    return path


# good files


def test_fasta_of_proteins_plain_and_gzip(tmp_path):
    dataset = load(DATA / "uniprot_head.fasta")
    assert dataset.spec.name == "protein" and dataset.spec.vocab_size == 26 and len(dataset) == 6
    assert dataset.task == "none" and dataset.labels is None
    first = (DATA / "uniprot_head.fasta").read_text().splitlines()[1]
    assert dataset.spec.to_text(dataset.tokens.inputs[0], dataset.tokens.valid[0]) == first[:256]
    packed = tmp_path / "proteins.fa.gz"
    packed.write_bytes(gzip.compress((DATA / "uniprot_head.fasta").read_bytes()))
    assert np.array_equal(load(packed).tokens.inputs, dataset.tokens.inputs)


def test_fasta_of_dna_is_inferred_and_modality_can_be_forced(tmp_path):
    path = tmp_path / "reads.fasta"
    path.write_text(">r1\nACGTTG\nCAN\n>r2\nggcat\n")
    dataset = load(path)
    assert dataset.spec.name == "dna" and dataset.spec.vocab_size == 5  # A C G T and padding
    # N is an unknown base: its slot is kept (positions hold) but is no token; lower case is the same base
    assert dataset.tokens.valid[0, :10].tolist() == [True] * 8 + [False, False]
    assert dataset.spec.to_text(dataset.tokens.inputs[0], dataset.tokens.valid[0]) == "ACGTTGCA"
    assert dataset.spec.to_text(dataset.tokens.inputs[1], dataset.tokens.valid[1]) == "GGCAT"
    assert load(path, modality="protein").spec.name == "protein"


def test_csv_sequence_column_with_labels():
    dataset = load(DATA / "amp_head.csv", label="label")
    assert dataset.spec.name == "protein" and len(dataset) == 19
    assert dataset.task == "classification" and sorted(set(dataset.labels.tolist())) == [0, 1]


def test_text_lines_and_csv_text_column():
    glosses = load(DATA / "glosses.txt")
    assert glosses.spec.name == "text" and len(glosses) == 12 and glosses.task == "none"
    reviews = load(DATA / "rotten_head.csv", label="category")
    assert reviews.spec.name == "text" and len(reviews) == 12
    assert reviews.notes["classes"] == ["fresh", "plot", "rotten"] and np.bincount(reviews.labels).tolist() == [4] * 3


@needs_rdkit
def test_smiles_column_is_validated_canonicalised_and_scaffold_split():
    dataset = load(DATA / "freesolv_head.csv", label="expt")
    assert dataset.spec.name == "smiles" and dataset.spec.default_ratio == 0.3 and len(dataset) == 12
    assert dataset.task == "regression" and dataset.labels.dtype == np.float32
    assert dataset.labels[0] == pytest.approx(-11.01)
    assert set(np.concatenate(list(dataset.splits.values())).tolist()) == set(range(12))


def test_table_numeric_categorical_missing_and_label(tmp_path):
    from sklearn.datasets import load_wine

    wine = load_wine()
    path = tmp_path / "wine.csv"
    rows = ["alcohol,malic_acid,colour,class"]
    for i, (x, y) in enumerate(zip(wine.data[:30], wine.target[:30])):
        malic = "" if i == 3 else f"{x[1]}"  # a missing cell
        rows.append(f"{x[0]},{malic},{['red', 'white'][i % 2]},{['a', 'b', 'c'][y]}")
    path.write_text("\n".join(rows) + "\n")
    dataset = load(path, label="class")
    assert dataset.spec.name == "tabular" and dataset.spec.channels == 1
    assert dataset.spec.features == ("alcohol", "malic_acid", "colour=red", "colour=white")
    assert dataset.tokens.inputs.shape == (30, 4, 1)
    assert not dataset.tokens.valid[3, 1] and dataset.tokens.valid.sum() == 30 * 4 - 1  # missing -> no token
    assert abs(dataset.tokens.inputs[:, 0, 0].mean()) < 1e-5  # standardised
    assert dataset.task == "classification" and dataset.notes["classes"] == ["a"]  # first 30 wines are class 0


def test_parquet_table_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, None, 4.0], "b": ["x", "y", "x", "y"], "y": [0, 1, 0, 1]}), path)
    dataset = load(path, label="y")
    assert dataset.spec.features == ("a", "b=x", "b=y") and not dataset.tokens.valid[2, 0]
    assert dataset.labels.tolist() == [0, 1, 0, 1]


def test_image_folder_with_class_subfolders():
    dataset = load(DATA / "mnist_png")
    assert dataset.spec.name == "image" and (dataset.spec.height, dataset.spec.width) == (28, 28)
    assert dataset.spec.image_channels == 1 and len(dataset) == 6 and dataset.notes["classes"] == ["0", "1"]
    assert 0.0 <= dataset.tokens.inputs.min() and dataset.tokens.inputs.max() <= 1.0


def test_image_folder_mixing_grey_and_colour_becomes_rgb(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    shutil.copytree(DATA / "mnist_png", folder)
    Image.new("RGBA", (28, 28), (255, 0, 0, 128)).save(folder / "1" / "red.png")
    dataset = load(folder)
    assert dataset.spec.image_channels == 3 and len(dataset) == 7


def test_ucr_ts_file():
    dataset = load(DATA / "ItalyPowerDemand_head.ts")
    assert dataset.spec.name == "series" and len(dataset) == 12 and dataset.spec.max_tokens == 6  # 24 steps / 4
    assert dataset.task == "classification" and dataset.notes["classes"] == ["1", "2"]
    values = dataset.tokens.inputs[0].reshape(-1)
    assert abs(values.mean()) < 1e-5 and values.std() == pytest.approx(1.0, abs=1e-4)  # z-normalised


def test_series_from_csv_rows_of_different_lengths(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("t1,t2,t3,t4,t5,t6,kind\n1,2,3,4,5,6,up\n6,5,4,,,,down\n1,3,2,4,3,5,up\n")
    dataset = load(path, modality="series", label="kind", patch=2)
    assert dataset.tokens.valid.sum(1).tolist() == [3, 2, 3]  # patches of 2 steps


def test_sets_from_npz_are_sorted_by_the_first_value(tmp_path):
    path = tmp_path / "jets.npz"
    x = np.array([[1.0, 0.1], [5.0, 0.2], [3.0, 0.3], [2.0, 0.0], [7.0, 0.5]], dtype=np.float32)
    np.savez(path, x=x, counts=np.array([3, 2]), y=np.array([0, 1]))
    dataset = load(path)
    assert dataset.spec.name == "set" and dataset.spec.max_tokens == 3 and dataset.tokens.valid.sum() == 5
    first = dataset.tokens.inputs[0, :3, 0] * dataset.spec.scale[0] + dataset.spec.mean[0]
    assert np.allclose(first, [5.0, 3.0, 1.0])


def test_two_dimensional_npz_needs_a_modality(tmp_path):
    path = tmp_path / "rows.npz"
    np.savez(path, x=np.arange(20.0).reshape(5, 4), y=np.array([0, 1, 0, 1, 0]))
    with pytest.raises(UserError, match="give --modality tabular or series"):
        load(path)
    assert load(path, modality="tabular").spec.max_tokens == 4


# malformed files: (name, make(tmp_path) -> path, extra settings, fragments of the message, skipped under skip)


def truncated_fasta(tmp):
    return with_lines(copy("uniprot_head.fasta", tmp), lambda lines: lines + [">tr|CUT|cut short\n"])


def letters_fasta(tmp):
    def edit(lines):
        lines[3] = lines[3][:5] + "J1" + lines[3][7:]
        return lines

    return with_lines(copy("uniprot_head.fasta", tmp), edit)


def truncated_gzip(tmp):
    path = tmp / "cut.fasta.gz"
    data = gzip.compress((DATA / "uniprot_head.fasta").read_bytes())
    path.write_bytes(data[: len(data) // 2])
    return path


def invalid_smiles(tmp):
    return with_lines(copy("freesolv_head.csv", tmp), lambda lines: lines + ["bad,C1CC(,1.0,1.0\n"])


def ragged_csv(tmp):
    return with_lines(copy("rotten_head.csv", tmp), lambda lines: lines[:3] + ["fresh,good,extra\n"] + lines[3:])


def inf_table(tmp):
    path = tmp / "t.csv"
    path.write_text("a,b,y\n1,2,0\n3,inf,1\n4,5,0\n6,7,1\n")
    return path


def empty_file(tmp):
    path = tmp / "empty.csv"
    path.write_text("")
    return path


def undecodable_text(tmp):
    path = copy("glosses.txt", tmp)
    data = path.read_bytes().split(b"\n")
    data[2] = b"caf\xe9 \xff not utf-8"
    path.write_bytes(b"\n".join(data))
    return path


def corrupt_image(tmp):
    folder = tmp / "imgs"
    shutil.copytree(DATA / "mnist_png", folder)
    (folder / "1" / "broken.png").write_bytes(b"\x89PNG not an image")
    return folder


def bad_series(tmp):
    return with_lines(copy("ItalyPowerDemand_head.ts", tmp), lambda lines: lines[:10] + ["1,2,abc,4:1\n"] + lines[10:])


def bad_set(tmp):
    path = tmp / "sets.npz"
    x = np.ones((6, 2), dtype=np.float32)
    x[3, 1] = np.nan
    np.savez(path, x=x, counts=np.array([2, 2, 2]))
    return path


BAD = [
    ("truncated fasta", truncated_fasta, {}, ["uniprot_head.fasta, line 13", "'tr|CUT|cut'", "no sequence"], 1),
    ("letters", letters_fasta, {}, ["uniprot_head.fasta, line 4", "letter 'J' at column 6"], 1),
    ("truncated gzip", truncated_gzip, {}, ["cut.fasta.gz, line", "damaged or cut short"], None),
    ("invalid smiles", invalid_smiles, {}, ["freesolv_head.csv, line 14", "invalid SMILES 'C1CC('"], 1),
    ("ragged csv", ragged_csv, {"label": "category"}, ["rotten_head.csv, line 4", "has 3 fields"], 1),
    ("inf", inf_table, {"label": "y"}, ["t.csv, line 3", "field 'b' is infinite"], 1),
    ("wrong column", inf_table, {"label": "target"}, ["t.csv", "no column 'target'", "columns: a, b, y"], None),
    ("empty file", empty_file, {}, ["empty.csv", "empty"], None),
    ("undecodable", undecodable_text, {}, ["glosses.txt, line 3", "not UTF-8"], 1),
    ("corrupt image", corrupt_image, {}, ["imgs, file 1/broken.png", "not a readable image"], 1),
    ("series value", bad_series, {}, ["ItalyPowerDemand_head.ts, line 11", "finite numbers"], 1),
    ("set with nan", bad_set, {}, ["sets.npz, set 1", "NaN or inf"], 1),
    ("modality mismatch", truncated_gzip, {"modality": "image"}, ["cut.fasta.gz", "--modality image"], None),
]
CLI_FLAGS = {"label": "--label", "modality": "--modality"}


@pytest.mark.parametrize("name,make,settings,fragments,skipped", BAD, ids=[case[0] for case in BAD])
def test_bad_files_fail_with_file_and_line_and_status_2(name, make, settings, fragments, skipped, tmp_path, capsys):
    if name == "invalid smiles" and not has("rdkit"):
        pytest.skip("rdkit (anymae[chem]) not installed")
    path = make(tmp_path)
    with pytest.raises(UserError) as error:
        load(path, **settings)
    for fragment in fragments:
        assert fragment in str(error.value)
    flags = [arg for key, value in settings.items() for arg in (CLI_FLAGS[key], value)]
    assert main(["pretrain", "--data", str(path), *flags, "--out", str(tmp_path / "run"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and fragments[0] in err


@pytest.mark.parametrize(
    "name,make,settings,fragments,skipped", [c for c in BAD if c[4] is not None], ids=[c[0] for c in BAD if c[4]]
)
def test_bad_records_are_skipped_counted_and_reported(name, make, settings, fragments, skipped, tmp_path, capsys):
    if name == "invalid smiles" and not has("rdkit"):
        pytest.skip("rdkit (anymae[chem]) not installed")
    dataset = load(make(tmp_path), on_bad_record="skip", **settings)
    assert dataset.notes["skipped"] == skipped
    where = fragments[0].split(", ", 1)[1]
    assert dataset.notes["skipped_at"][0].startswith(where)
    err = capsys.readouterr().err
    assert f"skipped {skipped} bad records ({where}" in err


def test_missing_rdkit_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rdkit", None)
    with pytest.raises(UserError, match=r"pip install 'anymae\[chem\]'"):
        load(DATA / "freesolv_head.csv")


def test_bad_record_policy_is_checked():
    with pytest.raises(UserError, match="on_bad_record must be one of fail, skip"):
        load(DATA / "glosses.txt", on_bad_record="ignore")


def test_too_many_levels_in_a_text_column_is_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,x\n" + "".join(f"n{i},{i}\n" for i in range(60)))
    with pytest.raises(UserError, match="column 'name' has 60 distinct non-numeric values"):
        load(path, modality="tabular")


def test_pretrain_probe_and_embed_on_a_users_csv_with_flags(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["--data", str(DATA / "amp_head.csv"), "--label", "label", "--modality", "protein"]
    assert main(["pretrain", *argv, "--steps", "2", "--out", str(run), *TINY, "data.max_tokens=64"]) == 0
    saved = (run / "config.yaml").read_text()
    assert "modality: protein" in saved and "label: label" in saved
    assert main(["probe", "--checkpoint", str(run), "--json"]) == 0
    assert '"task": "classification"' in capsys.readouterr().out
    out = tmp_path / "f.npy"
    assert main(["embed", "--checkpoint", str(run), *argv, "--out", str(out)]) == 0
    assert np.load(out).shape == (19, 32)
