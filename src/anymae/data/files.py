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
| .h5ad (anndata; data/singlecell.py)   | tabular: cells x genes              |                         |
| Hugging Face save_to_disk folder      | as a Parquet table (data/hf_disk.py)|                         |

`--label` names the label column of a table, the label array of a .npz (default `y`) or an obs
column of an .h5ad; the other readers take labels from the file (the first folder level under an
image folder, .ts) or have none, and refuse it.
`data.importance` (per-token maps for masking.map_source=given) names a column of a table or
an array of a .npz, or is a .npy / .npz file with one row per record.
"""

from __future__ import annotations

from pathlib import Path

from anymae.config import MODALITIES, DataConfig
from anymae.data.dataset import Dataset
from anymae.data.features import tabular_dataset
from anymae.data.images import load_image_arrays, load_image_folder, read_npz
from anymae.data.records import BadRecords, array_task, parse_number
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
from anymae.data.singlecell import h5ad_dataset
from anymae.data.tables import Table, read_table
from anymae.errors import UserError

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


def about(path: Path) -> dict:
    return {"name": path.name, "source": str(path)}


def map_file(config: DataConfig) -> Path | None:
    """data.importance as a second file (.npy / .npz holding one row per record), or None."""
    name = config.importance
    if name and Path(name).suffix.lower() in (".npy", ".npz"):
        if not Path(name).is_file():
            raise UserError(f"data.importance: no such file {name}")
        return Path(name)
    return None


def maps_from_file(config: DataConfig, path: Path, bad: BadRecords, n: int) -> list | None:
    """The rows of a second file of importance maps, one per record read from `path`."""
    source = map_file(config)
    if source is None:
        return None
    if bad.count:
        raise UserError(
            f"data.importance: {source} holds one row per record, but {bad.count} records of {path} were "
            "skipped; fix them first"
        )
    arrays = read_npz(source)
    values = arrays.get("importance", arrays.get("x"))
    if values is None or values.ndim != 2 or len(values) != n or values.dtype.kind not in "biuf":
        shape = None if values is None else values.shape
        raise UserError(
            f"data.importance: {source} must hold a numeric array (records, tokens) with {n} rows "
            f"(one per record of {path}; key 'importance' or 'x'), got {shape}"
        )
    return list(values)


def maps_from_column(table: Table, config: DataConfig, bad: BadRecords) -> tuple[list | None, str]:
    """data.importance as a column of `table`: per record, numbers separated by spaces, one per token."""
    if not config.importance or map_file(config) is not None:
        return None, ""
    column = table.column(config.importance, "data.importance")
    maps = []
    for row in table.rows:
        cells = str(row[column] or "").split()
        values = [parse_number(c) for c in cells]
        maps.append(None if not cells or None in values else values)
    return maps, table.columns[column]


def drop_bad_maps(table: Table, maps: list, column: str, bad: BadRecords) -> Table:
    """Rows whose importance cell is not numbers separated by spaces are bad records."""
    keep = []
    for i, (values, place) in enumerate(zip(maps, table.places)):
        if values is None:
            bad(place, f"field '{column}' (data.importance) must be numbers separated by spaces")
        else:
            keep.append(i)
    maps[:] = [maps[i] for i in keep]
    return Table(table.path, table.columns, [table.rows[i] for i in keep], [table.places[i] for i in keep])


def load_fasta(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    check_modality(path, config.modality, ("protein", "dna"))
    if config.label:
        raise UserError(f"{path}: FASTA files carry no label column (--label {config.label})")
    if config.importance and map_file(config) is None:
        raise UserError(f"{path}: FASTA files have no columns; give data.importance as a .npy file")
    modality = config.modality or guess_alphabet(read_fasta(path, BadRecords(path, "skip"), limit=100)[1])
    ids, sequences, places = read_fasta(path, bad, string_spec(modality, config.max_tokens, config.kmer))
    maps = maps_from_file(config, path, bad, len(sequences))
    return strings_dataset(modality, sequences, places, bad, config, importance=maps, ids=ids, **about(path))


def load_lines(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    smi = kind(path) == ".smi"
    check_modality(path, config.modality, ("smiles",) if smi else ("text", "protein", "dna", "smiles"))
    if config.label:
        raise UserError(f"{path}: one sample per line carries no label (use a CSV with a label column)")
    if config.importance and map_file(config) is None:
        raise UserError(f"{path}: one sample per line has no columns; give data.importance as a .npy file")
    samples, places = read_lines(path, bad)
    if smi:
        samples = [line.split()[0] for line in samples]
    modality = "smiles" if smi else config.modality or "text"
    maps = maps_from_file(config, path, bad, len(samples))
    return strings_dataset(modality, samples, places, bad, config, importance=maps, **about(path))


def column_modality(name: str) -> str | None:
    """The string modality a column's name says it holds (smiles, text / sentence / review, sequence / seq)."""
    return next((m for m in ("smiles", "text", "protein") if name.lower() in COLUMNS[m]), None)


