"""Every input `--data` takes (a built-in name, a file, a folder or glob of shards, a Hugging Face
`datasets` folder saved with save_to_disk, a prepared store) read into a Dataset, and `prepare`,
which reads one once into a store (data/store.py).

FASTA, one-sample-a-line (.txt, .smi; plain, .gz, .bz2), JSON Lines and SD files, and unlabelled
string samples of a Hugging Face folder (a batch of Arrow rows at a time), are read record by record in
chunks of CHUNK samples, checked and tokenised in parallel processes, and written as they come:
preparing them needs memory independent of the file's size (molecules keep their canonical
SMILES until the end, for the scaffold split). CSV / TSV tables of features (features_only)
are read twice in chunks of rows by data/features.py, the code `--data FILE` reads them with.
Every other input is read whole, as `--data FILE` reads it, then written in chunks.
"""

from __future__ import annotations

import glob
import itertools
import json
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from anymae import chem
from anymae.config import DataConfig
from anymae.data import hf_disk
from anymae.data.catalog import BUILTINS, load_builtin
from anymae.data.dataset import MIN_TOKENS, Cuts, Dataset, random_splits, too_few
from anymae.data.features import header, stream_table
from anymae.data.files import (
    COLUMNS,
    FASTA,
    TABLES,
    TEXT,
    check_modality,
    column_modality,
    kind,
    load_file,
    load_table,
)
from anymae.data.records import BadRecords, numbered_lines, open_binary, streaming
from anymae.data.sequences import (
    STRING_MODALITIES,
    fasta_records,
    guess_alphabet,
    read_fasta,
    string_spec,
    token_length,
)
from anymae.data.store import META, StoreWriter, is_store, open_store, pad, ragged_ok, token_dtype
from anymae.data.tables import Table, read_table
from anymae.errors import UserError
from anymae.progress import Counter
from anymae.tokens import DnaSequence, ModalitySpec, TokenArrays

CHUNK = 8192  # samples checked, tokenised and written at a time
JSONL = (".jsonl", ".ndjson")
SDF = (".sdf", ".sd")
RECORDS = (*JSONL, *SDF)  # records of named fields: read as a table when labelled
STREAMED = (*FASTA, *TEXT, ".smi", *JSONL, *SDF)  # read record by record
SHARDS = (*STREAMED, ".csv", ".tsv")  # what a folder or glob of shards may hold


def load_dataset(config: DataConfig) -> Dataset:
    """A built-in dataset by name, a prepared store, shards (a folder or glob), or a user's file;
    settings that fit one kind of data only are refused on another."""
    if not config.name.strip():
        raise UserError("--data (data.name) is empty: name a built-in dataset or a file path")
    dataset = read_dataset(config)
    if config.kmer != 1 and not isinstance(dataset.spec, DnaSequence):
        raise UserError(f"data.kmer applies to DNA only; {config.name} is {dataset.spec.name} data")
    if (config.layer or config.normalise != "none") and "matrix" not in dataset.notes:
        raise UserError(f"data.layer and data.normalise apply to .h5ad files only, not to {config.name}")
    return dataset


def read_dataset(config: DataConfig) -> Dataset:
    """The dataset a name or path gives, before the checks of settings that fit one kind of data."""
    if config.name in BUILTINS:
        check_columns(config, None)
        modality = BUILTINS[config.name].modality
        if config.modality and config.modality != modality:
            raise UserError(f"dataset '{config.name}' is {modality} data, not --modality {config.modality}")
        return load_builtin(config.name, config)
    path = Path(config.name)
    if is_store(path):
        return open_store(path, config)
    shards = shard_files(config.name)
    if kind(path) in RECORDS and path.is_file():  # no reader of the whole file: read as one shard
        shards = [path]
    check_columns(config, path if shards is None else shards[0])
    if shards is not None:
        if streamable(shards, config):
            writer = MemoryWriter()
            return writer.dataset(stream_strings(shards, config, writer.start, config.name))
        return load_shards(shards, config)
    if path.exists():
        return load_file(path, config)
    raise UserError(
        f"unknown dataset '{config.name}': not a built-in name ({', '.join(BUILTINS)}) "
        "and no such file; `anymae data list` shows the built-in datasets"
    )


