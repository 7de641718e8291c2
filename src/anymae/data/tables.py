"""Tables (CSV, TSV, Parquet): reading, and tabular features as tokens.

Cells that read as missing ("", NA, NaN, null, None, ?) become missing values: in tabular
features a missing value is an invalid token (never seen, never reconstructed). inf is a bad
record. A column whose values are not all numbers is categorical and is one-hot encoded (one
feature per level, at most 50 levels; more is an error naming the column).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, random_splits
from anymae.data.records import BadRecords, labels_and_task, numbered_lines
from anymae.errors import UserError
from anymae.tokens import FeatureTokens, fit_scale

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
MAX_LEVELS = 50
PARQUET_INSTALL = "pip install 'anymae[tables]'  (or: pip install pyarrow)"


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[list]  # cells: str (CSV) or Python values (Parquet); None = missing
    places: list[str]  # "line N" (CSV) or "row N" (Parquet), one per row

    def column(self, name: str, purpose: str) -> int:
        """The index of a column by name (exact, else case-insensitive); an error lists the columns."""
        if name in self.columns:
            return self.columns.index(name)
        folded = [c.lower() for c in self.columns]
        if name.lower() in folded:
            return folded.index(name.lower())
        raise UserError(f"{self.path}: no column '{name}' ({purpose}); columns: {', '.join(self.columns)}")

    def find(self, *names: str) -> str | None:
        """The first column whose name matches one of `names` case-insensitively."""
        folded = {c.lower(): c for c in self.columns}
        return next((folded[n] for n in names if n in folded), None)

    def values(self, index: int) -> list:
        return [row[index] for row in self.rows]


def read_table(path: Path, bad: BadRecords, header: bool = True, skip: int = 0) -> Table:
    suffix = path.suffix.lower()
    inner = Path(path.stem).suffix.lower() if suffix in (".gz", ".bz2") else suffix
    if inner == ".parquet":
        return read_parquet(path, bad)
    return read_csv(path, bad, delimiter="\t" if inner == ".tsv" else ",", header=header, skip=skip)


def read_csv(path: Path, bad: BadRecords, delimiter: str = ",", header: bool = True, skip: int = 0) -> Table:
    """A CSV file read row by row; rows with the wrong number of fields are bad records."""
    current = [0]

    def lines():
        for number, line in numbered_lines(path, bad):
            current[0] = number
            if number > skip:
                yield line

    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # long texts in one cell
    reader = csv.reader(lines(), delimiter=delimiter)
    columns: list[str] | None = None
    rows, places = [], []
    try:
        for cells in reader:
            place = f"line {current[0]}"
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if columns is None:
                if header:
                    columns = [c.strip() for c in cells]
                    if len(set(columns)) != len(columns):
                        raise UserError(f"{path}, {place}: repeated column names in the header")
                    continue
                columns = [f"column {i + 1}" for i in range(len(cells))]
            if len(cells) != len(columns):
                bad(place, f"has {len(cells)} fields, the header has {len(columns)}")
                continue
            rows.append([c.strip() for c in cells])
            places.append(place)
    except csv.Error as error:
        raise UserError(f"{path}, line {current[0]}: not valid CSV ({error})") from None
    if columns is None:
        raise UserError(f"{path}: the file is empty")
    if not rows and not bad.count:
        raise UserError(f"{path}: no rows below the header")
    return Table(path, columns, rows, places)


def read_parquet(path: Path, bad: BadRecords) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"{path}: Parquet files need pyarrow; install it with: {PARQUET_INSTALL}") from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several kinds for a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({error})") from None
    columns = table.column_names
    data = [table.column(c).to_pylist() for c in columns]
    rows = [list(cells) for cells in zip(*data)] if columns else []
    if not rows:
        raise UserError(f"{path}: the table has no rows")
    return Table(path, columns, rows, [f"row {i + 1}" for i in range(len(rows))])


def is_missing(cell) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float):
        return math.isnan(cell)
    return isinstance(cell, str) and cell.strip().lower() in MISSING


def as_number(cell) -> float | None:
    """The cell as a float, or None when it is not a number (bools count as numbers 0/1)."""
    if isinstance(cell, (int, float)):
        return float(cell)
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def feature_columns(table: Table, keep: list[int]) -> tuple[list[str], list[np.ndarray]]:
    """Per kept column: numeric -> one feature; otherwise one-hot over its levels (sorted)."""
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for index in keep:
        column = table.columns[index]
        cells = table.values(index)
        missing = np.array([is_missing(c) for c in cells])
        numbers = [None if m else as_number(c) for c, m in zip(cells, missing)]
        if all(x is not None for x, m in zip(numbers, missing) if not m):
            block = np.array([np.nan if m else x for x, m in zip(numbers, missing)], dtype=np.float64)[:, None]
            names.append(column)
        else:
            levels = sorted({str(c).strip() for c, m in zip(cells, missing) if not m})
            if len(levels) > MAX_LEVELS:
                raise UserError(
                    f"{table.path}: column '{column}' has {len(levels)} distinct non-numeric values (at most "
                    f"{MAX_LEVELS} levels are one-hot encoded): drop it, or name it with --label"
                )
            lookup = {level: i for i, level in enumerate(levels)}
            block = np.zeros((len(cells), len(levels)))
            for row, (cell, m) in enumerate(zip(cells, missing)):
                if m:
                    block[row] = np.nan
                else:
                    block[row, lookup[str(cell).strip()]] = 1.0
            names += [f"{column}={level}" for level in levels]
        blocks.append(block)
    return names, blocks


def tabular_dataset(
    table: Table,
    bad: BadRecords,
    config: DataConfig,
    name: str = "",
    label: str = "",
    task: str | None = None,
    drop: tuple[str, ...] = (),
    source: str = "",
    license: str = "",
    splits: dict[str, np.ndarray] | None = None,
) -> Dataset:
    """Every column but the label (and `drop`) is a feature. Rows with inf, or with a missing
    label, are bad records."""
    label_index = table.column(label, "--label") if label else None
    dropped = {table.column(d, "dropped") for d in drop}
    keep = [i for i in range(len(table.columns)) if i != label_index and i not in dropped]
    if not keep:
        raise UserError(f"{table.path}: no feature columns besides the label")
    names, blocks = feature_columns(table, keep)
    x = np.concatenate(blocks, axis=1)
    good = np.ones(len(x), dtype=bool)
    for row in np.flatnonzero(np.isinf(x).any(1)):
        column = names[int(np.flatnonzero(np.isinf(x[row]))[0])]
        bad(table.places[row], f"field '{column}' is infinite")
        good[row] = False
    if label_index is not None:
        for row, cell in enumerate(table.values(label_index)):
            if good[row] and is_missing(cell):
                bad(table.places[row], f"label '{table.columns[label_index]}' is missing")
                good[row] = False
    if splits is not None and not good.all():
        raise UserError(f"{table.path}: bad records in a dataset with fixed splits")
    x = x[good]
    if len(x) < 2:
        raise UserError(f"{table.path}: fewer than 2 usable rows ({bad.count} bad)")
    notes = bad.report()
    y, found_task = None, "none"
    if label_index is not None:
        cells = [c for c, g in zip(table.values(label_index), good) if g]
        y, found_task, extra = labels_and_task(cells, f"{table.path}, column '{table.columns[label_index]}'", task)
        notes.update(extra)
    mean, scale = fit_scale(x)
    spec = FeatureTokens(features=tuple(names), mean=mean, scale=scale)
    return Dataset(
        name=name or table.path.name,
        spec=spec,
        tokens=spec.tokenize(x),
        labels=y,
        splits=splits if splits is not None else random_splits(len(x), seed=0),
        task=found_task,
        source=source or str(table.path),
        license=license,
        notes=notes,
    )
