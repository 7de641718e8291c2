"""Users' own files: pick a reader by suffix, infer the modality where it is unambiguous.

| file                                  | modality (inferred)                 | --modality also accepts |
|---------------------------------------|-------------------------------------|-------------------------|
| folder of PNG / JPEG                  | image                               |                         |
| .fasta .fa .faa .fna (.gz)            | dna if only ACGTN, else protein     | protein, dna            |
| .txt (.gz, .bz2), one sample per line | text                                | protein, dna, smiles    |
| .smi, one SMILES (then a name) a line | smiles                              |                         |
| .csv .tsv (.gz) .parquet              | smiles / text / protein by a column | tabular, series, ...    |
|                                       | named smiles / text / sequence,     |                         |
|                                       | else tabular                        |                         |
| .ts (UCR / UEA)                       | series                              |                         |
| .npy / .npz (x, optional y)           | image if x is (n, H, W[, C]);       | tabular, series (2-D x) |
|                                       | set if the .npz has `counts`        |                         |
"""

from __future__ import annotations

from pathlib import Path

from anymae.config import DataConfig
from anymae.data.dataset import Dataset
from anymae.data.images import load_image_arrays, load_image_folder, read_npz
from anymae.data.records import BadRecords
from anymae.data.sequences import (
    STRING_MODALITIES,
    guess_alphabet,
    read_fasta,
    read_lines,
    string_spec,
    strings_dataset,
)
from anymae.data.series import read_ts, series_dataset, table_series
from anymae.data.sets import load_set_arrays
from anymae.data.tables import Table, read_table, tabular_dataset
from anymae.errors import UserError

MODALITIES = ("text", "protein", "dna", "smiles", "tabular", "image", "set", "series")
FASTA = (".fasta", ".fa", ".faa", ".fna", ".fas", ".ffn", ".fsa")
TEXT = (".txt", ".text")
TABLES = (".csv", ".tsv", ".parquet")
COLUMNS = {"smiles": ("smiles",), "text": ("text", "sentence", "review"), "protein": ("sequence", "seq")}
COLUMNS["dna"] = COLUMNS["protein"]


def kind(path: Path) -> str:
    """The suffix that decides the reader ('.fasta' for 'x.fasta.gz')."""
    suffix = path.suffix.lower()
    return Path(path.stem).suffix.lower() if suffix in (".gz", ".bz2") else suffix


def check_modality(path: Path, wanted: str, allowed: tuple[str, ...]) -> None:
    if wanted and wanted not in allowed:
        raise UserError(f"{path}: --modality {wanted} does not fit this file (it reads as: {', '.join(allowed)})")


