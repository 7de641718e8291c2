"""Tables (CSV, TSV, Parquet): reading (a CSV file record by record, csv_rows), and what a cell is.

Cells that read as missing ("", NA, NaN, null, None, ?) become missing values: in tabular
features a missing value is an invalid token (never seen, never reconstructed). inf is a bad
record. A column whose values are not all numbers is categorical and is one-hot encoded (one
feature per level, at most 50 levels; more is an error naming the column): data/features.py.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anymae.data.records import MAX_LINE_BYTES, BadRecords, brief, check_size, numbered_lines, parse_number
from anymae.errors import UserError

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
    if inner_suffix(path) == ".parquet":
        return read_parquet(path, bad)
    return read_csv(path, bad, delimiter=delimiter(path), header=header, skip=skip)


def inner_suffix(path: Path) -> str:
    """'.csv' for 'x.csv.gz'."""
    suffix = path.suffix.lower()
    return Path(path.stem).suffix.lower() if suffix in (".gz", ".bz2") else suffix


def delimiter(path: Path) -> str:
    return "\t" if inner_suffix(path) == ".tsv" else ","


class Feed:
    """The lines of a file handed to csv.reader one at a time, the lines of the current record held
    so that reading can be set back: a record that goes wrong is reported at the line where it
    began, and reading resumes on the line after it (a stray quote never swallows the lines below)."""

    def __init__(self, lines: Iterator[tuple[int, str]]) -> None:
        self.lines, self.held, self.pos = lines, [], 0  # held: (number, text) from the record's first line

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.pos == len(self.held) and not self.more():
            raise StopIteration
        self.pos += 1
        return self.held[self.pos - 1][1] + "\n"

    def more(self) -> bool:
        """Whether a line is left to read (reading one ahead when none is held)."""
        if self.pos < len(self.held):
            return True
        line = next(self.lines, None)
        if line is not None:
            self.held.append(line)
        return line is not None

    def start(self) -> None:
        """A new record begins: forget the lines of the last one."""
        del self.held[: self.pos]
        self.pos = 0

    def back(self) -> None:
        """Read again from the line after the current record's first."""
        del self.held[:1]
        self.pos = 0


def read_csv(path: Path, bad: BadRecords, delimiter: str = ",", header: bool = True, skip: int = 0) -> Table:
    """A CSV file read whole (csv_rows)."""
    blocks = csv_rows(path, bad, delimiter, header, skip)
    columns = next(blocks)
    rows, places = [], []
    for cells, where in blocks:
        rows += cells
        places += where
    return Table(path, columns, rows, places)


def csv_rows(
    path: Path, bad: BadRecords, delimiter: str = ",", header: bool = True, skip: int = 0, numbers: bool = False
) -> Iterator:
    """A CSV file read record by record with Python's csv parser (strict quoting): first its column
    names, then blocks of records ([cells], ["line N"]). A record with the wrong number of fields,
    or quoting the parser refuses, is a bad record at the line where it starts; a quoted field may
    span lines only when its record then has the right fields. Runs of PLAIN lines without a quote
    that all have the right fields are parsed at once (plain_rows); any other line record by record.
    With `numbers`, a run whose every cell is a plain decimal comes as NumericRows instead of cells."""
    csv.field_size_limit(MAX_LINE_BYTES)
    decimals = re.compile(f"[-+.eE0-9\n{re.escape(delimiter)}]*")
    feed = Feed((number, line) for number, line in numbered_lines(path, bad) if number > skip)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    columns: list[str] | None = None
    rows = 0
    while True:
        if columns is not None and len(columns) > 1 and feed.pos == len(feed.held):
            lines = [line for line in itertools.islice(feed.lines, PLAIN)]
            text = "\n".join(text for _, text in lines)
            cells = None
            if numbers and decimals.fullmatch(text):
                cells = numeric_rows(text, len(lines), delimiter, len(columns))
            if cells is None:
                cells = plain_rows(text, len(lines), delimiter, len(columns))
            if cells is not None:
                rows += len(cells)
                yield cells, [f"line {number}" for number, _ in lines]
                continue
            feed.held, feed.pos = lines, 0  # read record by record
        if not feed.more():
            break
        feed.start()
        problem = ""
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            cells, problem = None, f"not valid CSV ({brief(error)})"
        number, last = feed.held[0][0], feed.held[max(feed.pos - 1, 0)][0]
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
                yield columns
                continue
            columns = [f"column {i + 1}" for i in range(len(cells))]
            yield columns
        if cells is not None and len(cells) != len(columns):
            problem = f"has {len(cells)} fields, the header has {len(columns)}"
        if problem:
            if last != number or cells is None and '"' in feed.held[0][1]:
                problem += f"; a quote opened on line {number} runs on to line {last}"
            if columns is None:
                raise UserError(f"{path}, {place}: {problem}")
            bad(place, problem)
            feed.back()  # resume on the next line, with a fresh parser
            reader = csv.reader(feed, delimiter=delimiter, strict=True)
            continue
        rows += 1
        yield [[c.strip() for c in cells]], [place]
    if columns is None and bad.count:
        raise UserError(f"{path}: no readable header line ({bad.summary()})")
    if columns is None:
        raise UserError(f"{path}: the file is empty")
    if not rows and not bad.count:
        raise UserError(f"{path}: no rows below the header")


