"""The prepared token store: a corpus read once into a folder of NumPy arrays that training,
probing and embedding map from disk (memory independent of the number of samples).

    STORE/
      store.json      what the store holds (written last; see `meta`): format, version, samples,
                      layout, the modality spec, name / task / metric / source / license, notes
                      (bad records skipped, samples cut at data.max_tokens, class names), the data
                      settings it was read with, its source files (path, size, modification time)
                      and a content fingerprint (sha256 over the arrays below)
      tokens.npy      layout "ragged" (strings): every sample's token ids end to end (uint8 / uint16)
      offsets.npy     layout "ragged": (samples + 1,) int64; sample i is tokens[offsets[i]:offsets[i+1]]
      inputs.npy      layout "padded" (values: tables, series, sets, images): TokenArrays.inputs
      valid.npy       layout "padded": (samples, N) bool
      importance.npy  optional (samples, N) float32 per-token maps
      labels.npy      optional (samples,) class ids or regression targets
      train.npy val.npy test.npy   sorted int64 sample indices
      ids.npy, ids_offsets.npy     one UTF-8 id per sample (FASTA header, line or row, file name),
                                   ragged like the tokens

Any tool reads it with `np.load(file, mmap_mode="r")`; a ragged pair is Arrow's LargeList
layout (values + offsets), so `pyarrow.LargeListArray.from_arrays(offsets, tokens)` wraps it
without a copy. data/corpus.py prepares stores (atomically: built in a hidden folder beside the
store and renamed into place when whole, so a killed preparation never leaves one that opens).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from anymae.config import DataConfig
from anymae.data.dataset import Dataset
from anymae.errors import UserError
from anymae.tokens import ModalitySpec, TokenArrays, TokenBatch, spec_from_dict, spec_to_dict

FORMAT, VERSION, META = "anymae-store", 1, "store.json"
# What a store fixes for its readers
SETTINGS = ("modality", "max_tokens", "label", "column", "id", "patch", "importance")
KEEP_MAPPED_BYTES = 64 << 20  # mapped pages a reader keeps resident before it releases them (StoredTokens)


class NpyAppender:
    """A .npy file written a block of rows at a time, its length known only at the end: the header
    has a fixed size and is written again, with the final shape, on close."""

    HEADER = 128

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...] = ()) -> None:
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), tuple(row_shape), 0
        self.digest = hashlib.sha256()
        self.file = open(path, "wb")
        self.file.write(self.header())

    def header(self) -> bytes:
        shape = (self.rows, *self.row_shape)
        text = repr({"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape})
        return (
            b"\x93NUMPY\x01\x00" + struct.pack("<H", self.HEADER - 10) + text.ljust(self.HEADER - 11).encode() + b"\n"
        )

    def add(self, block) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype).tobytes()
        self.rows += len(block)
        self.digest.update(data)
        self.file.write(data)

    def close(self) -> str:
        """Finish the file; its content digest."""
        self.file.seek(0)
        self.file.write(self.header())
        self.file.flush()
        os.fsync(self.file.fileno())  # on disk before store.json says the store is whole
        self.file.close()
        return self.digest.hexdigest()


def token_dtype(spec: ModalitySpec) -> np.dtype:
    return np.dtype(np.uint8 if spec.vocab_size <= 256 else np.uint16 if spec.vocab_size <= 65536 else np.int32)


def ragged_ok(tokens: TokenArrays) -> bool:
    """Whether the samples are a run of valid tokens then zero padding (strings are), so that the
    valid tokens alone give them back exactly."""
    lengths = tokens.valid.sum(1)
    prefix = np.arange(tokens.valid.shape[1]) < lengths[:, None]
    return bool((tokens.valid == prefix).all() and not tokens.inputs[~tokens.valid].any())


class StoreWriter:
    """Writes a store's arrays into `folder` chunk by chunk; `finish` adds splits, labels and store.json."""

    def __init__(self, folder: Path, spec: ModalitySpec, ragged: bool, importance: bool = False) -> None:
        self.folder, self.spec, self.ragged, self.samples = folder, spec, ragged, 0
        self.arrays: dict[str, NpyAppender] = {}
        if ragged:
            self.arrays["tokens"] = NpyAppender(folder / "tokens.npy", token_dtype(spec))
            self.arrays["offsets"] = NpyAppender(folder / "offsets.npy", np.int64)
            self.arrays["offsets"].add(np.zeros(1, dtype=np.int64))
        else:
            self.arrays["inputs"] = None  # type: ignore[assignment]  # opened on the first chunk (its dtype)
            self.arrays["valid"] = NpyAppender(folder / "valid.npy", bool, (spec.max_tokens,))
        if importance:
            self.arrays["importance"] = NpyAppender(folder / "importance.npy", np.float32, (spec.max_tokens,))
        self.ids = NpyAppender(folder / "ids.npy", np.uint8)
        self.id_offsets = NpyAppender(folder / "ids_offsets.npy", np.int64)
        self.id_offsets.add(np.zeros(1, dtype=np.int64))
        self.token_end = self.id_end = 0

    def add(self, tokens: TokenArrays, ids: Sequence[str]) -> None:
        if self.ragged:
            if not ragged_ok(tokens):
                raise ValueError("samples are not valid tokens followed by padding; write them padded")
            self.add_ragged(tokens.inputs[tokens.valid], tokens.valid.sum(1), ids)
            return
        if self.arrays["inputs"] is None:
            self.arrays["inputs"] = NpyAppender(
                self.folder / "inputs.npy", tokens.inputs.dtype, tokens.inputs.shape[1:]
            )
        self.arrays["inputs"].add(tokens.inputs)
        self.arrays["valid"].add(tokens.valid)
        if "importance" in self.arrays:
            self.arrays["importance"].add(tokens.importance)
        self.add_ids(ids)

    def add_ragged(self, flat: np.ndarray, lengths: np.ndarray, ids: Sequence[str]) -> None:
        """Samples given as their valid token ids end to end and their lengths."""
        self.arrays["tokens"].add(flat)
        self.arrays["offsets"].add(self.token_end + np.cumsum(lengths, dtype=np.int64))
        self.token_end += int(np.sum(lengths))
        self.add_ids(ids)

    def add_ids(self, ids: Sequence[str]) -> None:
        encoded = [" ".join(str(i).split()).encode("utf-8") for i in ids]  # one line each
        self.ids.add(np.frombuffer(b"".join(encoded), dtype=np.uint8))
        self.id_offsets.add(self.id_end + np.cumsum([len(e) for e in encoded], dtype=np.int64))
        self.id_end += sum(len(e) for e in encoded)
        self.samples += len(encoded)

    def finish(self, splits: dict[str, np.ndarray], labels: np.ndarray | None, about: dict) -> dict:
        """Close the arrays, write splits and labels, then store.json (last: its presence means whole)."""
        digests = {name: a.close() for name, a in self.arrays.items() if a is not None}
        digests["ids"], _ = self.ids.close(), self.id_offsets.close()
        for name, index in splits.items():
            digests[name] = save(self.folder / f"{name}.npy", np.asarray(index, dtype=np.int64))
        if labels is not None:
            digests["labels"] = save(self.folder / "labels.npy", labels)
        fingerprint = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "samples": self.samples,
            "layout": "ragged" if self.ragged else "padded",
            "spec": spec_to_dict(self.spec),
            "fingerprint": fingerprint,
            **about,
        }
        write_json(self.folder / META, meta)
        return meta