def table_modality(path: Path, table: Table, config: DataConfig) -> tuple[str, str | None]:
    """(modality, the column of string samples or None): data.column, else the first column named as
    in COLUMNS; tabular when there is none. A sequence column of A C G T N only is dna."""
    modality, name = config.modality, None
    if config.column:
        if modality in ("tabular", "series"):
            raise UserError(
                f"{path}: data.column (--column) names a column of string samples; {modality} reads every column"
            )
        name = table.columns[table.column(config.column, "--column")]
        modality = modality or column_modality(name) or "text"
    elif not modality:
        modality = next((m for m in ("smiles", "text", "protein") if table.find(*COLUMNS[m])), "tabular")
    if modality in COLUMNS and name is None:
        name = table.find(*COLUMNS[modality])
    if modality == "protein" and not config.modality:
        modality = guess_alphabet([str(s) for s in table.values(table.column(name, "sequence"))])
    return modality, name


def without_column(table: Table, name: str, purpose: str) -> tuple[Table, list]:
    """The table less one column, and that column's cells."""
    at = table.column(name, purpose)
    rows = [row[:at] + row[at + 1 :] for row in table.rows]
    return Table(table.path, table.columns[:at] + table.columns[at + 1 :], rows, table.places), table.values(at)


def load_table(
    path: Path,
    config: DataConfig,
    bad: BadRecords,
    table: Table | None = None,
    maps=None,
    task: str | None = None,
    ids: dict[str, str] | None = None,
) -> Dataset:
    """A table's samples: string samples from one column, one series per row, or every column a
    feature. `ids` (place -> id), or the column data.id, names the samples (default: their places)."""
    check_modality(path, config.modality, (*STRING_MODALITIES, "tabular", "series"))
    table = table or read_table(path, bad)
    if config.id:  # names the samples, and is no feature
        table, cells = without_column(table, config.id, "--id")
        ids = {place: "" if cell is None else str(cell) for place, cell in zip(table.places, cells)}
    map_column = ""
    if maps is None:
        maps, map_column = maps_from_column(table, config, bad)
        if maps is not None:
            table = drop_bad_maps(table, maps, map_column, bad)
    modality, name = table_modality(path, table, config)
    if maps is None:
        maps = maps_from_file(config, path, bad, len(table.rows))
    if modality == "tabular":
        drop = (map_column,) if map_column else ()
        dataset = tabular_dataset(
            table, bad, config, label=config.label, drop=drop, importance=maps, task=task, **about(path)
        )
    elif modality == "series":
        if maps is not None:
            raise UserError(f"{path}: data.importance is not supported for series read from a table")
        series, labels, places = table_series(table, bad, config.label)
        dataset = series_dataset(series, places, bad, config, labels=labels, **about(path))
    else:
        dataset = table_strings(path, table, config, bad, modality, name, maps, map_column)
    if ids is not None:
        dataset.ids = [ids[place] for place in dataset.ids]
    return dataset


def table_strings(
    path: Path, table: Table, config: DataConfig, bad: BadRecords, modality: str, name: str | None, maps, map_column
) -> Dataset:
    """String samples from the column `name` (None: the one column besides the label and the maps)."""
    if name is None:
        ignored = {config.label.lower(), map_column.lower()}
        others = [c for c in table.columns if c.lower() not in ignored]
        if len(others) != 1:
            raise UserError(
                f"{path}: no column named {' or '.join(COLUMNS[modality])} for {modality}; "
                f"columns: {', '.join(table.columns)} (name one with --column)"
            )
        name = others[0]
    column = table.column(name, modality)
    label_column = table.column(config.label, "--label") if config.label else None
    samples, places, labels, kept_maps = [], [], [] if label_column is not None else None, []
    for i, (row, place) in enumerate(zip(table.rows, table.places)):
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
        kept_maps.append(None if maps is None else maps[i])
    return strings_dataset(
        modality,
        samples,
        places,
        bad,
        config,
        labels=labels,
        importance=None if maps is None else kept_maps,
        **about(path),
    )


