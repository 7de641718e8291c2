"""The prepared token store: the tokens a model sees are the in-memory path's for every modality,
preparation is atomic and streamed, a changed source is refused, resume from a store is exact."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from anymae.checkpoint import load_checkpoint
from anymae.cli import main
from anymae.config import Config, DataConfig
from anymae.data import load_dataset
from anymae.data.corpus import prepare
from anymae.data.store import StoreWriter, is_store
from anymae.errors import UserError
from anymae.train import pretrain

DATA = Path(__file__).parent / "data"
LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def write_fasta(path: Path, n: int, seed: int = 0, longest: int = 60) -> Path:
    rng = np.random.default_rng(seed)
    text = "".join(
        f">p{seed}_{i} some words\n{''.join(rng.choice(list(LETTERS), rng.integers(3, longest)))}\n" for i in range(n)
    )
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_table(path: Path, n: int = 40) -> Path:
    rng = np.random.default_rng(1)
    rows = ["a,b,c,y"] + [
        f"{rng.normal():.4f},{rng.normal():.4f},{'' if i % 7 == 0 else rng.normal()},{i % 2}" for i in range(n)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def write_sets(path: Path) -> Path:
    rng = np.random.default_rng(2)
    counts = rng.integers(2, 6, 30)
    np.savez(path, x=rng.normal(size=(counts.sum(), 4)).astype(np.float32), counts=counts, y=np.arange(30) % 2)
    return path


def assert_same(memory, stored) -> None:
    """Every token, mask, label, split and id the two datasets give a model."""
    index = np.arange(len(memory))
    assert len(stored) == len(memory) and stored.spec == memory.spec
    mine = stored.tokens.take(index)
    np.testing.assert_array_equal(mine.inputs, memory.tokens.inputs)
    np.testing.assert_array_equal(mine.valid, memory.tokens.valid)
    if memory.tokens.importance is not None:
        np.testing.assert_array_equal(mine.importance, memory.tokens.importance)
    for at in (1, slice(1, 4), (slice(None), slice(0, 2)), (np.array([1, 0]), 0)):  # as show and the API read rows
        np.testing.assert_array_equal(stored.tokens.inputs[at], memory.tokens.inputs[at])
        np.testing.assert_array_equal(stored.tokens.valid[at], memory.tokens.valid[at])
    rows = np.array([min(3, len(memory) - 1), 0, len(memory) - 1, min(3, len(memory) - 1)])
    a, b = memory.tokens.batch(rows, memory.spec.discrete), stored.tokens.batch(rows, stored.spec.discrete)
    for name in ("valid", "ids", "values", "index"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None) and (x is None or (torch.equal(x, y) and x.dtype == y.dtype)), name
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(stored.splits[part], memory.splits[part])
    if memory.labels is None:
        assert stored.labels is None
    else:
        np.testing.assert_array_equal(stored.labels, memory.labels)
    assert list(stored.ids) == [str(i) for i in memory.ids]
    assert (stored.task, stored.metric, stored.notes["skipped"]) == (
        memory.task,
        memory.metric,
        memory.notes["skipped"],
    )


def round_trip(tmp_path: Path, config: DataConfig, **how):
    memory = load_dataset(DataConfig(**vars(config)))
    prepare(DataConfig(**vars(config)), tmp_path / "store", **how)
    return memory, load_dataset(DataConfig(name=str(tmp_path / "store")))


@pytest.mark.parametrize(
    "make, settings",
    [
        (lambda d: write_fasta(d / "p.fasta", 50), {}),
        (lambda d: write_fasta(d / "p.fasta.gz", 50), {"max_tokens": 20}),
        (lambda d: DATA / "uniprot_head.fasta", {}),
        (lambda d: DATA / "glosses.txt", {}),
        (lambda d: DATA / "amp_head.csv", {"label": "label"}),
        (lambda d: DATA / "freesolv_head.csv", {"label": "expt"}),
        (lambda d: DATA / "rotten_head.csv", {"label": "category"}),
        (lambda d: write_table(d / "t.csv"), {"label": "y"}),
        (lambda d: DATA / "ItalyPowerDemand_head.ts", {}),
        (lambda d: DATA / "mnist_png", {"patch": 7}),
        (lambda d: write_sets(d / "s.npz"), {"modality": "set"}),
        (lambda d: "digits", {}),
    ],
    ids=[
        "fasta",
        "fasta-gz-cut",
        "uniprot",
        "text",
        "protein-csv",
        "smiles-csv",
        "text-csv",
        "table",
        "series",
        "images",
        "sets",
        "built-in",
    ],
)
def test_a_store_gives_the_model_the_tokens_of_the_in_memory_path(tmp_path, make, settings):
    source = make(tmp_path)
    memory, stored = round_trip(tmp_path, DataConfig(name=str(source), **settings), workers=1, chunk=7)
    assert_same(memory, stored)


def test_smiles_lines_stream_in_parallel_with_the_scaffold_split(tmp_path):
    source = tmp_path / "m.smi"
    molecules = ["CCO", "c1ccccc1O", "c1ccccc1N", "C1CCCCC1", "CC(=O)O", "c1ccncc1", "not-a-smiles", "CCN", "C1CC1C"]
    source.write_text("\n".join(f"{m} mol{i}" for i, m in enumerate(molecules * 3)) + "\n")
    config = DataConfig(name=str(source), on_bad_record="skip")
    memory, stored = round_trip(tmp_path, config, workers=2, chunk=4)
    assert_same(memory, stored)
    assert stored.notes["skipped"] == 3 and len(stored) == 24


def test_preparing_with_several_processes_and_chunk_sizes_writes_the_same_store(tmp_path):
    source = write_fasta(tmp_path / "p.fasta", 300)
    prepare(DataConfig(name=str(source)), tmp_path / "one", workers=1, chunk=1000)
    prepare(DataConfig(name=str(source)), tmp_path / "two", workers=2, chunk=16)
    one, two = (load_dataset(DataConfig(name=str(tmp_path / n))) for n in ("one", "two"))
    assert one.notes["fingerprint"] == two.notes["fingerprint"]


def test_cuts_at_max_tokens_are_counted_reported_and_kept(tmp_path, capsys):
    source = tmp_path / "p.fasta"
    source.write_text(">a\nACDEFGHIKL\n>b\nACD\n>c\nACDEFGHIKLMNPQRSTVWY\n>d\nACDEF\n")
    prepare(DataConfig(name=str(source), max_tokens=8), tmp_path / "store", workers=1)
    err = capsys.readouterr().err
    assert "2 of 4 samples are longer than data.max_tokens=8" in err and "the longest has 20 tokens" in err
    stored = load_dataset(DataConfig(name=str(tmp_path / "store")))
    assert stored.notes["cut"] == {"max_tokens": 8, "samples": 2, "longest": 20}
    assert load_dataset(DataConfig(name=str(source), max_tokens=8)).notes["cut"]["samples"] == 2


def test_bad_records_are_counted_in_the_store_or_stop_preparation(tmp_path):
    source = tmp_path / "p.fasta"
    source.write_text(">a\nACDEF\n>b\nAC1DE\n>c\nACDEFG\n>d\n>e\nACDE\n")
    with pytest.raises(UserError, match=r"p.fasta, line 4: record 'b': letter '1'"):
        prepare(DataConfig(name=str(source)), tmp_path / "store", workers=1)
    assert not (tmp_path / "store").exists() and not list(tmp_path.glob(".store.partial-*"))
    prepare(DataConfig(name=str(source), on_bad_record="skip"), tmp_path / "store", workers=1)
    stored = load_dataset(DataConfig(name=str(tmp_path / "store")))
    assert stored.notes["skipped"] == 2 and list(stored.ids) == ["a", "c", "e"]


def kill_after_first_chunk(source: str, out: str) -> None:
    add = StoreWriter.add_ragged

    def add_then_die(self, *args):
        add(self, *args)
        os.kill(os.getpid(), signal.SIGKILL)

    StoreWriter.add_ragged = add_then_die  # type: ignore[method-assign]
    prepare(DataConfig(name=source), Path(out), workers=1, chunk=10)


def test_a_killed_preparation_leaves_no_store_and_the_next_one_cleans_up(tmp_path):
    source = write_fasta(tmp_path / "p.fasta", 100)
    child = multiprocessing.get_context("fork").Process(
        target=kill_after_first_chunk, args=(str(source), str(tmp_path / "s"))
    )
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert not (tmp_path / "s").exists() and len(list(tmp_path.glob(".s.partial-*"))) == 1
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset(DataConfig(name=str(tmp_path / "s")))
    prepare(DataConfig(name=str(source)), tmp_path / "s", workers=1)
    assert is_store(tmp_path / "s") and not list(tmp_path.glob(".s.partial-*"))


def test_a_store_of_a_changed_file_is_refused(tmp_path):
    source = write_fasta(tmp_path / "p.fasta", 20)
    prepare(DataConfig(name=str(source)), tmp_path / "store", workers=1)
    with open(source, "a") as f:
        f.write(">new\nACDE\n")
    with pytest.raises(
        UserError, match=r"store was prepared from .*p.fasta, which has changed since; prepare it again"
    ):
        load_dataset(DataConfig(name=str(tmp_path / "store")))
    source.unlink()
    with pytest.raises(UserError, match="which is gone since"):
        load_dataset(DataConfig(name=str(tmp_path / "store")))


def test_a_store_keeps_its_settings(tmp_path):
    source = write_fasta(tmp_path / "p.fasta", 20)
    prepare(DataConfig(name=str(source), max_tokens=32), tmp_path / "store", workers=1)
    config = DataConfig(name=str(tmp_path / "store"))
    assert load_dataset(config).spec.max_tokens == 32 and config.max_tokens == 32  # a default takes the store's
    with pytest.raises(UserError, match="prepared with data.max_tokens=32, not 64"):
        load_dataset(DataConfig(name=str(tmp_path / "store"), max_tokens=64))
    with pytest.raises(UserError, match="exists and is not a store"):
        prepare(DataConfig(name=str(source)), tmp_path / "p.fasta", workers=1)


def test_shards_are_one_corpus(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    first, second = write_fasta(shards / "a.fasta", 30, seed=1), write_fasta(shards / "b.fasta.gz", 20, seed=2)
    whole = tmp_path / "whole.fasta"
    whole.write_text(first.read_text() + gzip.decompress(second.read_bytes()).decode())
    memory = load_dataset(DataConfig(name=str(whole)))
    for name in (str(shards), str(shards / "*.fasta*")):
        one_step = load_dataset(DataConfig(name=name))
        np.testing.assert_array_equal(one_step.tokens.inputs, memory.tokens.inputs)
        assert one_step.ids == memory.ids
    prepare(DataConfig(name=str(shards)), tmp_path / "store", workers=1, chunk=8)
    assert_same(memory, load_dataset(DataConfig(name=str(tmp_path / "store"))))


def test_csv_shards_are_one_table(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    lines = (DATA / "amp_head.csv").read_text().splitlines()
    (shards / "1.csv").write_text("\n".join(lines[:6]) + "\n")
    (shards / "2.csv").write_text("\n".join([lines[0], *lines[6:]]) + "\n")
    one = load_dataset(DataConfig(name=str(shards), label="label"))
    whole = load_dataset(DataConfig(name=str(DATA / "amp_head.csv"), label="label"))
    np.testing.assert_array_equal(one.tokens.inputs, whole.tokens.inputs)
    np.testing.assert_array_equal(one.labels, whole.labels)


def tiny(name: str, steps: int) -> Config:
    config = Config()
    config.data.name = name
    config.model.dim, config.model.depth, config.model.decoder_dim, config.model.decoder_depth = 32, 2, 32, 1
    config.train.steps, config.train.batch_size, config.train.log_every, config.train.checkpoint_every = steps, 16, 2, 4
    return config


def test_training_on_a_store_equals_training_in_memory_and_resumes_bitwise(tmp_path):
    source = write_fasta(tmp_path / "p.fasta", 120, longest=80)
    prepare(DataConfig(name=str(source)), tmp_path / "store", workers=1)
    store = str(tmp_path / "store")
    pretrain(tiny(str(source), 8), tmp_path / "memory")
    pretrain(tiny(store, 8), tmp_path / "straight")
    pretrain(tiny(store, 8), tmp_path / "resumed", stop_after=4)
    pretrain(load_checkpoint(tmp_path / "resumed").config, tmp_path / "resumed", resume=True)
    a, b, c = (load_checkpoint(tmp_path / n) for n in ("memory", "straight", "resumed"))
    assert a.step == b.step == c.step == 8
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name
        assert torch.equal(b.model[name], c.model[name]), name


def test_data_prepare_on_the_command_line(tmp_path, capsys):
    source = write_fasta(tmp_path / "p.fasta", 20)
    assert (
        main(["data", "prepare", str(source), "--out", str(tmp_path / "s"), "data.max_tokens=16", "--workers", "1"])
        == 0
    )
    assert "prepared 20 samples of protein" in capsys.readouterr().out
    assert load_dataset(DataConfig(name=str(tmp_path / "s"))).spec.max_tokens == 16
    assert main(["data", "prepare", str(source)]) == 2
    assert "name the store with --out STORE" in capsys.readouterr().err
    assert main(["data", "prepare", str(source), "--out", str(tmp_path / "t"), "train.steps=3"]) == 2
    shutil.rmtree(tmp_path / "s")


def test_each_rank_reads_its_share_of_the_global_batch_from_the_store(tmp_path):
    from anymae.distributed import Rank
    from anymae.train import batch_order

    source = write_fasta(tmp_path / "p.fasta", 90)
    memory, stored = round_trip(tmp_path, DataConfig(name=str(source)), workers=1)
    train = memory.splits["train"]
    for _, index in zip(range(4), batch_order(len(train), 8, seed=3, start=5)):
        for rank in (Rank(rank=0, world=2), Rank(rank=1, world=2)):
            rows = train[rank.share(index)]
            a, b = memory.tokens.batch(rows, True), stored.tokens.batch(stored.splits["train"][rank.share(index)], True)
            assert torch.equal(a.ids, b.ids) and torch.equal(a.valid, b.valid) and torch.equal(a.index, b.index)


def test_embed_streams_features_and_writes_their_ids_beside_them(tmp_path, capsys):
    source = tmp_path / "p.fasta"
    source.write_text("".join(f">seq{i} text\n{'ACDEFGHIKL'[i % 7 :]}MNPQ\n" for i in range(40)) + ">bad\nAC1\n")
    prepare(DataConfig(name=str(source), on_bad_record="skip"), tmp_path / "store", workers=1)
    pretrain(tiny(str(tmp_path / "store"), 2), tmp_path / "run")
    out = tmp_path / "f.npy"
    assert main(["embed", "--checkpoint", str(tmp_path / "run"), "--split", "test", "--out", str(out)]) == 0
    stored = load_dataset(DataConfig(name=str(tmp_path / "store")))
    test = stored.splits["test"]
    assert (tmp_path / "f.ids.txt").read_text().splitlines() == [f"seq{i}" for i in test]
    memory = tmp_path / "m.npy"
    argv = ["embed", "--checkpoint", str(tmp_path / "run"), "--data", str(source), "--on-bad-record", "skip"]
    assert main([*argv, "--split", "test", "--out", str(memory)]) == 0
    np.testing.assert_array_equal(np.load(out), np.load(memory))
    assert (tmp_path / "m.ids.txt").read_text() == (tmp_path / "f.ids.txt").read_text()


def test_probe_caps_validation_and_test_as_it_caps_training(tmp_path):
    from anymae.config import ProbeConfig
    from anymae.evaluate import probe_splits

    source = write_table(tmp_path / "t.csv", n=200)
    prepare(DataConfig(name=str(source), label="y"), tmp_path / "store", workers=1)
    stored = load_dataset(DataConfig(name=str(tmp_path / "store")))
    splits = probe_splits(stored, ProbeConfig(max_train=50, max_eval=20))
    assert {k: len(v) for k, v in splits.items()} == {"train": 50, "val": 20, "test": 20}
    for part, index in splits.items():
        assert set(index) <= set(stored.splits[part]) and (np.diff(index) > 0).all()


def test_json_lines_are_read_by_their_sample_field_with_bad_records_counted(tmp_path):
    source = tmp_path / "r.jsonl"
    records = ['{"id": 1, "sequence": "ACDEFG"}', '{"id": 2}', "not json", '{"sequence": "MKV"}', '{"sequence": "AC1"}']
    source.write_text("\n".join(records) + "\n")
    with pytest.raises(UserError, match=r"r.jsonl, line 2: field 'sequence' is missing"):
        load_dataset(DataConfig(name=str(source)))
    memory = load_dataset(DataConfig(name=str(source), on_bad_record="skip"))
    assert memory.spec.name == "protein" and memory.notes["skipped"] == 3 and memory.ids == ["line 1", "line 4"]
    prepare(DataConfig(name=str(source), on_bad_record="skip"), tmp_path / "store", workers=1)
    assert_same(memory, load_dataset(DataConfig(name=str(tmp_path / "store"))))


BROKEN_MOLECULE = "broken\n  RDKit\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n"


def write_sdf(path: Path, molecules: list[tuple], broken_at: int | None = 1) -> Path:
    """An SD file of (name, SMILES, {property: value}) records, with one RDKit cannot read inserted at `broken_at`."""
    from rdkit import Chem

    blocks = []
    for name, smiles, properties in molecules:
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", name)
        fields = "".join(f">  <{key}>\n{value}\n\n" for key, value in properties.items())
        blocks.append(Chem.MolToMolBlock(mol) + "\n" + fields + "$$$$\n")
    if broken_at is not None:
        blocks.insert(broken_at, BROKEN_MOLECULE)
    path.write_text("".join(blocks))
    return path


def test_sd_files_stream_molecules_with_unreadable_records_counted(tmp_path):
    molecules = [("ethanol", "CCO", {}), ("phenol", "c1ccccc1O", {}), ("acid", "CC(=O)O", {})]
    source = write_sdf(tmp_path / "m.sdf", molecules)
    with pytest.raises(UserError, match=r"m.sdf, record 2: RDKit cannot read this molecule"):
        load_dataset(DataConfig(name=str(source)))
    memory = load_dataset(DataConfig(name=str(source), on_bad_record="skip"))
    assert memory.spec.name == "smiles" and memory.ids == ["ethanol", "phenol", "acid"] and memory.notes["skipped"] == 1
    prepare(DataConfig(name=str(source), on_bad_record="skip"), tmp_path / "store", workers=1)
    assert_same(memory, load_dataset(DataConfig(name=str(tmp_path / "store"))))


MOLECULES = [
    ("ethanol", "CCO", {"logp": "-0.31", "kind": "alcohol"}),
    ("phenol", "c1ccccc1O", {"logp": "1.46", "kind": "alcohol"}),
    ("acid", "CC(=O)O", {"kind": "acid"}),  # no logp
    ("benzene", "c1ccccc1", {"logp": "2.13", "kind": "arene"}),
    ("propanol", "CCCO", {"logp": "0.25", "kind": "alcohol"}),
    ("toluene", "Cc1ccccc1", {"logp": "2.73", "kind": "arene"}),
]


def test_sd_properties_are_columns_and_label_reads_one(tmp_path, capsys):
    source = write_sdf(tmp_path / "m.sdf", MOLECULES)  # record 2 unreadable; acid is record 4
    logp = load_dataset(DataConfig(name=str(source), label="logp", on_bad_record="skip"))
    assert logp.task == "regression" and logp.notes["skipped_at"] == ["record 2", "record 4"]
    assert logp.ids == ["ethanol", "phenol", "benzene", "propanol", "toluene"]
    np.testing.assert_allclose(logp.labels, [-0.31, 1.46, 2.13, 0.25, 2.73], rtol=1e-6)
    kinds = load_dataset(DataConfig(name=str(source), label="KIND", on_bad_record="skip"))  # as for a CSV's columns
    assert kinds.task == "classification" and kinds.notes["classes"] == ["acid", "alcohol", "arene"]
    assert kinds.notes["skipped"] == 1 and list(kinds.labels) == [1, 1, 0, 2, 1, 2]
    unlabelled = load_dataset(DataConfig(name=str(source), on_bad_record="skip"))
    np.testing.assert_array_equal(kinds.tokens.inputs, unlabelled.tokens.inputs)  # the same molecules, read alike
    prepare(DataConfig(name=str(source), label="logp", on_bad_record="skip"), tmp_path / "store", workers=1)
    assert_same(logp, load_dataset(DataConfig(name=str(tmp_path / "store"))))
    capsys.readouterr()
    readable = write_sdf(tmp_path / "r.sdf", MOLECULES, broken_at=None)
    argv = ["pretrain", "--data", str(readable), "--label", "logp", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "r.sdf, record 3: label 'logp' is missing" in err
    assert main([*argv[:3], "--label", "mass", *argv[5:]]) == 2
    assert "no column 'mass' (--label); columns: smiles, logp, kind" in capsys.readouterr().err
    assert main([*argv, "--column", "kind"]) == 2
    assert "--column (data.column) names the sample column of a CSV / TSV / Parquet table" in capsys.readouterr().err


def write_records(path: Path) -> Path:
    records = [
        '{"name": "a", "body": "a first review of it", "stars": 5}',
        '{"name": "b", "body": "then a second one", "stars": 1}',
        "{not json",
        '{"name": "c", "body": "the third says more", "stars": 4}',
        '{"name": "d", "body": "no stars given"}',
        '{"name": "e", "body": 17, "stars": 2}',
        '{"name": "f", "body": "the last of them", "stars": 2}',
        "",
    ]
    path.write_text("\n".join(records))
    return path


def test_json_lines_take_a_label_field_and_a_sample_field_named_by_column(tmp_path, capsys):
    source = write_records(tmp_path / "r.jsonl")
    config = DataConfig(name=str(source), column="body", label="stars", on_bad_record="skip")
    labelled = load_dataset(config)
    assert labelled.spec.name == "text" and labelled.notes["skipped_at"] == ["line 3", "line 6", "line 5"]
    assert labelled.ids == ["line 1", "line 2", "line 4", "line 7"] and labelled.task == "classification"
    assert labelled.notes["classes"] == ["1", "2", "4", "5"] and list(labelled.labels) == [3, 0, 2, 1]
    unlabelled = load_dataset(DataConfig(name=str(source), column="body", on_bad_record="skip"))
    assert unlabelled.notes["skipped_at"] == ["line 3", "line 6"] and len(unlabelled) == 5
    prepare(config, tmp_path / "store", workers=1)
    assert_same(labelled, load_dataset(DataConfig(name=str(tmp_path / "store"))))
    with pytest.raises(UserError, match=r"r.jsonl, line 1: no field 'text' \(--column\); fields: name, body, stars"):
        load_dataset(DataConfig(name=str(source), column="text"))
    capsys.readouterr()
    argv = ["pretrain", "--data", str(source), "--column", "body", "--label", "stars", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "r.jsonl, line 3: not a JSON object (use --on-bad-record skip" in err


def test_labelled_shards_count_every_files_bad_records(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    lines = write_records(tmp_path / "r.jsonl").read_text().splitlines()
    (shards / "1.jsonl").write_text("\n".join(lines[:3]) + "\n")
    (shards / "2.jsonl").write_text("\n".join(lines[3:]) + "\n")
    one = load_dataset(DataConfig(name=str(shards), column="body", label="stars", on_bad_record="skip"))
    assert one.notes["skipped_at"] == ["1.jsonl, line 3", "2.jsonl, line 3", "2.jsonl, line 2"]  # read, then labels
    assert one.ids == ["1.jsonl, line 1", "1.jsonl, line 2", "2.jsonl, line 1", "2.jsonl, line 4"]
    table = DATA / "amp_head.csv"
    rows = table.read_text().splitlines()
    (shards / "1.jsonl").unlink()
    (shards / "2.jsonl").unlink()
    (shards / "1.csv").write_text("\n".join(rows[:6]) + "\n")
    (shards / "2.csv").write_text("\n".join([rows[0], rows[6], "too,many,fields,here", *rows[7:]]) + "\n")
    csv = load_dataset(DataConfig(name=str(shards), label="label", on_bad_record="skip"))
    assert csv.notes["skipped_at"] == ["2.csv, line 3"] and len(csv) == len(rows) - 1  # less the header


def test_column_names_the_sample_column_of_a_table(tmp_path):
    source = tmp_path / "t.csv"
    source.write_text("title,abstract,y\n" + "".join(f"paper {i},words on topic {i % 3},{i % 2}\n" for i in range(20)))
    with pytest.raises(UserError, match="no column named text or sentence or review for text; columns: title"):
        load_dataset(DataConfig(name=str(source), modality="text", label="y"))
    chosen = load_dataset(DataConfig(name=str(source), column="abstract", label="y"))
    assert chosen.spec.name == "text" and len(chosen) == 20
    assert chosen.spec.to_text(chosen.tokens.inputs[0], chosen.tokens.valid[0]) == "words on topic 0"
    with pytest.raises(UserError, match=r"no column 'summary' \(--column\); columns: title, abstract, y"):
        load_dataset(DataConfig(name=str(source), column="summary"))
    with pytest.raises(UserError, match="data.column .--column. names a column of string samples; tabular reads"):
        load_dataset(DataConfig(name=str(source), column="abstract", modality="tabular"))
    with pytest.raises(UserError, match="--column .data.column. names the sample column"):
        load_dataset(DataConfig(name=str(DATA / "uniprot_head.fasta"), column="x"))


def test_embed_ids_come_from_the_id_column(tmp_path, capsys):
    source = tmp_path / "t.csv"
    rows = [f"m{i},{'CCO' if i % 2 else 'c1ccccc1'}{'C' * (i % 5)},{i % 2}" for i in range(30)]
    source.write_text("compound,smiles,y\n" + "\n".join(rows) + "\n")
    config = tiny(str(source), 2)
    config.data.label = "y"
    pretrain(config, tmp_path / "run")
    out = tmp_path / "f.npy"
    argv = ["embed", "--checkpoint", str(tmp_path / "run"), "--split", "test", "--out", str(out)]
    assert main(argv) == 0
    test = load_dataset(DataConfig(name=str(source), label="y")).splits["test"]
    assert (tmp_path / "f.ids.txt").read_text().splitlines() == [f"line {i + 2}" for i in test]
    features = np.load(out)
    assert main([*argv, "--id", "compound"]) == 0
    assert (tmp_path / "f.ids.txt").read_text().splitlines() == [f"m{i}" for i in test]
    np.testing.assert_array_equal(np.load(out), features)  # the same rows, named by the column
    capsys.readouterr()
    assert main([*argv, "--id", "name"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "t.csv: no column 'name' (--id); columns: compound, smiles, y" in err
    assert main([*argv, "--data", str(DATA / "uniprot_head.fasta"), "--id", "compound"]) == 2
    assert "--id (data.id) names a column of a CSV / TSV / Parquet table" in capsys.readouterr().err


def test_an_id_column_is_no_feature_and_a_store_keeps_it(tmp_path):
    source = write_table(tmp_path / "t.csv")
    named = tmp_path / "named.csv"
    lines = source.read_text().splitlines()
    named.write_text("\n".join([f"key,{lines[0]}", *(f"k{i},{line}" for i, line in enumerate(lines[1:]))]) + "\n")
    plain = load_dataset(DataConfig(name=str(source), label="y"))
    keyed = load_dataset(DataConfig(name=str(named), label="y", id="key"))
    assert keyed.spec == plain.spec and keyed.ids == [f"k{i}" for i in range(len(lines) - 1)]
    np.testing.assert_array_equal(keyed.tokens.inputs, plain.tokens.inputs)
    prepare(DataConfig(name=str(named), label="y", id="key"), tmp_path / "store", workers=1)
    assert_same(keyed, load_dataset(DataConfig(name=str(tmp_path / "store"))))
    with pytest.raises(UserError, match=r"was prepared with data.id='key', not 'other'"):
        load_dataset(DataConfig(name=str(tmp_path / "store"), id="other"))


@pytest.mark.parametrize("make", [lambda d: DATA / "uniprot_head.fasta", lambda d: write_table(d / "t.csv")])
def test_released_pages_read_back_the_same_tokens(tmp_path, monkeypatch, make):
    """A reader lets go of the mapped pages it read (they stay in the page cache) every
    KEEP_MAPPED_BYTES; the rows read after that are the same (here: released at every read)."""
    from anymae.data import store

    released = []
    monkeypatch.setattr(store, "KEEP_MAPPED_BYTES", 1)
    monkeypatch.setattr(
        store.StoredTokens, "release", lambda self, real=store.StoredTokens.release: released.append(real(self))
    )
    memory, stored = round_trip(tmp_path, DataConfig(name=str(make(tmp_path))), workers=1, chunk=7)
    assert_same(memory, stored)
    assert len(released) >= 2  # every take: the whole read and each batch


def test_a_run_on_a_store_reads_no_more_than_its_batches_and_resumes_only_on_that_store(tmp_path, monkeypatch):
    """The resume check's content hash of a store is its prepared fingerprint: starting a run reads the
    rows of its batches only (hashing every token of a 1M store took 85 s and 4.5 GB), and a store
    prepared again from changed data of the same shape is refused on resume."""
    from anymae.data import store as store_module

    source = write_fasta(tmp_path / "p.fasta", 60, longest=40)
    prepare(DataConfig(name=str(source)), tmp_path / "store", workers=1)
    rows_read = []
    real_take = store_module.StoredTokens.take
    monkeypatch.setattr(
        store_module.StoredTokens, "take", lambda self, index: rows_read.append(len(index)) or real_take(self, index)
    )
    pretrain(tiny(str(tmp_path / "store"), 4), tmp_path / "run", stop_after=2)
    assert 0 < sum(rows_read) <= 3 * 16, rows_read  # 2 steps of 16 and the samples of the mask diagnostics
    write_fasta(source, 60, seed=1, longest=40)  # other sequences, the same count
    prepare(DataConfig(name=str(source)), tmp_path / "store", workers=1)
    with pytest.raises(UserError, match="changed data"):
        pretrain(load_checkpoint(tmp_path / "run").config, tmp_path / "run", resume=True)
