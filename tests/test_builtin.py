"""Built-in datasets: the registry says everything `data list` shows; carriers are read by path
and pinned; a dataset that is not installed names the exact install command. Datasets whose
carrier is not installed here are skipped (CI installs what scripts/setup.sh installs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import BUILTINS, load_dataset
from anymae.data.carriers import Carrier
from anymae.data.files import MODALITIES
from anymae.errors import UserError

TASKS = {"none": "none", "regression": "rmse"}


def ready(name: str):
    if not BUILTINS[name].ready():
        pytest.skip(f"{name} not installed here ({BUILTINS[name].install})")
    return load_dataset(DataConfig(name=name))


@pytest.mark.parametrize("name", list(BUILTINS))
def test_every_builtin_declares_what_data_list_shows(name):
    b = BUILTINS[name]
    assert b.modality in MODALITIES and b.size and b.predicts and b.source and b.license
    assert b.metric in ("accuracy", "roc_auc", "rmse", "none") and (b.metric == "none") == (b.predicts == "none")
    assert b.install or b.ready()  # a dataset that may be missing says how to install it
    if b.install.startswith("pip install --no-deps"):
        assert "==" in b.install  # carriers are pinned


def test_data_list_shows_every_dataset_and_how_to_install_the_missing(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name, b in BUILTINS.items():
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert b.modality in line and b.license in line
        assert ("yes" in line) if b.ready() else (b.missing() in line)


def test_a_missing_carrier_names_the_exact_install_command():
    carrier = Carrier("anymae_no_such_carrier", "1.2.3")
    assert not carrier.ready()
    with pytest.raises(UserError, match=r"install it with: pip install --no-deps anymae_no_such_carrier==1\.2\.3"):
        carrier.path("data/x.csv")


def test_a_builtin_that_is_not_ready_says_the_command(monkeypatch):
    import dataclasses

    b = BUILTINS["amp"]
    missing = Carrier("modlamp", "0.0.0-not-installed")
    monkeypatch.setitem(BUILTINS, "amp", dataclasses.replace(b, needs=(missing,)))
    assert main(["pretrain", "--data", "amp", "--out", "/nonexistent/run"]) == 2
    with pytest.raises(UserError, match=r"anymae data install amp \(that runs: pip install --no-deps modlamp==0\.0"):
        load_dataset(DataConfig(name="amp"))


@pytest.mark.parametrize(
    "name,n,modality,task,classes",
    [
        ("amp", 5200, "protein", "classification", 2),
        ("acp", 826, "protein", "classification", 2),
        ("breast-cancer", 569, "tabular", "classification", 2),
        ("wine", 178, "tabular", "classification", 3),
        ("letter", 20000, "tabular", "classification", 26),
        ("ItalyPowerDemand", 1096, "series", "classification", 2),
        ("GunPoint", 200, "series", "classification", 2),
        ("freesolv", 642, "smiles", "regression", 0),
        ("mnist-5k", 5000, "image", "classification", 10),
    ],
)
def test_builtin_sizes_splits_and_labels(name, n, modality, task, classes):
    dataset = ready(name)
    assert len(dataset) == n and dataset.spec.name == modality and dataset.task == task
    parts = [set(dataset.splits[s].tolist()) for s in ("train", "val", "test")]
    assert sum(map(len, parts)) == n and set().union(*parts) == set(range(n))
    if classes:
        assert len(np.unique(dataset.labels)) == classes
    assert dataset.source and dataset.license


def test_carriers_are_read_by_path_never_imported():
    ready("amp")
    assert "modlamp" not in sys.modules


def test_ucr_keeps_the_official_test_set():
    dataset = ready("ItalyPowerDemand")
    assert len(dataset.splits["test"]) == 1029 and len(dataset.splits["train"]) + len(dataset.splits["val"]) == 67


def test_scaffold_split_never_shares_a_scaffold_between_splits():
    from anymae.chem import scaffold

    dataset = ready("freesolv")
    smiles = [dataset.spec.to_text(i, v) for i, v in zip(dataset.tokens.inputs, dataset.tokens.valid)]
    scaffolds = {s: {scaffold(smiles[i]) for i in index} for s, index in dataset.splits.items()}
    assert not scaffolds["train"] & scaffolds["test"]
    assert not scaffolds["train"] & scaffolds["val"] and not scaffolds["val"] & scaffolds["test"]


def test_scaffold_split_on_a_few_molecules():
    pytest.importorskip("rdkit")
    from anymae.chem import scaffold, scaffold_splits

    smiles = ["c1ccccc1O", "c1ccccc1N", "c1ccccc1C", "C1CCCCC1O", "C1CCCCC1N", "CCO", "CCN", "c1ccncc1", "c1ccoc1"]
    splits = scaffold_splits(smiles, val=0.2, test=0.2)
    groups = {s: {scaffold(smiles[i]) for i in index} for s, index in splits.items()}
    assert sum(len(index) for index in splits.values()) == len(smiles)
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    assert not groups["val"] & groups["test"]


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_recipes_load_and_name_a_builtin_dataset(recipe):
    from anymae.config import load_config

    config = load_config(recipe, [])
    assert config.data.name in BUILTINS and config.train.steps <= 3000  # at most about 15 min on 2 cores
    assert config.masking.ratio.startswith("fixed:")
