"""Tables of features (every column a number, or a category one-hot encoded) read a chunk of rows
at a time, in two passes at memory independent of the number of rows.

Pass 1 (`Scan`) learns per column whether it is numeric or categorical (and its levels), which
rows are bad records, and the scaling of each feature (tokens.ScaleFit), keeping each chunk it
parsed (`Parsed`: in memory, or a scratch file for a store); `plan` then reports the bad records
in the order the rules below give them; pass 2 (`Plan.encode`) turns each parsed chunk into
feature rows, without parsing the text again. `tabular_dataset` (a table in memory: `--data FILE`, built-ins)
and `stream_table` (CSV / TSV files into a store, data/corpus.py) both run them, so a store holds
exactly what `--data FILE` reads, however the rows are chunked.

Rules, in the order bad records are reported (after the reader's own: fields, quoting):
a field that runs over several lines in a column whose other cells are numbers (a stray
quote); a number float() reads but that is no plain decimal (1_0: an error); a categorical
column of more than MAX_LEVELS levels (an error); inf or a number beyond float32; a missing
label; fewer than 2 valid tokens; a label that is not finite, or a word among numbers (or a
number among words).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import MIN_TOKENS, Dataset, fill_map, split_kept, too_few
from anymae.data.records import BadRecords, label_problem, labels_and_task, odd_kind_labels, odd_number, streaming
from anymae.data.tables import MAX_LEVELS, NumericRows, Table, as_number, csv_rows, delimiter, is_missing
from anymae.errors import UserError
from anymae.progress import Counter
from anymae.tokens import FLOAT32_MAX, FeatureTokens, ScaleFit, TokenArrays

CHUNK = 8192  # rows read, checked and tokenised at a time

Chunks = Callable[[], Iterable[tuple[list[list] | NumericRows, list[str]]]]  # a new pass over (rows, places) chunks


@dataclass
class Parsed:
    """A chunk as pass 1 read it, all pass 2 needs: its rows' indices (less those dropped for a field
    over several lines), their kept columns' numbers (n, kept; NaN where missing or categorical), the
    cells of categorical columns (stripped; None = missing), places and ids."""

    index: np.ndarray
    values: np.ndarray
    cells: dict[int, list]
    places: list[str]
    ids: list[str] | None


class ParsedChunks:
    """Pass 1's parsed chunks kept for pass 2 (which then parses no text): in memory, or appended to
    a scratch file at `path` (pickled; constant memory), removed by `close`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path, self.held = path, []
        self.clear()

    def clear(self) -> None:
        self.held = []
        if self.path is not None:
            self.path.write_bytes(b"")

    def add(self, chunk: Parsed) -> None:
        if self.path is None:
            self.held.append(chunk)
            return
        with open(self.path, "ab") as f:
            pickle.dump(chunk, f, protocol=pickle.HIGHEST_PROTOCOL)

    def __iter__(self) -> Iterator[Parsed]:
        if self.path is None:
            yield from self.held
            return
        with open(self.path, "rb") as f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    return

    def close(self) -> None:
        self.held = []
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def numbers(cells) -> tuple[np.ndarray, np.ndarray, int | None]:
    """A column's cells as floats (NaN where missing or not a number), which cells are missing or a
    number, and the first cell float() reads that is no plain decimal (1_0). Fast path: text cells
    that NumPy reads as floats at once and hold nothing but ASCII without '_' are plain decimals."""
    try:
        text = "".join(cells)
        if text.isascii() and "_" not in text:
            values = np.array(cells, dtype=np.float64)
            return values, np.ones(len(values), dtype=bool), None
    except (TypeError, ValueError):
        pass
    values, ok, odd = np.full(len(cells), np.nan), np.ones(len(cells), dtype=bool), None
    for i, cell in enumerate(cells):
        if is_missing(cell):
            continue
        number = as_number(cell)
        if number is None:
            ok[i] = False
            if odd is None and odd_number(cell):
                odd = i
        else:
            values[i] = number
    return values, ok, odd


