"""Hugging Face `datasets` folders written by `save_to_disk`, read with pyarrow alone (the `tables`
extra; the `datasets` package is not needed).

A Dataset folder holds `state.json` (its `_data_files`: Arrow IPC stream files, read in that order)
and `dataset_info.json` (its features); a DatasetDict folder holds `dataset_dict.json` (its
`splits`) and one Dataset folder per split. Rows are named "row N" (1-based), or "SPLIT, row N" in
a DatasetDict. The sample column is picked by name as in a JSON Lines file or a table (smiles, text
/ sentence / review, sequence / seq; another with --column); a row whose sample is null or blank is
a bad record. Columns of lists or structs (token ids, images) are neither features nor samples:
they are left out unless named by --column or --label, which refuses them. A ClassLabel column's
labels are its class names, and its -1 ("no label") is a missing label.

A DatasetDict's own splits are the splits (train; validation, valid, val or dev; test); one it lacks
is drawn at random (seed 0, a fifth of the records) from its train split. Other split names are
refused: give one split's folder to --data instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from anymae.data.dataset import random_splits
from anymae.data.files import COLUMNS
from anymae.data.records import BadRecords, brief, check_size
from anymae.data.tables import PARQUET_INSTALL, Table
from anymae.errors import UserError

STATE, DICT, INFO = "state.json", "dataset_dict.json", "dataset_info.json"
SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val", "test": "test"}


def is_hf_folder(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return path.is_dir() and ((path / STATE).is_file() or (path / DICT).is_file())


def pyarrow(path: Path):
    try:
        import pyarrow as pa
        import pyarrow.ipc  # noqa: F401  (the stream reader)
    except ImportError:
        raise UserError(
            f"{path}: Hugging Face datasets folders need pyarrow; install it with: {PARQUET_INSTALL}"
        ) from None
    return pa


def read_json(path: Path) -> dict:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path}: not a readable JSON file ({brief(error)})") from None
    if not isinstance(found, dict):
        raise UserError(f"{path}: expected a JSON object")
    return found


def parts(folder: Path) -> list[tuple[str, Path]]:
    """(split, its Dataset folder) of a DatasetDict in its own order; [("", folder)] for a Dataset."""
    if (folder / STATE).is_file():
        return [("", folder)]
    names = read_json(folder / DICT).get("splits")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{folder / DICT}: 'splits' must be a list of split names")
    odd = [n for n in names if n.lower() not in SPLIT_NAMES]
    if odd:
        raise UserError(
            f"{folder}: split '{odd[0]}' is none of {', '.join(SPLIT_NAMES)}; read one split on its own "
            f"(--data {folder / odd[0]}) or save the dataset with those split names"
        )
    ours = [SPLIT_NAMES[n.lower()] for n in names]
    if len(set(ours)) < len(ours):
        raise UserError(f"{folder}: splits {', '.join(names)} name the same split twice")
    for name in names:
        if not (folder / name / STATE).is_file():
            raise UserError(f"{folder / name}: no {STATE} (dataset_dict.json lists split '{name}')")
    return [(name, folder / name) for name in names]


def fixed_splits(folder: Path) -> list[str] | None:
    """A DatasetDict's split names, in order; None for a Dataset (split at random like other files)."""
    names = [name for name, _ in parts(folder)]
    return None if names == [""] else names


def arrow_files(folder: Path) -> list[Path]:
    state = read_json(folder / STATE)
    listed = state.get("_data_files")
    if not isinstance(listed, list) or not all(isinstance(f, dict) and "filename" in f for f in listed):
        raise UserError(f"{folder / STATE}: '_data_files' must list the Arrow files ({{'filename': ...}})")
    files = [folder / entry["filename"] for entry in listed]
    missing = next((f for f in files if not f.is_file()), None)
    if missing is not None:
        raise UserError(f"{missing}: no such file ({folder / STATE} lists it)")
    return files


def batches(path: Path) -> Iterator:
    """The record batches of one Arrow stream file, memory-mapped."""
    pa = pyarrow(path)
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except Exception as error:  # pyarrow raises several kinds for a damaged file
        raise UserError(f"{path}: not a readable Arrow stream file ({brief(error)})") from None
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except Exception as error:
            raise UserError(f"{path}: not a readable Arrow stream file ({brief(error)})") from None
        yield batch


def schema(folder: Path):
    """The schema of the first split's first Arrow file (every file of every split must share its names)."""
    pa = pyarrow(folder)
    first = arrow_files(parts(folder)[0][1])
    if not first:
        raise UserError(f"{folder}: {STATE} lists no Arrow file")
    try:
        with pa.memory_map(str(first[0])) as source:
            return pa.ipc.open_stream(source).schema
    except Exception as error:
        raise UserError(f"{first[0]}: not a readable Arrow stream file ({brief(error)})") from None


def column(names: list[str], wanted: str, folder: Path, purpose: str) -> str:
    """A column by name (exact, else case-insensitive); an error lists the columns."""
    found = next((n for n in names if n == wanted), None) or next(
        (n for n in names if n.lower() == wanted.lower()), None
    )
    if found is None:
        raise UserError(f"{folder}: no column '{wanted}' ({purpose}); columns: {', '.join(names)}")
    return found


