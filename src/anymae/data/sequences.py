"""Strings as samples: FASTA (proteins, DNA), one sample per line (text, SMILES, sequences),
and the step from strings (+ labels) to a Dataset for each string modality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Cuts, Dataset, Splits, make_dataset, random_splits
from anymae.data.records import BadRecords, decode, numbered_lines, raw_lines
from anymae.errors import UserError
from anymae.tokens import (
    DNA_ALPHABET,
    STRING_SPECS,
    AlphabetSequence,
    ByteSequence,
)

STRING_MODALITIES = tuple(STRING_SPECS)


def read_fasta(path: Path, bad: BadRecords, spec: AlphabetSequence | None = None, limit: int = 0):
    """(record ids, sequences, places) of a FASTA file (plain or .gz); see `fasta_records`.
    `limit`: stop after that many."""
    ids: list[str] = []
    sequences: list[str] = []
    places: list[str] = []
    for name, sequence, place in fasta_records(path, bad, spec):
        if limit and len(ids) >= limit:
            break
        ids.append(name)
        sequences.append(sequence)
        places.append(place)
    return ids, sequences, places


def fasta_records(path: Path, bad: BadRecords, spec: AlphabetSequence | None = None) -> Iterator[tuple[str, str, str]]:
    """(record id, sequence, place) of each record of a FASTA file (plain or .gz), as it is read.
    Sequence lines are joined; a trailing '*' (stop) is dropped. Bad records, always whole (never
    part of one): one with no sequence (cut short, or two headers in a row), one with a line that
    is not UTF-8 text, sequence lines before the first header, and (given `spec`) letters outside
    the alphabet, reported at their own line and column."""
    header: tuple[int, str] | None = None
    parts: list[str] = []
    starts: list[int] = []  # line number of each part
    broken = ""  # what is wrong with the open record (a line that is not text)

    def close() -> tuple[str, str, str] | None:
        if header is None:
            return None
        number, name = header
        if broken:
            bad(f"line {number}", f"record '{name}': {broken}")
            return None
        sequence = "".join(parts).removesuffix("*")
        if not sequence:
            bad(f"line {number}", f"record '{name}' has no sequence (file cut short?)")
            return None
        wrong = None if spec is None else spec.first_invalid(sequence)
        if wrong is not None:
            offsets = np.cumsum([0] + [len(p) for p in parts])
            k = int(np.searchsorted(offsets, wrong, side="right")) - 1
            letter, column = sequence[wrong], wrong - offsets[k] + 1
            bad(
                f"line {starts[k]}",
                f"record '{name}': letter {letter!r} at column {column} is not in the {spec.name} alphabet",
            )
            return None
        return name, sequence, f"line {number} (record '{name}')"

    seen_any, orphans = False, False
    for number, raw in raw_lines(path):
        line, problem = decode(raw)
        seen_any = seen_any or bool(raw.strip())
        if raw.startswith(b">"):
            record = close()
            if record is not None:
                yield record
            if line is None:
                line, broken = raw.decode("utf-8", errors="replace"), f"its header line {problem}"
            else:
                broken = ""
            header, parts, starts = (number, line[1:].split(maxsplit=1)[0] if line[1:].strip() else "?"), [], []
            orphans = False
        elif raw.strip():
            if header is None:
                if not orphans:  # a run of lines before the first header is one bad record
                    bad(f"line {number}", "sequence line before the first '>' header (not FASTA?)")
                orphans = True
                continue
            if line is None:
                broken = broken or f"line {number} {problem}"
                continue
            parts.append(line.strip())
            starts.append(number)
    record = close()
    if record is not None:
        yield record
    if not seen_any:
        raise UserError(f"{path}: the file is empty" + (f" of readable records ({bad.summary()})" if bad.count else ""))


def read_lines(path: Path, bad: BadRecords) -> tuple[list[str], list[str]]:
    """One sample per non-blank line: (samples, places)."""
    samples, places = [], []
    for number, line in numbered_lines(path, bad):
        if line.strip():
            samples.append(line)
            places.append(f"line {number}")
    if not samples and not bad.count:
        raise UserError(f"{path}: the file is empty (expected one sample per line)")
    return samples, places


def guess_alphabet(sequences: list[str]) -> str:
    """'dna' when the first 100 sequences use only A, C, G, T, N; otherwise 'protein'."""
    letters = set("".join(sequences[:100]).upper())
    return "dna" if letters and letters <= set(DNA_ALPHABET) else "protein"


def string_spec(modality: str, max_tokens: int, kmer: int = 1) -> ByteSequence | AlphabetSequence:
    if kmer != 1 and modality != "dna":
        raise UserError(f"data.kmer={kmer} applies to DNA only; this is {modality} data")
    return STRING_SPECS[modality](max_tokens, kmer)


def strings_dataset(
    modality: str,
    samples: list[str],
    places: list[str],
    bad: BadRecords,
    config: DataConfig,
    labels: list | None = None,
    importance: list | None = None,
    splits: Splits = None,
    ids: list[str] | None = None,
    **about,
) -> Dataset:
    """Check each string against its modality's spec (alphabet letters; SMILES that RDKit
    parses, kept in canonical form), then tokenize. Splits are the spec's (scaffolds for
    molecules), else a fixed random 60/20/20 split (seed 0). `about`: name, source, license,
    metric, task (see make_dataset)."""
    spec = string_spec(modality, config.max_tokens, config.kmer)
    if importance is not None and spec.rewrites:
        raise UserError(f"{about['name']}: data.importance does not apply to {modality} (samples are rewritten)")
    kept, kept_places, kept_labels, kept_maps = [], [], [], []
    kept_ids = []
    for i, (sample, place) in enumerate(zip(samples, places)):
        sample, problem = spec.check(sample)
        if problem:
            bad(place, problem)
            continue
        kept.append(sample)
        kept_places.append(place)
        kept_ids.append(place if ids is None else ids[i])
        kept_labels.append(None if labels is None else labels[i])
        kept_maps.append(None if importance is None else importance[i])

    def by_spec(keep: np.ndarray) -> dict[str, np.ndarray]:
        chosen = spec.split([kept[i] for i in keep])
        return chosen if chosen is not None else random_splits(len(keep), seed=0)

    cuts = Cuts(spec.max_tokens)
    cuts.add(np.array([token_length(sample) for sample in kept], dtype=np.int64))
    notes = {**about.pop("notes", {}), **cuts.report(about["name"], len(kept))}
    return make_dataset(
        spec,
        kept,
        kept_places,
        bad,
        labels=None if labels is None else kept_labels,
        importance=None if importance is None else kept_maps,
        splits=by_spec if splits is None else splits,
        ids=kept_ids,
        notes=notes,
        **about,
    )


def token_length(sample: str) -> int:
    """Tokens of a checked string sample before any cut (one a byte; alphabet letters are ASCII)."""
    return len(sample.encode("utf-8"))