PLAIN = 1024  # lines tried at once by plain_rows
SPACE = re.compile(r"[^\S\n]")  # white space in a cell (not a line end)
TAB_SPACE = re.compile(r"[^\S\n\t]")  # the same where tabs separate cells


def plain_rows(text: str, count: int, delimiter: str, width: int) -> list[list[str]] | None:
    """The cells of `count` lines (`text`) that hold no quote and no carriage return, each with `width`
    fields (so none is blank, none bad), stripped; None when any line needs reading record by record.
    For such lines the strict csv parser splits at each delimiter and nowhere else: str.split does."""
    if not count or '"' in text or "\r" in text:
        return None
    rows = [line.split(delimiter) for line in text.split("\n")]
    if any(len(row) != width for row in rows):
        return None
    if (TAB_SPACE if delimiter == "\t" else SPACE).search(text):
        rows = [[c.strip() for c in row] for row in rows]
    return rows


@dataclass
class NumericRows:
    """Lines whose cells are all plain decimals (numeric_rows): their numbers, parsed at once, and
    the lines, for the cells as text where a column is read as text (a label, ids, categories)."""

    values: np.ndarray  # (rows, columns) float64
    lines: list[str]
    delimiter: str

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, rows: slice) -> NumericRows:
        return NumericRows(self.values[rows], self.lines[rows], self.delimiter)

    def cells(self) -> list[list[str]]:
        """The rows as plain_rows gives them (no cell holds white space)."""
        return [line.split(self.delimiter) for line in self.lines]

    def column(self, index: int) -> list[str]:
        return [line.split(self.delimiter)[index] for line in self.lines]

    @staticmethod
    def joined(blocks: list) -> NumericRows | list[list[str]]:
        """Blocks of rows (NumericRows, or lists of cells) as one."""
        if all(isinstance(block, NumericRows) for block in blocks):
            values = np.concatenate([block.values for block in blocks])
            return NumericRows(values, [line for block in blocks for line in block.lines], blocks[0].delimiter)
        return [row for block in blocks for row in (block.cells() if isinstance(block, NumericRows) else block)]


def numeric_rows(text: str, count: int, delimiter: str, width: int) -> NumericRows | None:
    """`count` lines (`text`) of nothing but digits, '.', 'e', 'E', '+', '-' and delimiters as numbers
    at C speed; None unless each line has `width` cells, each a plain decimal. In that alphabet
    np.loadtxt reads exactly the cells parse_number reads (correctly rounded, as float()), and
    refuses the others ('', '.', '1e', '1-2'); it skips blank lines, which the shape then shows."""
    if not count:
        return None
    lines = text.split("\n")
    try:
        values = np.loadtxt(lines, delimiter=delimiter, dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        return None
    return NumericRows(values, lines, delimiter) if values.shape == (count, width) else None


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