def save(path: Path, array: np.ndarray) -> str:
    np.save(path, array)
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------- reading


def is_store(path: Path) -> bool:
    return path.is_dir() and (path / META).is_file()


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path / META}: not a readable store description ({error})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise UserError(
            f"{path}: a store of format {meta.get('format')!r} version {meta.get('version')!r}; this anymae reads "
            f"{FORMAT!r} version {VERSION}: prepare it again"
        )
    return meta


def check_sources(path: Path, meta: dict) -> None:
    """A store whose source files changed since it was prepared is refused (rebuilding a big corpus
    unasked could take an hour; the user decides)."""
    for stamp in meta.get("files", []):
        source = Path(stamp["path"])
        now = source.stat() if source.exists() else None
        if now is None or (now.st_size, now.st_mtime_ns) != (stamp["size"], stamp["mtime_ns"]):
            what = "is gone" if now is None else "has changed"
            raise UserError(
                f"{path} was prepared from {source}, which {what} since; prepare it again "
                f"(anymae data prepare {meta.get('source', source)} --out {path})"
            )


def check_settings(path: Path, meta: dict, config: DataConfig) -> None:
    """A setting given with the store must be the store's own (a default one takes the store's)."""
    defaults = DataConfig()
    for key in SETTINGS:
        asked, kept = getattr(config, key), meta["data"].get(key, getattr(defaults, key))  # older stores lack some
        if asked != getattr(defaults, key) and asked != kept:
            raise UserError(
                f"{path} was prepared with data.{key}={kept!r}, not {asked!r}; prepare another store "
                f"(anymae data prepare SOURCE --out STORE ... data.{key}={asked})"
            )
        setattr(config, key, kept)