@dataclass
class Layout:
    """Which columns of a table are features, the label and the ids."""

    path: Path
    columns: list[str]
    keep: list[int]
    label: int | None = None
    id: int | None = None

    @classmethod
    def of(cls, table: Table, label: str = "", id: str = "", drop: tuple[str, ...] = ()) -> Layout:
        label_index = table.column(label, "--label") if label else None
        id_index = table.column(id, "--id") if id else None
        dropped = {table.column(d, "dropped") for d in drop}
        skip = {label_index, id_index, *dropped}
        keep = [i for i in range(len(table.columns)) if i not in skip]
        if not keep:
            raise UserError(f"{table.path}: no feature columns besides the label")
        return cls(table.path, table.columns, keep, label_index, id_index)


@dataclass
class Scan:
    """Pass 1 over the rows. `numeric` (None: learnt as read) and `removed` (rows dropped for a field
    over several lines) are known when scanning again; a first scan that guessed wrong (a column
    that turned categorical after its first chunk, a row over several lines that is kept) is `stale`."""

    layout: Layout
    numeric: list[bool] | None = None
    removed: frozenset[int] = frozenset()
    known: bool = False
    rows: int = 0
    stale: bool = False
    levels: list[dict[str, int]] = field(default_factory=list)  # level -> count in rows that fit the scale
    odd: list[tuple[int, str] | None] = field(default_factory=list)  # first (row, cell) float() reads, per column
    huge: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # row -> (column, value) beyond float32
    no_label: list[int] = field(default_factory=list)
    sparse: dict[int, int | None] = field(default_factory=dict)  # rows with < 2 cells: row -> its one column
    multiline: list[tuple[int, list, str]] = field(default_factory=list)  # (row, cells, place), first scan
    labels: list = field(default_factory=list)  # every row's label cell (labelled tables only)
    places: dict[int, str] = field(default_factory=dict)  # places of the rows above
    all_places: list[str] | None = None  # every row's place, when asked (labels, importance maps)
    fit: ScaleFit | None = None
    parsed: ParsedChunks = field(default_factory=ParsedChunks)

    def __post_init__(self) -> None:
        width = len(self.layout.keep)
        self.known = self.numeric is not None
        self.numeric = list(self.numeric) if self.known else [True] * width
        self.levels = [{} for _ in range(width)]
        self.odd = [None] * width
        self.fit = ScaleFit(width)
        self.parsed.clear()

    def add(self, rows: list[list] | NumericRows, places: list[str]) -> None:
        """A chunk of rows: cells, or NumericRows (read as cells unless every kept column is numeric)."""
        first, layout = self.rows, self.layout
        if isinstance(rows, NumericRows) and (not all(self.numeric) or (self.known and self.removed)):
            rows = rows.cells()
        self.rows += len(rows)
        if layout.label is not None:
            self.labels += cells_of_column(rows, layout.label)
        if self.all_places is not None:
            self.all_places += places
        index = list(range(first, first + len(rows)))
        if self.known:
            gone = {i for i in index if i in self.removed} if self.removed else set()
        else:
            at = [] if isinstance(rows, NumericRows) else self.multiline_rows(rows)
            self.multiline += [(first + i, rows[i], places[i]) for i in at]
            gone = {first + i for i in at}
        if gone:
            keep = [k for k, i in enumerate(index) if i not in gone]
            rows, places, index = [rows[k] for k in keep], [places[k] for k in keep], [index[k] for k in keep]
        if not rows:
            return
        ids = None if layout.id is None else [str(cell) for cell in cells_of_column(rows, layout.id)]
        n = len(rows)
        values = np.full((n, len(layout.keep)), np.nan)
        missing = np.zeros((n, len(layout.keep)), dtype=bool)
        cells_of: dict[int, list] = {}
        columns = None if isinstance(rows, NumericRows) else list(zip(*rows))
        if columns is None:  # no cell missing, every kept column numeric (see above)
            values[:] = rows.values[:, layout.keep]
        for p, c in [] if columns is None else enumerate(layout.keep):
            cells = columns[c]
            if self.numeric[p]:
                column, ok, odd = numbers(cells)
                if ok.all():
                    values[:, p] = column
                    missing[:, p] = np.isnan(column)
                    continue
                if self.known:
                    raise AssertionError("a numeric column holds a word")  # removed rows are dropped above
                self.stale = self.stale or first > 0  # earlier rows were read as numbers
                self.numeric[p] = False
            cells_of[p] = [None if is_missing(cell) else str(cell).strip() for cell in cells]
            missing[:, p] = [cell is None for cell in cells_of[p]]
            if self.odd[p] is None:
                odd = next((i for i, cell in enumerate(cells) if odd_number(cell)), None)
                if odd is not None:
                    self.odd[p] = (index[odd], cells[odd])
                    self.places[index[odd]] = places[odd]
        fits = np.ones(n, dtype=bool)
        for r in np.flatnonzero((np.abs(np.nan_to_num(values, nan=0.0)) > FLOAT32_MAX).any(1)):
            big = np.flatnonzero(np.abs(np.nan_to_num(values[r], nan=0.0)) > FLOAT32_MAX)
            self.huge[index[r]] = [(int(p), float(values[r, p])) for p in big]
            self.places[index[r]] = places[r]
            fits[r] = False
        if layout.label is not None:
            for r, cell in enumerate(cells_of_column(rows, layout.label)):
                if is_missing(cell):
                    self.no_label.append(index[r])
                    self.places[index[r]] = places[r]
                    fits[r] = False
        for r in np.flatnonzero((~missing).sum(1) < MIN_TOKENS):
            present = np.flatnonzero(~missing[r])
            self.sparse[index[r]] = int(present[0]) if len(present) else None
            self.places[index[r]] = places[r]
        self.fit.add(values[fits])
        self.parsed.add(Parsed(np.asarray(index, dtype=np.int64), values, cells_of, places, ids))
        for p, cells in cells_of.items():
            counts = self.levels[p]
            for cell, fit in zip(cells, fits.tolist()):
                if cell is not None:
                    counts[cell] = counts.get(cell, 0) + fit

    def multiline_rows(self, rows: list[list]) -> list[int]:
        """Positions of the rows with a field over several lines (text columns joined: C speed)."""
        found: set[int] = set()
        for cells in zip(*rows) if rows else ():
            try:
                if "\n" not in "".join(cells):
                    continue
            except TypeError:
                pass
            found.update(i for i, cell in enumerate(cells) if isinstance(cell, str) and "\n" in cell)
        return sorted(found)