def sample_field(folder: Path, wanted: str = "") -> tuple[str, str] | None:
    """(modality, column) of the string samples: the column `wanted` (--column), else one named smiles,
    text (sentence, review) or sequence (seq); None when there is none (a table of features)."""
    pa = pyarrow(folder)
    found = schema(folder)
    names = list(found.names)
    if wanted:
        name = column(names, wanted, folder, "--column")
        modality = next((m for m in ("smiles", "text", "protein") if name.lower() in COLUMNS[m]), "text")
    else:
        pick = next(((m, n) for m in ("smiles", "text", "protein") for n in names if n.lower() in COLUMNS[m]), None)
        if pick is None:
            return None
        modality, name = pick
    kind = found.field(name).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise UserError(f"{folder}: column '{name}' holds {kind} values, not strings (samples are read from it)")
    return modality, name


def rows(folder: Path, names: list[str]) -> Iterator[tuple[str, list[list]]]:
    """(place of the batch's first row, [values of each named column]) batch by batch, over every split
    and Arrow file; places count rows from 1 within each split."""
    for split, part in parts(folder):
        number = 0
        for path in arrow_files(part):
            for batch in batches(path):
                missing = [n for n in names if n not in batch.schema.names]
                if missing:
                    raise UserError(
                        f"{path}: no column '{missing[0]}' (columns: {', '.join(batch.schema.names)}); "
                        "every split and file must have the same columns"
                    )
                yield (split, number), [batch.column(n).to_pylist() for n in names]
                number += batch.num_rows


def place(split: str, number: int) -> str:
    return f"{split}, row {number}" if split else f"row {number}"


def string_rows(folder: Path, bad: BadRecords, wanted: str = "") -> Iterator[tuple[str, str, str]]:
    """(sample, place, id) of each row with a non-blank sample, a batch at a time; others are bad records."""
    found = sample_field(folder, wanted)
    if found is None:  # streamable() reads such a folder as a table instead
        raise UserError(f"{folder}: no column of string samples (name one with --column)")
    name = found[1]
    for (split, start), (values,) in rows(folder, [name]):
        for offset, value in enumerate(values, start + 1):
            where = place(split, offset)
            wrong = value is not None and not isinstance(value, str)  # another type in a later file
            if wrong or not value or not value.strip():
                bad(where, f"field '{name}' is {'not a string' if wrong else 'empty'}")
                continue
            yield value, where, where


def hf_table(folder: Path, label: str = "") -> tuple[Table, str | None]:
    """The whole folder as one table of its flat columns (lists and structs left out, unless named as the
    label, which refuses them), and the task a ClassLabel label column says (classification) or None.
    A ClassLabel's values become its class names; -1 (no label) becomes missing."""
    pa = pyarrow(folder)
    found = schema(folder)
    check_size(folder, sum(f.stat().st_size for _, part in parts(folder) for f in arrow_files(part)))
    flat = [f.name for f in found if not pa.types.is_nested(f.type)]
    label = column(list(found.names), label, folder, "--label") if label else ""
    if label and label not in flat:
        raise UserError(f"{folder}: column '{label}' holds {found.field(label).type} values, not one label per row")
    classes = class_names(folder, label) if label else None
    table_rows, places = [], []
    for (split, start), values in rows(folder, flat):
        cells = [list(row) for row in zip(*values)]
        table_rows += cells
        places += [place(split, start + i + 1) for i in range(len(cells))]
    if classes is not None:
        at = flat.index(label)
        for row in table_rows:
            row[at] = classes[row[at]] if isinstance(row[at], int) and 0 <= row[at] < len(classes) else None
    return Table(folder, flat, table_rows, places), None if classes is None else "classification"


def class_names(folder: Path, label: str) -> list[str] | None:
    """The class names of a ClassLabel column, from the first split's dataset_info.json (None otherwise)."""
    info_path = parts(folder)[0][1] / INFO
    if not info_path.is_file():
        return None
    feature = read_json(info_path).get("features", {}).get(label)
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel" and isinstance(feature.get("names"), list):
        return [str(n) for n in feature["names"]]
    return None


def split_codes(ids: list[str], names: list[str]) -> np.ndarray:
    """The position in `names` of each id's split ("SPLIT, row N")."""
    at = {name: i for i, name in enumerate(names)}
    return np.array([at[i.rsplit(", row ", 1)[0]] for i in ids], dtype=np.int8)


def splits_of(codes: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Train / val / test indices from each record's split code; a missing val or test split is a
    random fifth (seed 0) of train."""
    ours = {SPLIT_NAMES[name.lower()]: np.flatnonzero(codes == i) for i, name in enumerate(names)}
    train = ours.get("train", np.zeros(0, dtype=np.int64))
    carved = random_splits(len(train), seed=0, val=0.0 if "val" in ours else 0.2, test=0.0 if "test" in ours else 0.2)
    return {
        "train": train[carved["train"]],
        "val": ours["val"] if "val" in ours else train[carved["val"]],
        "test": ours["test"] if "test" in ours else train[carved["test"]],
    }
