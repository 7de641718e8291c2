"""DNA built-ins from UCSC dm3: the 2,000 bp upstream of every annotated Drosophila gene.

The file (Biostrings' extdata, from Debian r-bioc-biostrings) holds 26,454 records for 17,295
loci: transcripts of one gene that start at the same place share one upstream sequence, and the
file is all lower case (read as the same bases). Records are oriented on the gene's strand, so
the last base of each is next to the transcription start site (TSS).

Both datasets keep each distinct sequence once and split by locus cluster: upstream regions that
overlap (on either strand) form one cluster, and a cluster lies in one split (60/20/20, seed 0),
the same split in both datasets, so pretraining on `dm3-upstream`'s training split never sees a
sequence the task tests on.
- `dm3-upstream` (corpus): each sequence cut into windows of data.max_tokens * data.kmer bases,
  counted back from the TSS (the last, shorter window at the far end is kept).
- `dm3-shuffle` (task): 5,000 sequences (seed 0), each as its TSS-proximal window (the same
  length) and as that window dinucleotide-shuffled (Altschul-Erickson: the same 1- and 2-mer
  counts, motifs destroyed, the usual negative control for promoter models); label 1 = real.
  A sequence and its shuffle share a cluster, so they never straddle splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anymae.config import DataConfig
from anymae.data.carriers import Debian
from anymae.data.dataset import Dataset
from anymae.data.records import BadRecords
from anymae.data.sequences import read_fasta, strings_dataset
from anymae.errors import UserError

DM3 = Debian(
    "r-bioc-biostrings",
    "usr/lib/R/site-library/Biostrings/extdata/dm3_upstream2000.fa.gz",
    version="2.66.0-1",
    unpack="biostrings",
)
TASK_SEQUENCES = 5000
SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


def locus(record: str) -> tuple[str, int]:
    """(chromosome, start) from an id such as NM_078863_up_2000_chr2L_16764737_f."""
    parts = record.rsplit("_", 3)
    if len(parts) != 4 or not parts[2].removeprefix("-").isdigit() or parts[3] not in ("f", "r"):
        raise UserError(f"dm3 upstream: record '{record}' has no chromosome_start_strand at its end")
    return parts[1], int(parts[2])


def clusters(loci: list[tuple[str, int]], lengths: list[int]) -> np.ndarray:
    """A cluster id per region: regions that overlap, directly or through others, share one."""
    order = sorted(range(len(loci)), key=lambda i: loci[i])
    ids = np.zeros(len(loci), dtype=np.int64)
    cluster, chromosome, end = -1, None, -1
    for i in order:
        name, start = loci[i]
        if name != chromosome or start > end:
            cluster, chromosome, end = cluster + 1, name, -1
        ids[i] = cluster
        end = max(end, start + lengths[i] - 1)
    return ids


def split_of_clusters(n_clusters: int) -> np.ndarray:
    """0 = train, 1 = val, 2 = test for each cluster (a fixed random 60/20/20, seed 0)."""
    order = np.random.default_rng(0).permutation(n_clusters)
    parts = np.zeros(n_clusters, dtype=np.int64)
    n_val, n_test = round(n_clusters * SPLIT["val"]), round(n_clusters * SPLIT["test"])
    parts[order[:n_test]] = 2
    parts[order[n_test : n_test + n_val]] = 1
    return parts


def read_upstream() -> tuple[list[str], list[str], np.ndarray]:
    """(distinct sequences, their places, the locus cluster of each), in file order."""
    path = DM3.path()
    if path is None:
        raise UserError(f"dm3 upstream: not installed; install it with: {DM3.command}")
    ids, sequences, places = read_fasta(path, BadRecords(path, "fail"))
    groups = clusters([locus(record) for record in ids], [len(s) for s in sequences])
    seen, keep = set(), []
    for i, sequence in enumerate(sequences):
        key = sequence.upper()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return [sequences[i].upper() for i in keep], [places[i] for i in keep], groups[keep]


@dataclass
class Windows:
    samples: list[str]
    places: list[str]
    parts: np.ndarray  # 0 train, 1 val, 2 test, per window
    proximal: np.ndarray  # per sequence, the index of its TSS-proximal window

    def splits(self, keep: np.ndarray) -> dict[str, np.ndarray]:
        """Splits of the kept samples (make_dataset's callable form)."""
        kept = self.parts[keep]
        return {name: np.flatnonzero(kept == k) for k, name in enumerate(SPLIT)}


def cut(sequences: list[str], places: list[str], groups: np.ndarray, size: int) -> Windows:
    """Windows of `size` bases counted back from the TSS (the shorter one at the far end kept). Loci
    holding an identical window (duplicated genes, repeats) join one cluster before the split."""
    parent = list(range(int(groups.max()) + 1))

    def root(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    samples, sample_places, owners, proximal, first = [], [], [], [], {}
    for sequence, place, group in zip(sequences, places, groups):
        proximal.append(len(samples))
        for end in range(len(sequence), 0, -size):
            text = sequence[max(0, end - size) : end]
            samples.append(text)
            sample_places.append(f"{place}, bases {max(0, end - size) + 1}-{end}")
            owners.append(int(group))
            a, b = root(int(group)), root(first.setdefault(text, int(group)))
            parent[max(a, b)] = min(a, b)
    merged = np.array([root(c) for c in range(len(parent))])
    parts = split_of_clusters(len(parent))[merged]
    return Windows(samples, sample_places, parts[owners], np.array(proximal))


def window(config: DataConfig) -> int:
    return config.max_tokens * config.kmer


def load_dm3_upstream(config: DataConfig, entry) -> Dataset:
    windows = cut(*read_upstream(), window(config))
    bad = BadRecords(DM3.path(), "fail")
    return strings_dataset("dna", windows.samples, windows.places, bad, config, splits=windows.splits, **entry.about())


def dinucleotide_shuffle(sequence: str, rng: np.random.Generator) -> str:
    """A random sequence with exactly the same dinucleotide counts (and first and last letter).

    Altschul & Erickson (1985): pick for every letter but the last one a random last way out such
    that these form a tree towards the last letter (retry until they do), shuffle each letter's
    other ways out, and walk the resulting Eulerian path from the first letter."""
    if len(sequence) < 3:
        return sequence
    successors: dict[str, list[str]] = {}
    for a, b in zip(sequence, sequence[1:]):
        successors.setdefault(a, []).append(b)
    last = sequence[-1]
    while True:
        exits = {v: out[int(rng.integers(len(out)))] for v, out in successors.items() if v != last}
        if all(reaches(v, exits, last) for v in exits):
            break
    orders = {}
    for v, out in successors.items():
        rest = list(out)
        if v != last:
            rest.remove(exits[v])
        rest = [rest[i] for i in rng.permutation(len(rest))]
        orders[v] = rest + ([exits[v]] if v != last else [])
    position = dict.fromkeys(orders, 0)
    walk = [sequence[0]]
    for _ in range(len(sequence) - 1):
        v = walk[-1]
        walk.append(orders[v][position[v]])
        position[v] += 1
    return "".join(walk)


def reaches(v: str, exits: dict[str, str], last: str) -> bool:
    seen = set()
    while v != last:
        if v in seen:
            return False
        seen.add(v)
        v = exits[v]
    return True


def load_dm3_shuffle(config: DataConfig, entry) -> Dataset:
    windows = cut(*read_upstream(), window(config))
    rng = np.random.default_rng(0)
    chosen = np.sort(rng.permutation(len(windows.proximal))[:TASK_SEQUENCES])
    samples, places, labels, parts = [], [], [], []
    for w in windows.proximal[chosen]:
        real = windows.samples[w]
        for label, text in ((1, real), (0, dinucleotide_shuffle(real, rng))):
            samples.append(text)
            places.append(windows.places[w] + ("" if label else ", shuffled"))
            labels.append(label)
            parts.append(windows.parts[w])
    pairs = Windows(samples, places, np.array(parts), np.arange(len(samples)))
    return strings_dataset(
        "dna",
        samples,
        places,
        BadRecords(DM3.path(), "fail"),
        config,
        labels=labels,
        task="classification",
        splits=pairs.splits,
        notes={"classes": ["shuffled", "real"]},
        **entry.about(),
    )