def cells_of_column(rows: list[list] | NumericRows, index: int) -> list:
    return rows.column(index) if isinstance(rows, NumericRows) else [row[index] for row in rows]


def scan(
    chunks: Chunks,
    layout: Layout,
    bad: BadRecords,
    counter=None,
    maps: bool = False,
    parsed: ParsedChunks | None = None,
) -> Scan:
    """Pass 1, and a second one in the rare case the first guessed wrong (see Scan), its chunks
    parsed into `parsed` (default: in memory). Every row's place is kept for labelled tables and
    importance `maps` (their checks may name any row)."""
    every = [] if layout.label is not None or maps else None
    first = Scan(layout, all_places=every, parsed=parsed or ParsedChunks())
    for rows, places in chunks():
        first.add(rows, places)
        if counter is not None:
            counter.update(len(rows))
    numeric = first.numeric
    parsed_as = list(numeric)
    for _, cells, _ in first.multiline:  # a field over several lines does not make a column categorical
        for p, c in enumerate(layout.keep):
            cell = cells[c]
            fits = is_missing(cell) or as_number(cell) is not None or (isinstance(cell, str) and "\n" in cell)
            numeric[p] = numeric[p] and fits
    removed = []
    for row, cells, place in first.multiline:
        broken = next((p for p in range(len(layout.keep)) if numeric[p] and "\n" in str(cells[layout.keep[p]])), None)
        if broken is None:
            first.stale = True
        else:
            bad(place, f"field '{layout.columns[layout.keep[broken]]}' runs over several lines (a stray quote?)")
            removed.append(row)
    categorical = {p for p, is_number in enumerate(numeric) if not is_number}
    if any(p in categorical for big in first.huge.values() for p, _ in big):
        first.stale = True
    if numeric != parsed_as:  # a column made categorical by a field over several lines: its levels uncounted
        first.stale = True
    if not first.stale:
        return first
    places = None if every is None else []
    again = Scan(layout, numeric=numeric, removed=frozenset(removed), all_places=places, parsed=first.parsed)
    for rows, places in chunks():
        again.add(rows, places)
    return again