# ---------------------------------------------------------------- shards


def shard_files(name: str) -> list[Path] | None:
    """The files of a folder or glob of FASTA / text / SMILES / CSV shards, in name order; [the
    folder] for a Hugging Face datasets folder (one source of many Arrow files); None when `name` is
    neither (one file, a built-in, an image folder, a store)."""
    path = Path(name)
    if path.is_dir():
        if (path / META).exists():
            return None
        if hf_disk.is_hf_folder(path):
            return [path]
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not any(kind(p) in SHARDS for p in files):
            return None  # a folder of images
    elif glob.has_magic(name) and not path.exists():
        files = sorted(Path(p) for p in glob.glob(name) if Path(p).is_file())
        if not files:
            raise UserError(f"--data {name}: no file matches")
    else:
        return None
    kinds = {kind(p) for p in files}
    if len(kinds) > 1 or not kinds <= set(SHARDS):
        raise UserError(
            f"{name}: shards must all be of one kind ({', '.join(SHARDS)}); found {', '.join(sorted(kinds))}"
        )
    return files


def check_columns(config: DataConfig, first: Path | None) -> None:
    """data.column and data.id name columns: refused for inputs without them (`first`: the file read)."""
    found = "" if first is None else "hf" if hf_disk.is_hf_folder(first) else kind(first)
    if config.column and found not in (*TABLES, *JSONL, "hf"):
        raise UserError(
            f"{config.name}: --column (data.column) names the sample column of a CSV / TSV / Parquet table or "
            "a Hugging Face datasets folder, or the sample field of a JSON Lines file; this input has none"
        )
    if config.id and found not in TABLES:
        raise UserError(
            f"{config.name}: --id (data.id) names a column of a CSV / TSV / Parquet table; other inputs keep "
            "their own ids (FASTA header, line or record number, molecule name, image file name)"
        )


def load_shards(files: list[Path], config: DataConfig) -> Dataset:
    """CSV / TSV shards read whole as one table with the same columns; labelled JSON Lines and SD
    files as one table of their records' fields (record_table). Bad records are counted over all."""
    many = len(files) > 1
    bad = BadRecords(config.name if many else files[0], config.on_bad_record)
    if hf_disk.is_hf_folder(files[0]):
        return load_hf(files[0], config, bad)
    if kind(files[0]) in RECORDS:
        field = json_field(files[0], config.column)[1] if kind(files[0]) in JSONL else "smiles"
        config = replace(config, modality=string_modality(files, config), column=field)
        table, names = record_table(files, config, bad)
        return load_table(files[0], config, bad, table, ids=names)
    if kind(files[0]) not in TABLES:
        raise UserError(
            f"{config.name}: FASTA and one-sample-a-line shards have no columns; --label and data.importance "
            "need a table, a JSON Lines or an SD file"
        )
    columns, rows, places = None, [], []
    for path in files:
        own = BadRecords(path, config.on_bad_record)
        table = read_table(path, own)
        if columns is not None and table.columns != columns:
            raise UserError(f"{path}: columns {', '.join(table.columns)} differ from {files[0]}'s {', '.join(columns)}")
        columns = table.columns
        where = f"{path.name}, " if many else ""
        rows += table.rows
        places += [where + p for p in table.places]
        bad.take(own, where)
    return load_table(files[0], config, bad, Table(files[0], columns, rows, places))


def record_table(files: list[Path], config: DataConfig, bad: BadRecords) -> tuple[Table, dict[str, str]]:
    """JSON Lines or SD files read whole as one table, and each row's id: a JSON record's fields, or
    `smiles` and an SD record's properties, are the columns (in the order first seen; a field a
    record lacks is missing). Ids: the molecule's name, else the place (with the file, for shards)."""
    many = len(files) > 1
    columns: dict[str, None] = {"smiles": None} if kind(files[0]) in SDF else {}
    records, places, names = [], [], {}
    for path in files:
        own = BadRecords(path, config.on_bad_record)
        where = f"{path.name}, " if many else ""
        for _, record, place, name in field_records(path, own, config.column, properties=True):
            columns.update(dict.fromkeys(record))
            records.append(record)
            places.append(where + place)
            names[where + place] = where + name if name == place else name
        bad.take(own, where)
    rows = [[json_cell(record.get(column)) for column in columns] for record in records]
    return Table(files[0], list(columns), rows, places), names