def load_fasta(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    check_modality(path, config.modality, ("protein", "dna"))
    if config.label:
        raise UserError(f"{path}: FASTA files carry no label column (--label {config.label})")
    modality = config.modality or guess_alphabet(read_fasta(path, BadRecords(path, "skip"), limit=100)[1])
    _, sequences, places = read_fasta(path, bad, string_spec(modality, config.max_tokens))
    return strings_dataset(path.name, modality, sequences, places, bad, config, source=str(path))


def load_lines(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    smi = kind(path) == ".smi"
    check_modality(path, config.modality, ("smiles",) if smi else ("text", "protein", "dna", "smiles"))
    if config.label:
        raise UserError(f"{path}: one sample per line carries no label (use a CSV with a label column)")
    samples, places = read_lines(path, bad)
    if smi:
        samples = [line.split()[0] for line in samples]
    modality = "smiles" if smi else config.modality or "text"
    return strings_dataset(path.name, modality, samples, places, bad, config, source=str(path))


def load_table(path: Path, config: DataConfig, bad: BadRecords, table: Table | None = None) -> Dataset:
    check_modality(path, config.modality, (*STRING_MODALITIES, "tabular", "series"))
    table = table or read_table(path, bad)
    modality = config.modality
    if not modality:
        found = next((m for m in ("smiles", "text", "protein") if table.find(*COLUMNS[m])), None)
        modality = found or "tabular"
        if modality == "protein":
            column = table.column(table.find(*COLUMNS["protein"]), "sequence")
            modality = guess_alphabet([str(s) for s in table.values(column)])
    if modality == "tabular":
        return tabular_dataset(table, bad, config, label=config.label)
    if modality == "series":
        series, labels = table_series(table, bad, config.label)
        return series_dataset(path.name, series, labels, bad, config, source=str(path))
    name = table.find(*COLUMNS[modality])
    if name is None:
        others = [c for c in table.columns if c.lower() != config.label.lower()]
        if len(others) != 1:
            raise UserError(
                f"{path}: no column named {' or '.join(COLUMNS[modality])} for {modality}; "
                f"columns: {', '.join(table.columns)}"
            )
        name = others[0]
    column = table.column(name, modality)
    label_column = table.column(config.label, "--label") if config.label else None
    samples, places, labels = [], [], [] if label_column is not None else None
    for row, place in zip(table.rows, table.places):
        if row[column] is None or not str(row[column]).strip():
            bad(place, f"field '{table.columns[column]}' is empty")
            continue
        if label_column is not None:
            if row[label_column] is None or not str(row[label_column]).strip():
                bad(place, f"label '{table.columns[label_column]}' is missing")
                continue
            labels.append(row[label_column])
        samples.append(str(row[column]))
        places.append(place)
    return strings_dataset(path.name, modality, samples, places, bad, config, labels=labels, source=str(path))


def load_ts(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    check_modality(path, config.modality, ("series",))
    series, labels, _ = read_ts(path, bad)
    return series_dataset(path.name, series, labels, bad, config, source=str(path))


def load_arrays(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    arrays = read_npz(path)
    if "x" not in arrays:
        raise UserError(f"{path}: expected an array named 'x', found {', '.join(arrays) or 'none'}")
    if "counts" in arrays:
        check_modality(path, config.modality, ("set",))
        return load_set_arrays(path, arrays, config)
    x, y = arrays["x"], arrays.get("y")
    if x.ndim == 2:
        if not config.modality:
            raise UserError(f"{path}: a 2-D array 'x' is rows of a table or series: give --modality tabular or series")
        check_modality(path, config.modality, ("tabular", "series"))
        columns = [f"x{i}" for i in range(x.shape[1])] + (["y"] if y is not None else [])
        if y is not None and y.shape != (len(x),):
            raise UserError(f"{path}: field 'y' must hold one label per row ({len(x)}), got shape {y.shape}")
        rows = [list(r) + ([v] if y is not None else []) for r, v in zip(x.tolist(), (y if y is not None else x))]
        table = Table(path, columns, rows, [f"row {i + 1}" for i in range(len(x))])
        label = "y" if y is not None else ""
        config = DataConfig(**{**vars(config), "label": label})
        return load_table(path, config, bad, table)
    check_modality(path, config.modality, ("image",))
    return load_image_arrays(path, config, x, y)


READERS = {
    **{suffix: load_fasta for suffix in FASTA},
    **{suffix: load_lines for suffix in (*TEXT, ".smi")},
    **{suffix: load_table for suffix in TABLES},
    ".ts": load_ts,
    ".npy": load_arrays,
    ".npz": load_arrays,
}


def load_file(path: Path, config: DataConfig) -> Dataset:
    if config.modality and config.modality not in MODALITIES:
        raise UserError(f"--modality must be one of {', '.join(MODALITIES)}, got '{config.modality}'")
    bad = BadRecords(path, config.on_bad_record)
    if path.is_dir():
        check_modality(path, config.modality, ("image",))
        return load_image_folder(path, config)
    reader = READERS.get(kind(path))
    if reader is None:
        raise UserError(f"{path}: no reader for '{path.suffix}' files (readable: {', '.join(READERS)}, image folders)")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty")
    return reader(path, config, bad)