class StoredTokens:
    """A store's tokens as `TokenArrays` offer them (`batch`, `inputs[index]`, `valid[index]`,
    `importance`), read from the mapped files on demand."""

    def __init__(self, path: Path, meta: dict, spec: ModalitySpec) -> None:
        self.width, self.samples = spec.max_tokens, meta["samples"]
        self.importance = load(path, "importance")
        self.ragged = meta["layout"] == "ragged"
        if self.ragged:
            self.flat, self.offsets = load(path, "tokens"), load(path, "offsets")
            self.inputs, self.valid = Rows(self, 0), Rows(self, 1)
        else:
            self.inputs, self.valid = load(path, "inputs"), load(path, "valid")
        self.touched = 0

    def release(self) -> None:
        """Let go of the mapped pages read so far: they stay in the page cache (shared, reclaimable) but
        leave this process's resident set, which a pass over a large split would otherwise fill with
        the whole store (embedding 20% of a 1M store touched nearly every page of its tokens)."""
        for array in list(vars(self).values()):
            mapped = getattr(array, "_mmap", None)  # np.load's maps (the Rows of a ragged store have none)
            if mapped is not None:
                mapped.madvise(mmap.MADV_DONTNEED)
        self.touched = 0

    def __len__(self) -> int:
        return self.samples

    def take(self, index) -> TokenArrays:
        """The samples at `index` (an array of rows) as padded arrays in memory."""
        index = np.asarray(index, dtype=np.int64)
        self.touched += len(index) * mmap.PAGESIZE  # at most about a page a row, for rows of a few hundred bytes
        if self.touched > KEEP_MAPPED_BYTES:
            self.release()
        importance = None if self.importance is None else np.asarray(self.importance[index])
        if not self.ragged:
            return TokenArrays(np.asarray(self.inputs[index]), np.asarray(self.valid[index]), importance)
        tokens = pad(self.flat, self.offsets, index, self.width)
        tokens.importance = importance
        return tokens

    def batch(self, index, discrete: bool) -> TokenBatch:
        batch = self.take(index).batch(np.arange(len(index)), discrete)
        batch.index = torch.from_numpy(np.array(index, dtype=np.int64))
        return batch


def pad(flat: np.ndarray, offsets: np.ndarray, index: np.ndarray, width: int) -> TokenArrays:
    """Samples `index` of ragged tokens (sample i is flat[offsets[i]:offsets[i+1]]) as padded int64 ids."""
    starts, lengths = offsets[index], offsets[index + 1] - offsets[index]
    total, ends = int(lengths.sum()), np.cumsum(lengths)
    row = np.repeat(np.arange(len(index)), lengths)
    column = np.arange(total) - np.repeat(ends - lengths, lengths)
    inputs = np.zeros((len(index), width), dtype=np.int64)
    inputs[row, column] = flat[np.repeat(starts, lengths) + column]
    return TokenArrays(inputs, np.arange(width) < lengths[:, None])


class Rows:
    """`inputs` (part 0) or `valid` (part 1) of ragged stored tokens, padded when indexed."""

    def __init__(self, tokens: StoredTokens, part: int) -> None:
        self.tokens, self.part = tokens, part

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.tokens), self.tokens.width)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index):
        if isinstance(index, tuple):  # rows, then within them (as numpy reads it)
            return self[index[0] if index[0] is not Ellipsis else slice(None)][(slice(None), *index[1:])]
        if isinstance(index, slice):
            index = np.arange(len(self.tokens))[index]
        one = np.ndim(index) == 0
        taken = self.tokens.take(np.atleast_1d(index))
        rows = taken.valid if self.part else taken.inputs
        return rows[0] if one else rows


class StoredIds(Sequence):
    """A store's sample ids, read on demand."""

    def __init__(self, path: Path) -> None:
        self.data, self.offsets = load(path, "ids"), load(path, "ids_offsets")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(len(self))[i]]
        return bytes(self.data[self.offsets[i] : self.offsets[i + 1]]).decode("utf-8")


def load(path: Path, name: str) -> np.ndarray | None:
    file = path / f"{name}.npy"
    return np.load(file, mmap_mode="r") if file.exists() else None


def open_store(path: Path, config: DataConfig) -> Dataset:
    """A store as a Dataset whose tokens, labels and splits stay on disk until used."""
    meta = read_meta(path)
    check_sources(path, meta)
    check_settings(path, meta, config)
    spec = spec_from_dict(meta["spec"])
    tokens = StoredTokens(path, meta, spec)
    cut = meta["notes"].get("cut", {})
    if cut.get("samples"):
        print(
            f"anymae: note: {path}: {cut['samples']:,} of {meta['samples']:,} samples were cut at data.max_tokens="
            f"{cut['max_tokens']} when prepared (the longest has {cut['longest']:,} tokens)",
            file=sys.stderr,
        )
    return Dataset(
        name=meta["name"],
        spec=spec,
        tokens=tokens,  # type: ignore[arg-type]
        labels=load(path, "labels"),
        splits={part: load(path, part) for part in ("train", "val", "test")},  # type: ignore[misc]
        task=meta["task"],
        metric=meta["metric"],
        source=meta["source"],
        license=meta["license"],
        notes={**meta["notes"], "store": str(path), "fingerprint": meta["fingerprint"]},
        ids=StoredIds(path),
    )
