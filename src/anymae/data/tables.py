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
from anymae.data.dataset import Dataset, make_dataset
from anymae.data.records import MAX_LINE_BYTES, BadRecords, brief, check_size, numbered_lines, odd_number, parse_number
from anymae.errors import UserError
from anymae.tokens import FLOAT32_MAX, FeatureTokens, fit_scale

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


class Feed:
    """The lines of a file handed to csv.reader one at a time, from a position that can be set
    back: a record that goes wrong is reported at the line where it began, and reading resumes
    on the line after it (a stray quote never swallows the lines below it)."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines, self.pos = lines, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos >= len(self.lines):
            raise StopIteration
        self.pos += 1
        return self.lines[self.pos - 1][1] + "\n"


def read_csv(path: Path, bad: BadRecords, delimiter: str = ",", header: bool = True, skip: int = 0) -> Table:
    """A CSV file read record by record with Python's csv parser (strict quoting). A record with
    the wrong number of fields, or quoting the parser refuses, is a bad record at the line where
    it starts; a quoted field may span lines only when its record then has the right fields."""
    lines = [(number, line) for number, line in numbered_lines(path, bad) if number > skip]
    csv.field_size_limit(MAX_LINE_BYTES)
    feed = Feed(lines)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    columns: list[str] | None = None
    rows, places = [], []
    while feed.pos < len(lines):
        start = feed.pos
        problem = ""
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            cells, problem = None, f"not valid CSV ({brief(error)})"
        number, last = lines[start][0], lines[max(feed.pos - 1, start)][0]
        place = f"line {number}"
        if cells is not None and (not cells or (len(cells) == 1 and not cells[0].strip())):
            continue  # blank line
        if columns is None and cells is not None:
            if header:
                columns = [c.strip() for c in cells]
                if len(set(columns)) != len(columns):
                    raise UserError(f"{path}, {place}: repeated column names in the header")
                if last != number:
                    raise UserError(f"{path}, {place}: a quote in the header is not closed on its line")
                continue
            columns = [f"column {i + 1}" for i in range(len(cells))]
        if cells is not None and len(cells) != len(columns):
            problem = f"has {len(cells)} fields, the header has {len(columns)}"
        if problem:
            if last != number or cells is None and '"' in lines[start][1]:
                problem += f"; a quote opened on line {number} runs on to line {last}"
            if columns is None:
                raise UserError(f"{path}, {place}: {problem}")
            bad(place, problem)
            feed.pos = start + 1  # resume on the next line, with a fresh parser
            reader = csv.reader(feed, delimiter=delimiter, strict=True)
            continue
        rows.append([c.strip() for c in cells])
        places.append(place)
    if columns is None and bad.count:
        raise UserError(f"{path}: no readable header line ({bad.summary()})")
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
    check_size(path, path.stat().st_size)
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several kinds for a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({brief(error)})") from None
    import pyarrow as pa

    columns = table.column_names
    nested = next((f for f in table.schema if pa.types.is_nested(f.type)), None)
    if nested is not None:  # a list or struct per cell is no feature value (its text would be one-hot encoded)
        raise UserError(
            f"{path}: column '{nested.name}' holds {nested.type} values, not one number or word per cell; "
            "drop it or spread it over columns of its own"
        )
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
    """The cell as a float, or None when it is not a plain decimal number (bools count as 0/1)."""
    return parse_number(cell)


def feature_columns(table: Table, keep: list[int]) -> tuple[list[str], list[np.ndarray]]:
    """Per kept column: numeric -> one feature; otherwise one-hot over its levels (sorted)."""
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for index in keep:
        column = table.columns[index]
        cells = table.values(index)
        missing = np.array([is_missing(c) for c in cells])
        odd = next((i for i, c in enumerate(cells) if odd_number(c)), None)
        if odd is not None:
            raise UserError(
                f"{table.path}, {table.places[odd]}: field '{column}' = {cells[odd]!r} is not a plain number "
                "(write 10, not 1_0)"
            )
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


def without_line_breaks(table: Table, keep: list[int], bad: BadRecords, importance: list | None):
    """A quoted field may hold line breaks (RFC 4180): in a column of words it is one category like any
    other. In a column whose other cells are numbers it comes from a stray quote that happened to leave
    the right number of fields: a bad record."""
    numeric = {i for i in keep if all(is_missing(c) or as_number(c) is not None or "\n" in c for c in table.values(i))}
    rows = []
    for r, row in enumerate(table.rows):
        broken = next((i for i in numeric if isinstance(row[i], str) and "\n" in row[i]), None)
        if broken is None:
            rows.append(r)
        else:
            bad(table.places[r], f"field '{table.columns[broken]}' runs over several lines (a stray quote?)")
    if len(rows) == len(table.rows):
        return table, importance
    kept = Table(table.path, table.columns, [table.rows[r] for r in rows], [table.places[r] for r in rows])
    return kept, None if importance is None else [importance[r] for r in rows]


def tabular_dataset(
    table: Table,
    bad: BadRecords,
    config: DataConfig,
    label: str = "",
    drop: tuple[str, ...] = (),
    importance: list | None = None,
    **about,
) -> Dataset:
    """Every column but the label (and `drop`) is a feature. Rows with inf or a number beyond
    float32, or with a missing label, are bad records; so is a row with fewer than 2 values
    (make_dataset). `about`: name, source, license, metric, task, splits (see make_dataset)."""
    label_index = table.column(label, "--label") if label else None
    dropped = {table.column(d, "dropped") for d in drop}
    keep = [i for i in range(len(table.columns)) if i != label_index and i not in dropped]
    if not keep:
        raise UserError(f"{table.path}: no feature columns besides the label")
    table, importance = without_line_breaks(table, keep, bad, importance)
    names, blocks = feature_columns(table, keep)
    x = np.concatenate(blocks, axis=1)
    good = np.ones(len(x), dtype=bool)
    for row in np.flatnonzero((np.abs(np.nan_to_num(x, nan=0.0)) > FLOAT32_MAX).any(1)):
        column = int(np.flatnonzero(np.abs(np.nan_to_num(x[row], nan=0.0)) > FLOAT32_MAX)[0])
        kind = "infinite" if np.isinf(x[row, column]) else f"{x[row, column]:.3g}, beyond the float32 range"
        bad(table.places[row], f"field '{names[column]}' is {kind}")
        good[row] = False
    if label_index is not None:
        for row, cell in enumerate(table.values(label_index)):
            if good[row] and is_missing(cell):
                bad(table.places[row], f"label '{table.columns[label_index]}' is missing")
                good[row] = False
    rows = np.flatnonzero(good)
    mean, scale = fit_scale(x[rows])
    spec = FeatureTokens(features=tuple(names), mean=mean, scale=scale)
    labels = None if label_index is None else [table.rows[r][label_index] for r in rows]
    if "splits" in about and about["splits"] is not None and len(rows) < len(x):
        raise UserError(f"{table.path}: bad records in a dataset with fixed splits")
    about = {"name": table.path.name, "source": str(table.path), **about}
    return make_dataset(
        spec,
        x[rows],
        [table.places[r] for r in rows],
        bad,
        labels=labels,
        importance=None if importance is None else [importance[r] for r in rows],
        **about,
    )
