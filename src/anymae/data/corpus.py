"""Every input `--data` takes (a built-in name, a file, a folder or glob of shards, a prepared
store) read into a Dataset, and `prepare`, which reads one once into a store (data/store.py).

FASTA and one-sample-a-line files (.txt, .smi; plain, .gz, .bz2) are read record by record in
chunks of CHUNK samples, checked and tokenised in parallel processes, and written as they come:
preparing them needs memory independent of the file's size (molecules keep their canonical
SMILES until the end, for the scaffold split). Every other input is read whole, as `--data
FILE` reads it, then written in chunks.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np

from anymae import chem
from anymae.config import DataConfig
from anymae.data.catalog import BUILTINS, load_builtin
from anymae.data.dataset import MIN_TOKENS, Cuts, Dataset, random_splits, too_few
from anymae.data.files import COLUMNS, FASTA, TEXT, check_modality, kind, load_file, load_table
from anymae.data.records import BadRecords, numbered_lines, open_binary, streaming
from anymae.data.sequences import fasta_records, guess_alphabet, read_fasta, string_spec, token_length
from anymae.data.store import META, StoreWriter, is_store, open_store, pad, ragged_ok, token_dtype
from anymae.data.tables import Table, read_table
from anymae.errors import UserError
from anymae.progress import Counter
from anymae.tokens import DnaSequence, ModalitySpec, TokenArrays

CHUNK = 8192  # samples checked, tokenised and written at a time
JSONL = (".jsonl", ".ndjson")
SDF = (".sdf", ".sd")
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
        modality = BUILTINS[config.name].modality
        if config.modality and config.modality != modality:
            raise UserError(f"dataset '{config.name}' is {modality} data, not --modality {config.modality}")
        return load_builtin(config.name, config)
    path = Path(config.name)
    if is_store(path):
        return open_store(path, config)
    shards = shard_files(config.name)
    if kind(path) in (*JSONL, *SDF) and path.is_file():  # no reader of the whole file: streamed into memory
        shards = [path]
    if shards is not None:
        if streamable(shards, config):
            writer = MemoryWriter()
            return writer.dataset(stream_strings(shards, config, writer.start, config.name))
        if kind(shards[0]) in (*JSONL, *SDF):
            raise UserError(
                f"{config.name}: JSON Lines and SD files are read unlabelled; --label and data.importance need a CSV"
            )
        return load_shards(shards, config)
    if path.exists():
        return load_file(path, config)
    raise UserError(
        f"unknown dataset '{config.name}': not a built-in name ({', '.join(BUILTINS)}) "
        "and no such file; `anymae data list` shows the built-in datasets"
    )


# ---------------------------------------------------------------- shards


def shard_files(name: str) -> list[Path] | None:
    """The files of a folder or glob of FASTA / text / SMILES / CSV shards, in name order; None
    when `name` is neither (one file, a built-in, an image folder, a store)."""
    path = Path(name)
    if path.is_dir():
        if (path / META).exists():
            return None
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


def load_shards(files: list[Path], config: DataConfig) -> Dataset:
    """CSV / TSV shards (and labelled string shards), read whole as one table with the same columns."""
    columns, rows, places = None, [], []
    for path in files:
        table = read_table(path, BadRecords(path, config.on_bad_record))
        if columns is not None and table.columns != columns:
            raise UserError(f"{path}: columns {', '.join(table.columns)} differ from {files[0]}'s {', '.join(columns)}")
        columns = table.columns
        rows += table.rows
        places += [f"{path.name}, {p}" for p in table.places]
    bad = BadRecords(config.name, config.on_bad_record)
    return load_table(files[0], config, bad, Table(files[0], columns, rows, places))


# ---------------------------------------------------------------- strings, record by record


def streamable(files: list[Path], config: DataConfig) -> bool:
    """Files read record by record: FASTA and one sample a line, unlabelled, without importance maps
    (the readers refuse those with their own messages)."""
    return kind(files[0]) in STREAMED and not config.label and not config.importance


def string_modality(files: list[Path], config: DataConfig) -> str:
    first = files[0]
    if kind(first) in FASTA:
        check_modality(first, config.modality, ("protein", "dna"))
        return config.modality or guess_alphabet(read_fasta(first, BadRecords(first, "skip"), limit=100)[1])
    if kind(first) in (".smi", *SDF):
        check_modality(first, config.modality, ("smiles",))
        return "smiles"
    if kind(first) in JSONL:
        check_modality(first, config.modality, ("text", "protein", "dna", "smiles"))
        return config.modality or json_field(first)[0]
    check_modality(first, config.modality, ("text", "protein", "dna", "smiles"))
    return config.modality or "text"


def string_records(path: Path, spec: ModalitySpec, bad: BadRecords) -> Iterator[tuple[str, str, str]]:
    """(sample, place, id) of each record of a FASTA or one-sample-a-line file, as read."""
    if kind(path) in FASTA:
        for name, sequence, place in fasta_records(path, bad, spec):  # type: ignore[arg-type]
            yield sequence, place, name
        return
    if kind(path) in SDF:
        with open_binary(path) as stream:
            for number, (smiles, name) in enumerate(chem.sdf_molecules(stream), 1):
                if smiles is None:
                    bad(f"record {number}", "RDKit cannot read this molecule")
                else:
                    yield smiles, f"record {number}", name or f"record {number}"
        return
    smi, seen = kind(path) == ".smi", False
    field = json_field(path)[1] if kind(path) in JSONL else ""
    for number, line in numbered_lines(path, bad):
        if line.strip():
            seen = True
            sample = json_sample(line, field, f"line {number}", bad) if field else line.split()[0] if smi else line
            if sample is not None:
                yield sample, f"line {number}", f"line {number}"
    if not seen and not bad.count:
        raise UserError(f"{path}: the file is empty (expected one sample per line)")


def json_field(path: Path) -> tuple[str, str]:
    """(modality, field) of a JSON Lines file, from its first record's field named smiles, text
    (sentence, review) or sequence (seq), as for a table's columns."""
    names = ", ".join(c for m in ("smiles", "text", "protein") for c in COLUMNS[m])
    for number, line in numbered_lines(path, BadRecords(path, "skip")):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                break
            if isinstance(record, dict):
                for modality in ("smiles", "text", "protein"):
                    found = next((k for k in record if k.lower() in COLUMNS[modality]), None)
                    if found is not None:
                        return modality, found
            raise UserError(f"{path}, line {number}: no field named {names} (the field read as samples)")
    raise UserError(f"{path}: the first record is not a JSON object (JSON Lines: one object a line)")


