"""Hugging Face `datasets` folders saved with save_to_disk, read with pyarrow alone.

tests/data/hf_rotten (a Dataset: the rows of rotten_head.csv with a null text inserted as row 5, a
ClassLabel `category` and a list column `words`) and tests/data/hf_amp (a DatasetDict: the rows of
amp_head.csv in train and test splits) were written by `datasets` 5.2.0; these tests do not need it."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import load_dataset
from anymae.data.dataset import random_splits
from anymae.errors import UserError
from tests.test_readers import DATA
from tests.test_store import assert_same, round_trip

pytest.importorskip("pyarrow")  # scripts/setup.sh installs it (the `tables` extra); CI runs these tests

ROTTEN, AMP = DATA / "hf_rotten", DATA / "hf_amp"
AMP_ORDER = [*range(7), *range(11, 16), *range(7, 11), *range(16, 19)]  # amp_head.csv rows as split by the fixture


def load(name, **settings):
    return load_dataset(DataConfig(name=str(name), **settings))


def test_a_dataset_folder_reads_like_the_csv_it_was_made_from_less_its_null_row(capsys):
    csv = load(DATA / "rotten_head.csv", label="category")
    for settings in ({}, {"label": "category"}):  # streamed record by record, and read as a table
        hf = load(ROTTEN, on_bad_record="skip", **settings)
        assert hf.spec == csv.spec and hf.notes["skipped"] == 1 and hf.notes["skipped_at"] == ["row 5"]
        np.testing.assert_array_equal(hf.tokens.inputs, csv.tokens.inputs)
        np.testing.assert_array_equal(hf.tokens.valid, csv.tokens.valid)
        assert list(hf.ids) == [f"row {i}" for i in (1, 2, 3, 4, *range(6, 14))]
        for part, index in random_splits(12, seed=0).items():
            np.testing.assert_array_equal(hf.splits[part], index)
    assert "skipped 1 bad records (row 5)" in capsys.readouterr().err
    np.testing.assert_array_equal(hf.labels, csv.labels)  # the ClassLabel's names, as the CSV's words
    assert hf.task == "classification" and hf.notes["classes"] == ["fresh", "plot", "rotten"]


def test_a_dataset_dict_keeps_its_splits_and_draws_val_from_train():
    csv = load(DATA / "amp_head.csv", label="label")
    for settings in ({}, {"label": "label"}):
        hf = load(AMP, **settings)
        assert hf.spec.name == "protein" and len(hf) == 19 and hf.notes["skipped"] == 0
        np.testing.assert_array_equal(hf.tokens.inputs, csv.tokens.inputs[AMP_ORDER])
        assert list(hf.ids) == [f"train, row {i}" for i in range(1, 13)] + [f"test, row {i}" for i in range(1, 8)]
        carved = random_splits(12, seed=0, val=0.2, test=0.0)
        np.testing.assert_array_equal(hf.splits["train"], carved["train"])
        np.testing.assert_array_equal(hf.splits["val"], carved["val"])
        np.testing.assert_array_equal(hf.splits["test"], np.arange(12, 19))
    np.testing.assert_array_equal(hf.labels, csv.labels[AMP_ORDER])


def test_a_validation_split_is_used_and_a_missing_test_split_drawn_from_train(tmp_path):
    folder = shutil.copytree(AMP, tmp_path / "amp")
    (folder / "test").rename(folder / "validation")
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "validation"]}))
    hf = load(folder)
    carved = random_splits(12, seed=0, val=0.0, test=0.2)
    np.testing.assert_array_equal(hf.splits["val"], np.arange(12, 19))
    np.testing.assert_array_equal(hf.splits["test"], carved["test"])
    assert hf.ids[12] == "validation, row 1"


def test_another_split_name_is_refused_with_the_way_to_read_it(tmp_path):
    folder = shutil.copytree(AMP, tmp_path / "amp")
    (folder / "test").rename(folder / "unsupervised")
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "unsupervised"]}))
    with pytest.raises(UserError, match=r"split 'unsupervised' is none of .*--data .*amp/unsupervised"):
        load(folder)
    assert len(load(folder / "unsupervised")) == 7  # one split's folder is a Dataset folder


@pytest.mark.parametrize(
    "source, settings", [(ROTTEN, {}), (ROTTEN, {"label": "category"}), (AMP, {}), (AMP, {"label": "label"})]
)
def test_a_store_prepared_from_a_folder_equals_reading_it(tmp_path, source, settings):
    config = DataConfig(name=str(source), on_bad_record="skip", **settings)
    memory, stored = round_trip(tmp_path, config, workers=1, chunk=5)
    assert_same(memory, stored)


def test_data_prepare_reads_a_folder_on_the_command_line(tmp_path, capsys):
    assert main(["data", "prepare", str(AMP), "--out", str(tmp_path / "s"), "--workers", "1"]) == 0
    assert "prepared 19 samples of protein" in capsys.readouterr().out
    assert_same(load(AMP), load(tmp_path / "s"))


def test_a_null_sample_stops_the_read_or_is_counted():
    with pytest.raises(UserError, match=r"hf_rotten, row 5: field 'text' is empty \(use --on-bad-record skip"):
        load(ROTTEN)
    with pytest.raises(UserError, match=r"hf_rotten, row 5: field 'text' is empty"):
        load(ROTTEN, label="category")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"column": "review_text"}, r"no column 'review_text' \(--column\); columns: text, category, words"),
        ({"label": "stars"}, r"no column 'stars' \(--label\); columns: text, category, words"),
        ({"column": "words"}, r"column 'words' holds list<.*> values, not strings"),
        ({"label": "words"}, r"column 'words' holds list<.*> values, not one label per row"),
        ({"column": "category"}, r"column 'category' holds int64 values, not strings"),
        ({"id": "category"}, r"--id \(data.id\) names a column of a CSV"),
    ],
)
def test_a_wrong_column_names_the_columns(settings, message):
    with pytest.raises(UserError, match=message):
        load(ROTTEN, on_bad_record="skip", **settings)


def write_folder(folder, files: list[dict]):
    """A Dataset folder of several Arrow stream files, each of the columns given, as save_to_disk writes it."""
    pa = pytest.importorskip("pyarrow")
    folder.mkdir()
    names = [f"data-{i:05d}-of-{len(files):05d}.arrow" for i in range(len(files))]
    for name, columns in zip(names, files):
        table = pa.table(columns)
        with pa.ipc.new_stream(str(folder / name), table.schema) as writer:
            writer.write_table(table, max_chunksize=2)  # several record batches a file
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": n} for n in names]}))
    return folder


def test_column_names_the_sample_column_and_rows_count_across_files(tmp_path):
    folder = write_folder(
        tmp_path / "peptides",
        [{"peptide": ["MKVL", "ACDE", "GHIK"], "n": [1, 2, 3]}, {"peptide": ["LMNP", "", "QRST"], "n": [4, 5, 6]}],
    )
    with pytest.raises(
        UserError,
        match=r"peptides: no column named sequence or seq for protein; columns: peptide, n \(name one with --column\)",
    ):
        load(folder, modality="protein")
    hf = load(folder, column="PEPTIDE", on_bad_record="skip")  # case-insensitive, as in tables
    assert hf.spec.name == "text" and hf.notes["skipped_at"] == ["row 5"]  # named otherwise: text, as in JSON Lines
    assert list(hf.ids) == ["row 1", "row 2", "row 3", "row 4", "row 6"]
    assert load(folder, column="peptide", modality="protein", on_bad_record="skip").spec.name == "protein"
    assert load(AMP, column="SEQUENCE").spec.name == "protein"


@pytest.mark.parametrize("damage", ["missing", "garbage", "cut"])
def test_a_missing_or_damaged_arrow_file_is_named(tmp_path, damage):
    folder = shutil.copytree(AMP, tmp_path / "amp")
    arrow = folder / "test" / "data-00000-of-00001.arrow"
    if damage == "missing":
        arrow.unlink()
    elif damage == "garbage":
        arrow.write_bytes(b"not arrow at all" * 10)
    else:
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    for settings in ({}, {"label": "label"}):
        with pytest.raises(
            UserError, match=r"amp/test/data-00000-of-00001\.arrow: (no such file|not a readable Arrow)"
        ):
            load(folder, **settings)


def test_a_broken_state_file_is_named(tmp_path):
    folder = shutil.copytree(ROTTEN, tmp_path / "rotten")
    (folder / "state.json").write_text('{"_data_files": "oops"}')
    with pytest.raises(UserError, match=r"rotten/state.json: '_data_files' must list the Arrow files"):
        load(folder)


def test_without_pyarrow_the_error_says_how_to_install_it(monkeypatch):
    for module in ("pyarrow", "pyarrow.ipc"):
        monkeypatch.setitem(sys.modules, module, None)  # `import pyarrow` raises ImportError
    for settings in ({}, {"label": "category"}):
        with pytest.raises(
            UserError, match=r"hf_rotten: Hugging Face datasets folders need pyarrow; .*anymae\[tables\]"
        ):
            load(ROTTEN, **settings)


def test_a_file_whose_sample_column_changed_type_gives_bad_records(tmp_path):
    folder = write_folder(tmp_path / "mixed", [{"text": ["a cat", "a dog", "a cow"]}, {"text": [7, 8]}])
    with pytest.raises(UserError, match=r"mixed, row 4: field 'text' is not a string"):
        load(folder)
    assert load(folder, on_bad_record="skip").notes["skipped_at"] == ["row 4", "row 5"]
