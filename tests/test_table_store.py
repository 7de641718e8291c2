"""Feature tables (CSV / TSV) prepared into a store in chunks (data/features.py): the store holds
exactly what `--data FILE` reads (tokens, scaling, bad records and their places, labels, ids,
splits), however the rows are chunked."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import numpy as np
import pytest

from anymae.config import DataConfig
from anymae.data import features, load_dataset, tables
from anymae.data.corpus import prepare
from anymae.errors import UserError
from anymae.tokens import ScaleFit, fit_scale
from tests.test_store import assert_same


def numbers(n: int, seed: int = 0, start: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{rng.normal():.5f},{rng.normal() * 1e3:.3f},{rng.integers(0, 9)},r{start + i}" for i in range(n)]


def mixed(n: int = 30) -> str:
    """Numbers, a categorical column, missing cells and a label, with every kind of bad record."""
    rows = ["a,b,colour,id,y"]
    for i in range(n):
        colour = ["red", "green", "blue", ""][i % 4]
        a = "NA" if i % 5 == 0 else f"{i * 0.5 - 3:.2f}"
        y = "" if i == 7 else str(i % 3)
        rows.append(f"{a},{(i * 7919) % 101 - 50},{colour},row{i},{y}")
    rows[4] = "1.0,2,red,row3"  # a field short
    rows[9] = "inf,2,red,row8,1"  # infinite
    rows[12] = "NA,,,row11,1"  # no valid token
    rows[15] = '"1.5,2,red,row14,1'  # a stray quote
    return "\n".join(rows) + "\n"


def stored(tmp_path: Path, config: DataConfig, chunk: int = 5, workers: int = 1):
    """--data FILE, and a store prepared from it read back (`workers` concern string files only)."""
    memory = load_dataset(DataConfig(**vars(config)))
    out = tmp_path / f"store-{chunk}-{workers}"
    prepare(DataConfig(**vars(config)), out, workers=workers, chunk=chunk)
    return memory, load_dataset(DataConfig(name=str(out)))


def assert_exact(memory, store) -> None:
    assert_same(memory, store)
    assert store.notes["skipped_at"] == memory.notes["skipped_at"]
    assert store.notes.get("classes") == memory.notes.get("classes")
    assert (store.name, store.source) == (memory.name, memory.source)


@pytest.mark.parametrize("chunk, plain", [(1, 2), (3, 4), (8192, 1024)])
def test_a_streamed_table_is_the_table_read_whole(tmp_path, chunk, plain, capsys, monkeypatch):
    monkeypatch.setattr(tables, "PLAIN", plain)  # lines parsed at once, between those read record by record
    path = tmp_path / "t.csv"
    path.write_text(mixed())
    config = DataConfig(name=str(path), label="y", id="id", on_bad_record="skip")
    memory, store = stored(tmp_path, config, chunk)
    assert_exact(memory, store)
    # the reader's (fields, quoting), then inf, a missing label, no valid token, as `--data FILE` orders them
    assert memory.notes["skipped_at"] == ["line 5", "line 16", "line 10", "line 9", "line 13", "line 17"]
    assert memory.spec.features == ("a", "b", "colour=blue", "colour=green", "colour=red")
    assert len(memory) == 30 - 6
    assert list(store.ids[:2]) == ["row0", "row1"]
    assert "skipped 6 bad records" in capsys.readouterr().err


def test_chunk_size_changes_nothing_in_the_store(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,n\n" + "\n".join(numbers(100)) + "\n")
    config = DataConfig(name=str(path), id="n")
    stores = [stored(tmp_path, config, chunk, workers)[1] for chunk, workers in ((3, 1), (1000, 1))]
    for other in stores[1:]:
        assert_same(stores[0], other)
        assert other.spec == stores[0].spec


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.bz2", ".tsv"])
def test_compressed_and_tab_separated_tables_stream(tmp_path, suffix):
    text = "a,b,c,n\n" + "\n".join(numbers(40)) + "\n"
    if ".tsv" in suffix:
        text = text.replace(",", "\t")
    data = text.encode()
    data = gzip.compress(data) if suffix.endswith(".gz") else bz2.compress(data) if suffix.endswith(".bz2") else data
    path = tmp_path / f"t{suffix}"
    path.write_bytes(data)
    memory, store = stored(tmp_path, DataConfig(name=str(path), id="n"), chunk=7)
    assert_exact(memory, store)
    assert len(store) == 40 and store.spec.features == ("a", "b", "c")


def test_csv_shards_stream_as_one_table_with_their_bad_records(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.csv").write_text("a,b,c,n\n" + "\n".join(numbers(12)) + "\n1,2\n")
    (folder / "b.csv").write_text("a,b,c,n\n" + "\n".join(numbers(9, seed=1, start=12)) + "\n1e39,2,3,x\n")
    config = DataConfig(name=str(folder), on_bad_record="skip")
    memory, store = stored(tmp_path, config, chunk=4)
    assert_exact(memory, store)
    assert memory.notes["skipped_at"] == ["a.csv, line 14", "b.csv, line 11"]
    assert store.ids[0] == "a.csv, line 2" and len(store) == 21


def test_a_column_that_turns_categorical_late_reads_as_whole(tmp_path):
    """The first pass guessed 'numbers' for column c, and a row with inf there was bad: read again."""
    rows = ["a,b,c"] + [f"{i},{i * 2},{i % 3}" for i in range(20)]
    rows[3] = "1,2,inf"
    rows[18] = "1,2,many"
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    memory, store = stored(tmp_path, DataConfig(name=str(path)), chunk=4)
    assert_exact(memory, store)
    assert "c=inf" in memory.spec.features and memory.notes["skipped"] == 0


def test_a_field_over_several_lines_in_a_number_column_is_a_bad_record(tmp_path):
    rows = ["a,b,c"] + [f"{i},{i * 2},w{i % 2}" for i in range(12)]
    rows[3] = '1,"2\n3",w1'
    rows[6] = '4,5,"two\nlines"'  # in a column of words: a category
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    memory, store = stored(tmp_path, DataConfig(name=str(path), on_bad_record="skip"), chunk=2)
    assert_exact(memory, store)
    assert memory.notes["skipped_at"] == ["line 4"]
    assert "c=two\nlines" in memory.spec.features


def test_bad_records_stop_the_streamed_preparation_naming_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,inf\n4,5\n")
    for config in (DataConfig(name=str(path)),):
        with pytest.raises(UserError, match=r"t.csv, line 3: field 'b' is infinite") as whole:
            load_dataset(config)
        with pytest.raises(UserError) as streamed:
            prepare(config, tmp_path / "store", chunk=1)
        assert str(streamed.value) == str(whole.value)
    path.write_text("a,b\n1,2\n3,1_0\n")
    with pytest.raises(UserError, match=r"t.csv, line 3: field 'b' = '1_0' is not a plain number"):
        prepare(DataConfig(name=str(path)), tmp_path / "store", chunk=1)
    with pytest.raises(UserError, match="no column 'z'"):
        prepare(DataConfig(name=str(path), label="z"), tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_scale_fit_in_blocks_is_fit_scale_and_ignores_chunking(monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3)) * [1, 1e300, 1e-3]
    values[::7, 0] = np.nan
    whole = ScaleFit(3)
    whole.add(values)
    assert whole.result() == fit_scale(values)  # one block: fit_scale exactly
    monkeypatch.setattr(ScaleFit, "BLOCK", 8)
    results = []
    for size in (1, 5, 50):
        fit = ScaleFit(3)
        for begin in range(0, 50, size):
            fit.add(values[begin : begin + size])
        results.append(fit.result())
    assert results[0] == results[1] == results[2]
    np.testing.assert_allclose(results[0][0], fit_scale(values)[0], rtol=1e-9)
    np.testing.assert_allclose(results[0][1], fit_scale(values)[1], rtol=1e-9)


def test_the_text_is_parsed_once_through_a_scratch_file_removed_at_the_end(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,n\n" + "\n".join(numbers(30)) + "\n")
    reads, scratch = [], []
    real_chunks, real_iter = features.csv_chunks, features.ParsedChunks.__iter__

    def counted(*args):
        reads.append(1)
        return real_chunks(*args)

    def seen(self):
        if self.path is not None:  # None: --data FILE's chunks, in memory
            scratch.append((self.path.name, self.path.stat().st_size))
        return real_iter(self)

    monkeypatch.setattr(features, "csv_chunks", counted)
    monkeypatch.setattr(features.ParsedChunks, "__iter__", seen)
    memory, store = stored(tmp_path, DataConfig(name=str(path), id="n"), chunk=4)
    assert_exact(memory, store)
    assert len(reads) == 1  # pass 2 read the parsed chunks, not the text
    assert scratch[0][0] == "parsed-rows.scratch" and scratch[0][1] > 0
    assert not list(tmp_path.rglob("*.scratch"))
    path.write_text("a,b\n1,2\n3,inf\n")  # an error after pass 1 wrote its scratch file
    with pytest.raises(UserError, match="line 3: field 'b' is infinite"):
        features.stream_table([path], DataConfig(name=str(path)), None, "t", tmp_path / "x.scratch", chunk=1)
    assert not (tmp_path / "x.scratch").exists()


def test_a_column_made_categorical_by_a_field_over_several_lines_is_scanned_again(tmp_path):
    rows = ["a,b,c"] + [f"{i},{i % 4},{i * 2}" for i in range(12)]
    rows[3] = '1,x,"2\n3"'  # c breaks (a bad record), and b holds a word only there
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    memory, store = stored(tmp_path, DataConfig(name=str(path), on_bad_record="skip"), chunk=5)
    assert_exact(memory, store)
    assert memory.notes["skipped_at"] == ["line 4"]
    assert memory.spec.features == ("a", "b=0", "b=1", "b=2", "b=3", "c")  # the word's row dropped, its levels


def decimals(n: int) -> list[str]:
    """Rows of plain decimals in every form (a numeric label y and numeric ids n), one beyond float32."""
    forms = ["1", "-2.5", ".5", "+3.", "1e-3", "1E+05", "-0", "007", "2.5e-320"]
    rows = [f"{forms[i % 9]},{forms[(i * 5) % 9]},{i * 0.37:.3f},{i % 2},{1000 + i}" for i in range(n)]
    rows[11] = "1e39,2,3,0,1011"
    return ["a,b,c,y,n", *rows]


@pytest.mark.parametrize("odd", [None, "NA", "", "nan", "1e999", "red", "1_0", "1 2"])
def test_numeric_blocks_parsed_at_once_are_what_their_cells_give(tmp_path, monkeypatch, odd):
    """Blocks of plain decimals are parsed at once (NumericRows); a block with any other cell (here a
    late one) is read cell by cell. The store is exactly `--data FILE` (always cell by cell), and the
    store prepared with no block parsed at once."""
    monkeypatch.setattr(tables, "PLAIN", 4)
    rows = decimals(40)
    if odd is not None:
        rows[37] = f"4,{odd},5,1,1036"
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    config = DataConfig(name=str(path), label="y", id="n", on_bad_record="skip")
    at_once = []
    numeric_rows = tables.numeric_rows
    monkeypatch.setattr(tables, "numeric_rows", lambda *a: at_once.append(numeric_rows(*a)) or at_once[-1])
    if odd == "1_0":
        with pytest.raises(UserError, match=r"line 38: field 'b' = '1_0' is not a plain number"):
            prepare(DataConfig(**vars(config)), tmp_path / "store", chunk=8)
        return
    memory, store = stored(tmp_path, config, chunk=8)
    assert_exact(memory, store)
    at_once_per_pass = {None: 10, "1e999": 10, "red": 18, "1 2": 18}.get(odd, 9)  # of 10; b a category: read again
    assert sum(block is not None for block in at_once) == at_once_per_pass
    monkeypatch.setattr(tables, "numeric_rows", lambda *a: None)
    out = tmp_path / "cell-by-cell"
    prepare(DataConfig(**vars(config)), out, chunk=8)
    assert_exact(load_dataset(DataConfig(name=str(out))), store)
    assert memory.notes["skipped_at"][0] == "line 13"  # 1e39