def load_hf(folder: Path, config: DataConfig, bad: BadRecords) -> Dataset:
    """A Hugging Face datasets folder read whole as one table (labelled, or features), with its own
    splits when it is a DatasetDict."""
    table, task = hf_disk.hf_table(folder, config.label)
    dataset = load_table(folder, config, bad, table, task=task)
    names = hf_disk.fixed_splits(folder)
    if names is not None:
        dataset.splits = hf_disk.splits_of(hf_disk.split_codes(list(dataset.ids), names), names)
    return dataset


# ---------------------------------------------------------------- strings, record by record


def streamable(files: list[Path], config: DataConfig) -> bool:
    """Files read record by record: FASTA and one sample a line, unlabelled, without importance maps
    (the readers refuse those with their own messages); a Hugging Face folder's column of strings."""
    if config.label or config.importance:
        return False
    if hf_disk.is_hf_folder(files[0]):
        return config.modality in ("", *STRING_MODALITIES) and hf_disk.sample_field(files[0], config.column) is not None
    return kind(files[0]) in STREAMED


def string_modality(files: list[Path], config: DataConfig) -> str:
    first = files[0]
    if hf_disk.is_hf_folder(first):
        check_modality(first, config.modality, ("text", "protein", "dna", "smiles"))
        modality = config.modality or hf_disk.sample_field(first, config.column)[0]
        if modality == "protein" and not config.modality:  # a sequence column of A C G T N only is DNA
            first_rows = itertools.islice(hf_disk.string_rows(first, BadRecords(first, "skip"), config.column), 100)
            modality = guess_alphabet([sample for sample, _, _ in first_rows])
        return modality
    if kind(first) in FASTA:
        check_modality(first, config.modality, ("protein", "dna"))
        return config.modality or guess_alphabet(read_fasta(first, BadRecords(first, "skip"), limit=100)[1])
    if kind(first) in (".smi", *SDF):
        check_modality(first, config.modality, ("smiles",))
        return "smiles"
    if kind(first) in JSONL:
        check_modality(first, config.modality, ("text", "protein", "dna", "smiles"))
        return config.modality or json_field(first, config.column)[0]
    check_modality(first, config.modality, ("text", "protein", "dna", "smiles"))
    return config.modality or "text"


def string_records(path: Path, spec: ModalitySpec, bad: BadRecords, column: str = "") -> Iterator[tuple[str, str, str]]:
    """(sample, place, id) of each record of a FASTA, one-sample-a-line, SD or JSON Lines file
    (`column`: its sample field, data.column), or of a Hugging Face folder's sample column, as read."""
    if hf_disk.is_hf_folder(path):
        yield from hf_disk.string_rows(path, bad, column)
        return
    if kind(path) in FASTA:
        for name, sequence, place in fasta_records(path, bad, spec):  # type: ignore[arg-type]
            yield sequence, place, name
        return
    if kind(path) in RECORDS:
        for sample, _, place, name in field_records(path, bad, column):
            yield sample, place, name
        return
    smi, seen = kind(path) == ".smi", False
    for number, line in numbered_lines(path, bad):
        if line.strip():
            seen = True
            yield line.split()[0] if smi else line, f"line {number}", f"line {number}"
    if not seen and not bad.count:
        raise UserError(f"{path}: the file is empty (expected one sample per line)")


def field_records(path: Path, bad: BadRecords, column: str = "", properties: bool = False) -> Iterator[tuple]:
    """(sample, fields, place, id) of each readable record of an SD file (the SMILES; `smiles` and the
    SD properties when asked; id: the molecule's name) or a JSON Lines file (the string in the field
    json_field picks; the object; id: the place). Any other record is a bad record."""
    if kind(path) in SDF:
        with open_binary(path) as stream:
            for number, (smiles, name, values) in enumerate(chem.sdf_molecules(stream, properties), 1):
                place = f"record {number}"
                if smiles is None:
                    bad(place, "RDKit cannot read this molecule")
                    continue
                own = {key: value for key, value in values.items() if key.lower() != "smiles"}  # the molecule is
                yield smiles, {"smiles": smiles, **own}, place, name or place
        return
    field = json_field(path, column)[1]
    for number, line in numbered_lines(path, bad):
        if line.strip():
            place = f"line {number}"
            record = json_object(line)
            if record is None:
                bad(place, "not a JSON object")
                continue
            value = record.get(field)
            if not isinstance(value, str) or not value.strip():
                bad(place, f"field '{field}' is missing, empty or not a string")
                continue
            yield value, record, place, place


