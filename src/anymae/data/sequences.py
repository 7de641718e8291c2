"""Strings as samples: FASTA (proteins, DNA), one sample per line (text, SMILES, sequences),
and the step from strings (+ labels) to a Dataset for each string modality."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data import chem
from anymae.data.dataset import Dataset, random_splits
from anymae.data.records import BadRecords, labels_and_task, numbered_lines
from anymae.errors import UserError
from anymae.tokens import (
    DNA_ALPHABET,
    AlphabetSequence,
    ByteSequence,
    ModalitySpec,
    dna_spec,
    protein_spec,
    smiles_spec,
)

STRING_MODALITIES = ("text", "protein", "dna", "smiles")


def read_fasta(path: Path, bad: BadRecords, spec: AlphabetSequence | None = None, limit: int = 0):
    """(record ids, sequences, places) of a FASTA file (plain or .gz). Sequence lines are joined;
    a trailing '*' (stop) is dropped. Bad records: one with no sequence (cut short, or two
    headers in a row), sequence lines before the first header, and (given `spec`) letters
    outside the alphabet, reported at their own line and column. `limit`: stop after that many."""
    ids: list[str] = []
    sequences: list[str] = []
    places: list[str] = []
    header: tuple[int, str] | None = None
    parts: list[str] = []
    starts: list[int] = []  # line number of each part

    def close() -> None:
        if header is None:
            return
        number, name = header
        sequence = "".join(parts).removesuffix("*")
        if not sequence:
            bad(f"line {number}", f"record '{name}' has no sequence (file cut short?)")
            return
        wrong = None if spec is None else spec.first_invalid(sequence)
        if wrong is not None:
            offsets = np.cumsum([0] + [len(p) for p in parts])
            k = int(np.searchsorted(offsets, wrong, side="right")) - 1
            letter, column = sequence[wrong], wrong - offsets[k] + 1
            bad(
                f"line {starts[k]}",
                f"record '{name}': letter {letter!r} at column {column} is not in the {spec.name} alphabet",
            )
            return
        ids.append(name)
        sequences.append(sequence)
        places.append(f"line {number} (record '{name}')")

    seen_any = False
    for number, line in numbered_lines(path, bad):
        seen_any = seen_any or bool(line.strip())
        if line.startswith(">"):
            close()
            if limit and len(ids) >= limit:
                return ids, sequences, places
            header, parts, starts = (number, line[1:].split(maxsplit=1)[0] if line[1:].strip() else "?"), [], []
        elif line.strip():
            if header is None:
                bad(f"line {number}", "sequence line before the first '>' header (not FASTA?)")
                continue
            parts.append(line.strip())
            starts.append(number)
    close()
    if not seen_any:
        raise UserError(f"{path}: the file is empty")
    return ids, sequences, places


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


def string_spec(modality: str, max_tokens: int) -> ModalitySpec:
    if modality == "protein":
        return protein_spec(max_tokens)
    if modality == "dna":
        return dna_spec(max_tokens)
    if modality == "smiles":
        return smiles_spec(max_tokens)
    return ByteSequence(max_tokens=max_tokens)


def strings_dataset(
    name: str,
    modality: str,
    samples: list[str],
    places: list[str],
    bad: BadRecords,
    config: DataConfig,
    labels: list | None = None,
    source: str = "",
    license: str = "",
    task: str | None = None,
) -> Dataset:
    """Check each string for its modality (alphabet letters; SMILES that RDKit parses, kept in
    canonical form), then tokenize. Molecules get a scaffold split, everything else a fixed
    random 60/20/20 split (seed 0)."""
    spec = string_spec(modality, config.max_tokens)
    kept_samples, kept_labels = [], []
    for i, (sample, place) in enumerate(zip(samples, places)):
        if isinstance(spec, AlphabetSequence):
            sample = sample.strip().removesuffix("*")
            problem = spec.invalid(sample)
            if problem:
                bad(place, problem)
                continue
        elif modality == "smiles":
            sample = sample.strip()
            canonical = chem.canonical(sample)
            if canonical is None:
                bad(place, f"invalid SMILES {sample[:60]!r} (RDKit cannot parse it)")
                continue
            sample = canonical
        kept_samples.append(sample)
        if labels is not None:
            kept_labels.append(labels[i])
    if len(kept_samples) < 2:
        raise UserError(f"{name}: fewer than 2 usable records ({bad.count} bad)")
    notes = bad.report()
    y, found_task = None, "none"
    if labels is not None:
        y, found_task, extra = labels_and_task(kept_labels, name, task)
        notes.update(extra)
    splits = chem.scaffold_splits(kept_samples) if modality == "smiles" else random_splits(len(kept_samples), seed=0)
    return Dataset(
        name=name,
        spec=spec,
        tokens=spec.tokenize(kept_samples),
        labels=y,
        splits=splits,
        task=found_task,
        source=source,
        license=license,
        notes=notes,
    )