@dataclass
class Plan:
    """What pass 2 needs: the spec, each kept column's levels, the rows to skip; and the kept labels."""

    layout: Layout
    spec: FeatureTokens
    levels: list[dict[str, int] | None]  # per kept column: None for numbers, else level -> feature offset
    skip: set[int]
    labels: list | None
    rows: int
    maps: np.ndarray | None = None  # importance maps, one row per row read

    def encode(self, chunk: Parsed) -> tuple[np.ndarray, np.ndarray]:
        """A parsed chunk's kept rows as features (n, F), NaN where missing; and their positions in it."""
        kept = np.flatnonzero(~np.isin(chunk.index, list(self.skip))) if self.skip else np.arange(len(chunk.index))
        values = chunk.values[kept] if len(kept) < len(chunk.index) else chunk.values
        blocks = []
        for p, levels in enumerate(self.levels):
            if levels is None:
                blocks.append(values[:, p : p + 1])
                continue
            block = np.zeros((len(kept), len(levels)))
            for r, cell in enumerate(chunk.cells[p][i] for i in kept):
                if cell is None:
                    block[r] = np.nan
                else:
                    block[r, levels[cell]] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1), kept


def plan(found: Scan, bad: BadRecords, name: str, splits=None, importance: list | None = None) -> Plan:
    """The features and rows that `found` gives, reporting bad records in the order of the rules."""
    layout, numeric = found.layout, found.numeric
    features, levels = [], []
    for p, c in enumerate(layout.keep):
        column = layout.columns[c]
        if found.odd[p] is not None:
            row, cell = found.odd[p]
            raise UserError(
                f"{layout.path}, {found_place(found, row)}: field '{column}' = {cell!r} is not a plain number "
                "(write 10, not 1_0)"
            )
        if numeric[p]:
            features.append(column)
            levels.append(None)
            continue
        names = sorted(found.levels[p])
        if len(names) > MAX_LEVELS:
            raise UserError(
                f"{layout.path}: column '{column}' has {len(names)} distinct non-numeric values (at most "
                f"{MAX_LEVELS} levels are one-hot encoded): drop it, or name it with --label"
            )
        levels.append({level: i for i, level in enumerate(names)})
        features += [f"{column}={level}" for level in names]
    skip: set[int] = set(found.removed)
    offsets = np.cumsum([0] + [1 if lv is None else len(lv) for lv in levels])
    for row in sorted(found.huge):
        big = [(p, v) for p, v in found.huge[row] if numeric[p]]
        if big:
            p, value = big[0]
            kind = "infinite" if np.isinf(value) else f"{value:.3g}, beyond the float32 range"
            bad(found.places[row], f"field '{features[offsets[p]]}' is {kind}")
            skip.add(row)
    for row in found.no_label:
        if row not in skip:
            bad(found.places[row], f"label '{layout.columns[layout.label]}' is missing")
            skip.add(row)
    if splits is not None and skip:
        raise UserError(f"{layout.path}: bad records in a dataset with fixed splits")
    mean, scale = feature_scale(found, levels)
    spec = FeatureTokens(features=tuple(features), mean=mean, scale=scale)
    if spec.max_tokens < MIN_TOKENS:
        raise UserError(
            f"{name}: each tabular sample is {spec.max_tokens} token; masking needs at least 2 "
            "(one to hide, one to see)"
        )
    result = Plan(layout, spec, levels, skip, None, found.rows)
    rows = kept_rows(found.rows, skip).tolist() if layout.label is not None or importance is not None else []
    labels = None if layout.label is None else [found.labels[r] for r in rows]
    odd_labels = set() if labels is None else {rows[i] for i in odd_kind_labels(labels)}
    problems = {} if labels is None else {r: p for r, v in zip(rows, labels) if (p := label_problem(v))}
    counts = None
    if importance is not None:  # the maps' lengths are checked against every row's valid tokens
        counts = np.zeros(found.rows, dtype=np.int64)  # rows dropped for a field over several lines: skipped
        for chunk in found.parsed:
            x, kept = result.encode(chunk)
            counts[chunk.index[kept]] = np.isfinite(x).sum(1)
        result.maps = np.zeros((found.rows, spec.max_tokens), dtype=np.float32)
    width = [1 if lv is None else len(lv) for lv in levels]
    suspects = rows if importance is not None else sorted({*found.sparse, *odd_labels, *problems} - skip)
    for r in suspects:
        place = found_place(found, r)
        if r in found.sparse:
            one = found.sparse[r]
            count = 0 if one is None else width[one]
        else:
            count = MIN_TOKENS if counts is None else int(counts[r])
        if count < MIN_TOKENS:
            bad(place, too_few(count))
            skip.add(r)
            continue
        if counts is not None and not fill_map(result.maps[r], importance[r], int(counts[r]), place, bad):
            skip.add(r)
            continue
        problem = problems.get(r, "")
        if r in odd_labels and not problem:
            label = found.labels[r]
            kind = "a word" if as_number(label) is None else "a number"
            problem = f"label {label!r} is {kind}; the other labels are not (a label column holds one or the other)"
        if problem:
            bad(place, problem)
            skip.add(r)
    result.labels = None if labels is None else [found.labels[r] for r in rows if r not in skip]
    return result