def json_sample(line: str, field: str, place: str, bad: BadRecords) -> str | None:
    """The field of one JSON Lines record, or None (a bad record) when it is not there or not a string."""
    try:
        value = json.loads(line).get(field)
    except (ValueError, AttributeError):
        bad(place, "not a JSON object")
        return None
    if not isinstance(value, str) or not value.strip():
        bad(place, f"field '{field}' is missing, empty or not a string")
        return None
    return value


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


def chunks(files: list[Path], bads: list[BadRecords], spec: ModalitySpec, size: int) -> Iterator[tuple]:
    """(samples, places, ids, each record's BadRecords) in chunks of `size` over every file, in order."""
    part: tuple[list, list, list, list] = ([], [], [], [])
    for path, bad in zip(files, bads):
        for sample, place, name in string_records(path, spec, bad):
            for column, value in zip(part, (sample, place, name, bad)):
                column.append(value)
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
    bads = [BadRecords(path, config.on_bad_record) for path in files]
    cuts, read = Cuts(spec.max_tokens), Counter(f"reading {name}", "records")
    with streaming():
        for (raw, places, ids, bad), result in checked_chunks(
            chunks(files, bads, spec, chunk), spec, keep_samples, workers
        ):
            kept, problems, flat, lengths, full, kept_samples = result
            for position, problem in problems:
                bad[position](places[position], problem)
            writer.add_ragged(flat, lengths, [ids[k] for k in kept])
            cuts.add(full)
            samples += kept_samples or []
            read.update(len(raw))
    read.close()
    n, skipped = writer.samples, sum(b.count for b in bads)
    for b in bads:
        b.report()
    if n < 2:
        raise UserError(f"{name}: fewer than 2 usable records ({n} usable, {skipped} bad); at least 2 needed")
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
    if shards is not None:
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
    about = {key: getattr(dataset, key) for key in ("name", "source", "license", "task", "metric", "notes")}
    labels = None if dataset.labels is None else np.asarray(dataset.labels)
    return writer.finish(dataset.splits, labels, {**about, **stamps})


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