def json_object(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def json_field(path: Path, column: str = "") -> tuple[str, str]:
    """(modality, field) of a JSON Lines file, from its first object: the field `column` (data.column;
    its modality by its name, else text), else its field named smiles, text (sentence, review) or
    sequence (seq), as for a table's columns."""
    names = ", ".join(c for m in ("smiles", "text", "protein") for c in COLUMNS[m])
    seen = False
    for number, line in numbered_lines(path, BadRecords(path, "skip")):
        seen = seen or bool(line.strip())
        record = json_object(line) if line.strip() else None
        if record is None:
            continue  # reported as a bad record when read
        if column:
            found = next((k for k in record if k == column), None) or next(
                (k for k in record if k.lower() == column.lower()), None
            )
            if found is None:
                raise UserError(f"{path}, line {number}: no field '{column}' (--column); fields: {', '.join(record)}")
            return column_modality(found) or "text", found
        for modality in ("smiles", "text", "protein"):
            found = next((k for k in record if k.lower() in COLUMNS[modality]), None)
            if found is not None:
                return modality, found
        raise UserError(
            f"{path}, line {number}: no field named {names} (the field read as samples; name another with --column)"
        )
    if not seen:
        raise UserError(f"{path}: the file is empty (JSON Lines: one object a line)")
    raise UserError(f"{path}: no line is a JSON object (JSON Lines: one object a line)")


def json_cell(value) -> object:
    """A JSON value as a table cell: text, numbers and null as they are, lists and objects as JSON text."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def check_chunk(spec: ModalitySpec, samples: list[str], keep_samples: bool) -> tuple:
    """What strings_dataset and make_dataset do to each sample, to a chunk: (kept positions,
    problems [(position, message)], valid token ids end to end, lengths, lengths before the cut,
    the kept samples when asked)."""
    kept, checked, problems = [], [], []
    for i, sample in enumerate(samples):
        sample, problem = spec.check(sample)
        if problem:
            problems.append((i, problem))
        else:
            kept.append(i)
            checked.append(sample)
    tokens = spec.tokenize(checked)
    counts = tokens.valid.sum(1)
    usable = counts >= MIN_TOKENS
    problems += [(kept[j], too_few(int(counts[j]))) for j in np.flatnonzero(~usable)]
    flat = tokens.inputs[tokens.valid & usable[:, None]].astype(token_dtype(spec))
    full = np.array([token_length(s) for s, ok in zip(checked, usable) if ok], dtype=np.int64)
    samples_kept = [s for s, ok in zip(checked, usable) if ok] if keep_samples else None
    return [k for k, ok in zip(kept, usable) if ok], sorted(problems), flat, counts[usable], full, samples_kept


def chunks(
    files: list[Path], bads: list[BadRecords], spec: ModalitySpec, size: int, column: str = ""
) -> Iterator[tuple]:
    """(samples, places, ids, each record's BadRecords) in chunks of `size` over every file, in order;
    a record named by its place is named by its file too when there are several."""
    part: tuple[list, list, list, list] = ([], [], [], [])
    for path, bad in zip(files, bads):
        for sample, place, name in string_records(path, spec, bad, column):
            name = f"{path.name}, {name}" if name == place and len(files) > 1 else name
            for values, value in zip(part, (sample, place, name, bad)):
                values.append(value)
            if len(part[0]) == size:
                yield part
                part = ([], [], [], [])
    if part[0]:
        yield part


def checked_chunks(parts: Iterator, spec: ModalitySpec, keep_samples: bool, workers: int) -> Iterator[tuple]:
    """(chunk, check_chunk of it) in order, checked by `workers` processes at most a few chunks ahead."""
    if workers <= 1:
        for part in parts:
            yield part, check_chunk(spec, part[0], keep_samples)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pending: deque = deque()
        for part in parts:
            pending.append((part, pool.apply_async(check_chunk, (spec, part[0], keep_samples))))
            if len(pending) > 2 * workers:  # bounded: the reader never runs far ahead of the writer
                part, result = pending.popleft()
                yield part, result.get()
        while pending:
            part, result = pending.popleft()
            yield part, result.get()


def stream_strings(
    files: list[Path], config: DataConfig, start: Callable, name: str, workers: int = 1, chunk: int = CHUNK
) -> dict:
    """Read string files record by record into the writer `start(spec)` returns, with the checks,
    tokens, bad records and splits of `--data FILE` (strings_dataset); what the store notes."""
    spec = string_spec(string_modality(files, config), config.max_tokens, config.kmer)
    writer = start(spec)
    keep_samples = spec.split([]) is not None  # molecules are split by scaffold: their samples are needed
    samples: list[str] = []
    named = hf_disk.fixed_splits(files[0]) if hf_disk.is_hf_folder(files[0]) else None  # a DatasetDict's
    codes: list[np.ndarray] = []  # the split of each kept record, for fixed splits
    bads = [BadRecords(path, config.on_bad_record) for path in files]
    cuts, read = Cuts(spec.max_tokens), Counter(f"reading {name}", "records")
    with streaming():
        for (raw, places, ids, bad), result in checked_chunks(
            chunks(files, bads, spec, chunk, config.column), spec, keep_samples, workers
        ):
            kept, problems, flat, lengths, full, kept_samples = result
            for position, problem in problems:
                bad[position](places[position], problem)
            writer.add_ragged(flat, lengths, [ids[k] for k in kept])
            if named is not None:
                codes.append(hf_disk.split_codes([ids[k] for k in kept], named))
            cuts.add(full)
            samples += kept_samples or []
            read.update(len(raw))
    read.close()
    n, skipped = writer.samples, sum(b.count for b in bads)
    for b in bads:
        b.report()
    if n < 2:
        raise UserError(f"{name}: fewer than 2 usable records ({n} usable, {skipped} bad); at least 2 needed")
    if named is not None:
        splits = hf_disk.splits_of(np.concatenate(codes), named)
    else:
        splits = spec.split(samples) if keep_samples else random_splits(n, seed=0)
    if len(splits["train"]) == 0:
        raise UserError(f"{name}: the training split is empty ({n} usable records); add records")
    places = [f"{b.path}, {p}" if len(files) > 1 else p for b in bads for p in b.places]
    notes = {"skipped": skipped, "skipped_at": places[:20], **cuts.report(name, n)}
    about = {"name": Path(name).name, "source": name, "task": "none", "metric": "none", "license": ""}
    return {"spec": spec, "splits": splits, "labels": None, "about": {**about, "notes": notes}}


class MemoryWriter:
    """Takes what `stream_strings` writes and makes an in-memory Dataset of it (one-step --data SHARDS)."""

    def __init__(self) -> None:
        self.flat: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.ids: list[str] = []
        self.samples = 0

    def start(self, spec: ModalitySpec) -> MemoryWriter:
        return self

    def add_ragged(self, flat: np.ndarray, lengths: np.ndarray, ids: list[str]) -> None:
        self.flat.append(flat)
        self.lengths.append(lengths)
        self.ids += ids
        self.samples += len(lengths)

    def dataset(self, found: dict) -> Dataset:
        spec = found["spec"]
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(self.lengths))]).astype(np.int64)
        tokens = pad(np.concatenate(self.flat), offsets, np.arange(self.samples), spec.max_tokens)
        return Dataset(spec=spec, tokens=tokens, labels=None, splits=found["splits"], ids=self.ids, **found["about"])


# ---------------------------------------------------------------- preparing a store


def source_stamp(files: list[Path]) -> list[dict]:
    """What says a source file is unchanged: its path, size and modification time."""
    stamps = []
    for path in files:
        stat = path.stat()
        stamps.append({"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return stamps


def input_files(name: str) -> list[Path]:
    """The files a store is read from (none for a built-in dataset)."""
    shards = shard_files(name)
    if shards is not None and not hf_disk.is_hf_folder(shards[0]):
        return shards
    path = Path(name)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path] if path.exists() and name not in BUILTINS else []


def prepare(config: DataConfig, out: Path, workers: int = 0, chunk: int = CHUNK) -> dict:
    """Read config.name (a file, shards, a built-in dataset) once into a store at `out`; its store.json.

    Built in `.OUT.partial-PID` beside `out` and renamed into place when whole; a store already at
    `out` is replaced, anything else there refused."""
    out = Path(out)
    if out.exists() and not is_store(out):
        raise UserError(f"--out {out} exists and is not a store; name a new folder")
    if is_store(Path(config.name)):
        raise UserError(f"{config.name} is a store already; give it to --data as it is")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        stamps = {"data": settings(config), "files": source_stamp(input_files(config.name))}
        shards = shard_files(config.name)
        files = shards if shards is not None else [Path(config.name)] if Path(config.name).is_file() else None
        if files is not None and streamable(files, config):
            writers: list[StoreWriter] = []

            def start(spec: ModalitySpec) -> StoreWriter:
                writers.append(StoreWriter(tmp, spec, ragged=True))
                return writers[0]

            found = stream_strings(files, config, start, config.name, workers or os.cpu_count() or 1, chunk)
            meta = writers[0].finish(found["splits"], None, {**found["about"], **stamps})
        elif files is not None and features_only(files, config):
            tables: list[StoreWriter] = []

            def start_table(spec: ModalitySpec) -> StoreWriter:
                tables.append(StoreWriter(tmp, spec, ragged=False))
                return tables[0]

            found = stream_table(files, config, start_table, config.name, tmp / "parsed-rows.scratch", chunk)
            meta = tables[0].finish(found["dataset"].splits, found["labels"], {**about(found["dataset"]), **stamps})
        else:
            meta = write_whole(load_dataset(config), tmp, stamps)
        if out.exists():  # the old store stops opening before the new one moves in
            (out / META).unlink()
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def write_whole(dataset: Dataset, folder: Path, stamps: dict, chunk: int = CHUNK) -> dict:
    """A dataset read whole (tables, arrays, images, built-ins) written into a store, a chunk at a time."""
    tokens = dataset.tokens
    ragged = dataset.spec.discrete and tokens.importance is None and ragged_ok(tokens)
    writer = StoreWriter(folder, dataset.spec, ragged, importance=tokens.importance is not None)
    counter = Counter(f"writing {dataset.name}", "samples", len(dataset))
    for begin in range(0, len(dataset), chunk):
        rows = slice(begin, begin + chunk)
        importance = None if tokens.importance is None else tokens.importance[rows]
        part = TokenArrays(tokens.inputs[rows], tokens.valid[rows], importance)
        ids = dataset.ids[rows] if dataset.ids is not None else [f"sample {i}" for i in range(begin, begin + len(part))]
        writer.add(part, ids)
        counter.update(len(part))
    counter.close()
    labels = None if dataset.labels is None else np.asarray(dataset.labels)
    return writer.finish(dataset.splits, labels, {**about(dataset), **stamps})


def about(dataset: Dataset) -> dict:
    """What a store notes about its dataset."""
    return {key: getattr(dataset, key) for key in ("name", "source", "license", "task", "metric", "notes")}


def features_only(files: list[Path], config: DataConfig) -> bool:
    """CSV / TSV tables whose every column is a feature (or the label, or the ids): read twice in
    chunks (data/features.py). Tables with a column of strings as samples, importance maps, series,
    and settings that do not fit tables (refused by load_dataset) are read whole."""
    if kind(files[0]) not in (".csv", ".tsv") or config.column or config.importance or config.kmer != 1:
        return False
    if config.modality not in ("", "tabular") or config.layer or config.normalise != "none":
        return False
    names = {c.lower() for c in header(files[0])} - {config.id.lower()}
    return config.modality == "tabular" or not any(names & set(COLUMNS[m]) for m in ("smiles", "text", "protein"))


def settings(config: DataConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in fields(DataConfig) if f.name != "name"}


def remove_stale(out: Path) -> None:
    """Partial stores left by preparations that were killed (their process is gone)."""
    for partial in out.parent.glob(f".{out.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