def ending(
    found: Plan,
    bad: BadRecords,
    tokens: TokenArrays,
    ids: list[str],
    *,
    name: str,
    splits=None,
    task: str | None = None,
    notes: dict | None = None,
    **about,
) -> Dataset:
    """The rest of data.dataset.make_dataset, for the rows a Plan keeps: labels, task, notes, splits."""
    keep = kept_rows(found.rows, found.skip)
    if len(keep) < 2:
        raise UserError(f"{name}: fewer than 2 usable records ({len(keep)} usable, {bad.summary()}); at least 2 needed")
    report = bad.report()
    y, found_task = None, "none"
    if found.labels is not None:
        y, found_task, extra = labels_and_task(found.labels, name, task)
        report.update(extra)
    parts = split_kept(splits, keep, found.rows)
    if len(parts["train"]) == 0:
        raise UserError(
            f"{name}: the training split is empty ({len(keep)} usable records, "
            f"{len(parts['val'])} in val and {len(parts['test'])} in test); one batch needs at least 1 training "
            "record: add records"
        )
    return Dataset(
        name=name,
        spec=found.spec,
        tokens=tokens,
        labels=y,
        splits=parts,
        task=found_task,
        notes={**report, **(notes or {})},
        ids=ids,
        **{"source": name, **about},
    )


def tabular_dataset(
    table: Table,
    bad: BadRecords,
    config: DataConfig,
    label: str = "",
    drop: tuple[str, ...] = (),
    importance: list | None = None,
    **about,
) -> Dataset:
    """Every column but the label (and `drop`) is a feature (see the module's rules). `about`: name,
    source, license, metric, task, splits (see make_dataset)."""
    layout = Layout.of(table, label, drop=drop)

    def chunks() -> Iterator[tuple[list[list], list[str]]]:
        for begin in range(0, len(table.rows), CHUNK):
            yield table.rows[begin : begin + CHUNK], table.places[begin : begin + CHUNK]

    about = {"name": table.path.name, "source": str(table.path), **about}
    scanned = scan(chunks, layout, bad, maps=importance is not None)
    found = plan(scanned, bad, about["name"], about.get("splits"), importance)
    parts, ids = [], []
    for chunk in scanned.parsed:
        x, kept = found.encode(chunk)
        parts.append(found.spec.tokenize(x))
        ids += [chunk.places[i] for i in kept]
    scanned.parsed.close()
    tokens = TokenArrays(np.concatenate([t.inputs for t in parts]), np.concatenate([t.valid for t in parts]))
    if found.maps is not None:
        tokens.importance = found.maps[kept_rows(found.rows, found.skip)]
    return ending(found, bad, tokens, ids, **about)


def kept_rows(rows: int, skip: set[int]) -> np.ndarray:
    """The indices of `rows` rows less `skip` (8 bytes a row: no Python int per row)."""
    keep = np.ones(rows, dtype=bool)
    keep[list(skip)] = False
    return np.flatnonzero(keep)