def load_ts(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    check_modality(path, config.modality, ("series",))
    if config.label:
        raise UserError(f"{path}: a .ts file carries its labels after the last ':'; --label does not apply")
    if config.importance:
        raise UserError(f"{path}: data.importance is not supported for .ts files")
    series, labels, places = read_ts(path, bad)
    return series_dataset(series, places, bad, config, labels=labels, **about(path))


def load_arrays(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    arrays = read_npz(path)
    if "x" not in arrays:
        raise UserError(f"{path}: expected an array named 'x', found {', '.join(arrays) or 'none'}")
    label = config.label or "y"
    if config.label and config.label not in arrays:
        raise UserError(f"{path}: --label {config.label}: no such array (arrays: {', '.join(arrays)})")
    x, y = arrays["x"], arrays.get(label)
    if x.ndim == 0:
        raise UserError(f"{path}: field 'x' is a single number; it must hold samples (images (n, H, W), rows (n, F))")
    if x.size == 0:
        raise UserError(f"{path}: field 'x' is empty (shape {x.shape})")
    if x.dtype.kind not in "biuf":
        raise UserError(f"{path}: field 'x' must hold numbers, got {x.dtype} values")
    if y is not None and y.dtype.kind not in "biufU":
        raise UserError(f"{path}: field '{label}' must hold numbers or strings, got {y.dtype} values")
    maps = None
    if config.importance and map_file(config) is None:
        if config.importance not in arrays:
            raise UserError(f"{path}: data.importance {config.importance}: no such array (arrays: {', '.join(arrays)})")
        maps = arrays[config.importance]
        if maps.ndim != 2 or len(maps) != len(x if "counts" not in arrays else arrays["counts"]):
            raise UserError(f"{path}: field '{config.importance}' must be (records, tokens), got {maps.shape}")
        if maps.dtype.kind not in "biuf":
            raise UserError(f"{path}: field '{config.importance}' must hold numbers, got {maps.dtype} values")
        maps = list(maps)
    if "counts" in arrays:
        check_modality(path, config.modality, ("set",))
        if config.importance:
            raise UserError(f"{path}: data.importance is not supported for sets (their elements are reordered)")
        return load_set_arrays(path, arrays, config, label)
    if x.ndim == 2:
        if not config.modality:
            raise UserError(f"{path}: a 2-D array 'x' is rows of a table or series: give --modality tabular or series")
        check_modality(path, config.modality, ("tabular", "series"))
        if x.shape[1] < 1:
            raise UserError(f"{path}: field 'x' has no columns (shape {x.shape})")
        columns = [f"x{i}" for i in range(x.shape[1])] + (["y"] if y is not None else [])
        if y is not None and y.shape != (len(x),):
            raise UserError(f"{path}: field '{label}' must hold one label per row ({len(x)}), got shape {y.shape}")
        rows = [
            list(r) + ([v] if y is not None else []) for r, v in zip(x.tolist(), (y.tolist() if y is not None else x))
        ]
        table = Table(path, columns, rows, [f"row {i + 1}" for i in range(len(x))])
        if maps is None:
            maps = maps_from_file(config, path, bad, len(x))
        config = DataConfig(**{**vars(config), "label": "y" if y is not None else "", "importance": ""})
        return load_table(path, config, bad, table, maps, task=array_task(y))
    check_modality(path, config.modality, ("image",))
    if maps is None:
        maps = maps_from_file(config, path, bad, len(x))
    return load_image_arrays(path, config, x, y, maps)


def load_h5ad(path: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    check_modality(path, config.modality, ("tabular",))
    return h5ad_dataset(path, config, bad)


READERS = {
    **{suffix: load_fasta for suffix in FASTA},
    **{suffix: load_lines for suffix in (*TEXT, ".smi")},
    **{suffix: load_table for suffix in TABLES},
    ".ts": load_ts,
    ".npy": load_arrays,
    ".npz": load_arrays,
    ".h5ad": load_h5ad,
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
    if not path.is_file():
        raise UserError(f"{path}: not a regular file (a pipe or a device?); save the data to a file first")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty")
    return reader(path, config, bad)