def found_place(found: Scan, row: int) -> str:
    return found.all_places[row] if found.all_places is not None else found.places[row]


def feature_scale(found: Scan, levels: list) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and scale per feature over the rows that fit: numbers as tokens.fit_scale; a level's
    indicator (0 / 1 where its column is not missing) from its count."""
    mean_of, scale_of = found.fit.result()
    mean, scale = [], []
    for p, lv in enumerate(levels):
        if lv is None:
            mean.append(mean_of[p])
            scale.append(scale_of[p])
            continue
        counts = found.levels[p]
        total = max(sum(counts.values()), 1)
        for level in lv:
            share = counts[level] / total
            std = float(np.sqrt((counts[level] * (1 - share) ** 2 + (total - counts[level]) * share**2) / total))
            mean.append(share)
            scale.append(std if std >= 1e-12 * max(abs(share), 1.0) else 1.0)
    return tuple(mean), tuple(scale)


# ---------------------------------------------------------------- CSV / TSV files into a store


def header(path: Path) -> list[str]:
    """A CSV / TSV file's column names."""
    return next(csv_rows(path, BadRecords(path, "skip"), delimiter(path)))


def csv_chunks(files: list[Path], bad: BadRecords | None, size: int) -> Iterator[tuple[list | NumericRows, list[str]]]:
    """(rows, places) of CSV / TSV shards in chunks of `size`; their own bad records go to `bad` (None:
    a later pass, already reported). Shards must have the same columns; places name the shard."""
    columns = None
    for path in files:
        own = BadRecords(path, "skip" if bad is None else bad.policy)
        where = f"{path.name}, " if len(files) > 1 else ""
        rows = csv_rows(path, own, delimiter(path), numbers=True)
        found = next(rows)
        if columns is not None and found != columns:
            raise UserError(f"{path}: columns {', '.join(found)} differ from {files[0]}'s {', '.join(columns)}")
        columns = found
        held: list = []  # blocks of rows (lists of cells, NumericRows) and their places
        places: list[str] = []
        for cells, where_in in rows:
            held.append(cells)
            places += [where + place for place in where_in]
            if len(places) >= size:
                block = NumericRows.joined(held)
                while len(block) >= size:
                    yield block[:size], places[:size]
                    block, places = block[size:], places[size:]
                held = [block]
        if places:
            yield NumericRows.joined(held), places
        if bad is not None:
            bad.take(own, where)


def stream_table(
    files: list[Path], config: DataConfig, start: Callable, name: str, scratch: Path, chunk: int = CHUNK
) -> dict:
    """CSV / TSV files of features read a chunk at a time into the writer `start(spec)` returns, with
    the tokens, bad records, labels, ids and splits of `--data FILE`; what the store notes. The text
    is parsed once: pass 2 reads pass 1's parsed chunks from the file `scratch` (removed at the end)."""
    bad = BadRecords(config.name if len(files) > 1 else files[0], config.on_bad_record)
    table = Table(files[0], header(files[0]), [], [])
    if config.id:  # looked up first, as load_table does
        table.column(config.id, "--id")
    layout = Layout.of(table, config.label, config.id)
    read = Counter(f"reading {name}", "rows")
    parsed = ParsedChunks(scratch)
    try:
        with streaming():  # no limit on the file's size
            found = scan(lambda: csv_chunks(files, bad, chunk), layout, bad, read, parsed=parsed)
            read.close()
            result = plan(found, bad, files[0].name)
            writer = start(result.spec)
            written = Counter(f"writing {name}", "rows", found.rows)
            for part in parsed:
                x, kept = result.encode(part)
                names = part.places if part.ids is None else part.ids
                writer.add(result.spec.tokenize(x), [names[i] for i in kept])
                written.update(len(part.index))
            written.close()
    finally:
        parsed.close()
    empty = TokenArrays(np.zeros((0, result.spec.max_tokens, 1), dtype=np.float32), np.zeros((0, 0), dtype=bool))
    dataset = ending(result, bad, empty, [], name=files[0].name, source=str(files[0]))
    return {"dataset": dataset, "labels": None if dataset.labels is None else np.asarray(dataset.labels)}
