"""Modality specs: everything becomes tokens.

A token is either a discrete id (vocabulary V) or a vector of C continuous values. Each token
has a position (an index into a learned table, unless the spec says the tokens form a set) and
a validity flag (False = padding). A spec owns raw -> tokens -> raw. The readers choose a spec
by modality (`STRING_SPECS` for the modalities whose samples are strings; tables, images, sets
and series have a reader each); baselines are chosen from the spec (its kind of tokens; SMILES by
name, for fingerprints).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, fields

import numpy as np
import torch

from anymae import chem
from anymae.errors import UserError


@dataclass
class TokenBatch:
    """A batch of tokens: exactly one of `ids` (B, N) or `values` (B, N, C) is set."""

    valid: torch.Tensor  # (B, N) bool, False on padding
    ids: torch.Tensor | None = None
    values: torch.Tensor | None = None
    importance: torch.Tensor | None = None  # (B, N) optional per-token map given with the data
    index: torch.Tensor | None = None  # (B,) the samples' rows in the dataset (CPU), when drawn from one

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.valid.shape)  # type: ignore[return-value]

    @property
    def n_valid(self) -> torch.Tensor:
        return self.valid.sum(dim=1)

    def rows(self, keep: torch.Tensor) -> TokenBatch:
        """The samples where `keep` (B,) bool is True."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[keep.to(t.device)]

        return TokenBatch(pick(self.valid), pick(self.ids), pick(self.values), pick(self.importance), pick(self.index))

    def to(self, device: torch.device | str) -> TokenBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return TokenBatch(move(self.valid), move(self.ids), move(self.values), move(self.importance), self.index)


@dataclass
class TokenArrays:
    """A whole dataset as padded token arrays (numpy), ready to be sliced into batches."""

    inputs: np.ndarray  # (n, N) int64 ids or (n, N, C) float32 values
    valid: np.ndarray  # (n, N) bool
    importance: np.ndarray | None = None  # (n, N) optional per-token map (attention-guided loss, source "given")

    def __len__(self) -> int:
        return len(self.valid)

    def batch(self, index: np.ndarray, discrete: bool) -> TokenBatch:
        inputs = torch.from_numpy(self.inputs[index])
        importance = None if self.importance is None else torch.from_numpy(self.importance[index]).float()
        rows, valid = torch.as_tensor(index, dtype=torch.long), torch.from_numpy(self.valid[index])
        if discrete:
            return TokenBatch(valid=valid, ids=inputs, importance=importance, index=rows)
        return TokenBatch(valid=valid, values=inputs, importance=importance, index=rows)


class ModalitySpec:
    """Base class. Subclasses set the attributes below and implement `tokenize`."""

    name: str = "?"
    discrete: bool = False
    vocab_size: int = 0  # discrete specs
    channels: int = 0  # continuous specs: values per token
    max_tokens: int = 0
    positional: bool = True  # False for sets: no position embedding
    default_ratio: float = 0.15
    grid: tuple[int, int] | None = None  # (rows, cols) when tokens form a 2-D grid
    rewrites = False  # strings: True when `check` rewrites a sample (its tokens no longer follow the input)

    def tokenize(self, raw) -> TokenArrays:
        raise NotImplementedError

    def raw_features(self, tokens: TokenArrays) -> np.ndarray:
        """Features for the classical raw-input baseline (one row per sample)."""
        if self.discrete:  # bag of tokens, normalised by length
            n, _ = tokens.valid.shape
            counts = np.zeros((n, self.vocab_size), dtype=np.float32)
            rows = np.repeat(np.arange(n), tokens.valid.sum(1))
            np.add.at(counts, (rows, tokens.inputs[tokens.valid]), 1.0)
            return counts / np.maximum(tokens.valid.sum(1, keepdims=True), 1)
        flat = tokens.inputs * tokens.valid[..., None]
        return flat.reshape(len(flat), -1)

    def token_text(self, token_id: int) -> str:
        """How one discrete token is printed in pictures (bytes by default)."""
        return chr(token_id)

    def describe(self) -> dict:
        kind = f"ids (V={self.vocab_size})" if self.discrete else f"values (C={self.channels})"
        return {"modality": self.name, "tokens": self.max_tokens, "token": kind}


@dataclass(frozen=True)
class ImagePatches(ModalitySpec):
    """Images (n, H, W) or (n, H, W, ch) with values in [0, 1] -> non-overlapping p x p patches.

    A side that `patch` does not divide is padded (right and bottom) to the next multiple; a patch
    that lies wholly in the padding is an invalid token (never encoded, never in the loss), the
    padded pixels of a patch that is partly image are 0. NaN pixels mark padding too (readers
    place smaller images of a folder of mixed sizes on a canvas of NaN). `pixel_scale` records
    how the run's integer pixels were scaled (255, 65535; 1: floats; 0: not recorded).
    """

    height: int
    width: int
    image_channels: int = 1
    patch: int = 4
    name: str = "image"
    default_ratio: float = 0.75
    pixel_scale: float = 0.0

    def __post_init__(self) -> None:
        if self.patch < 1:
            raise UserError(f"data.patch={self.patch}: a patch is at least 1 pixel")

    @property
    def grid(self) -> tuple[int, int]:  # type: ignore[override]
        return -(-self.height // self.patch), -(-self.width // self.patch)

    @property
    def channels(self) -> int:  # type: ignore[override]
        return self.patch * self.patch * self.image_channels

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        rows, cols = self.grid
        return rows * cols

    def tokenize(self, raw: np.ndarray) -> TokenArrays:
        images = np.asarray(raw, dtype=np.float32)
        if images.ndim == 3:
            images = images[..., None]
        n, h, w, ch = images.shape
        if (h, w, ch) != (self.height, self.width, self.image_channels):
            raise ValueError(f"expected images of {self.height}x{self.width}x{self.image_channels}, got {h}x{w}x{ch}")
        rows, cols = self.grid
        p = self.patch
        if (rows * p, cols * p) != (h, w):
            images = np.pad(images, [(0, 0), (0, rows * p - h), (0, cols * p - w), (0, 0)], constant_values=np.nan)
        patches = images.reshape(n, rows, p, cols, p, ch).transpose(0, 1, 3, 2, 4, 5)
        inputs = np.ascontiguousarray(patches.reshape(n, rows * cols, p * p * ch))
        valid = ~np.isnan(inputs).all(-1)
        return TokenArrays(inputs=np.nan_to_num(inputs, nan=0.0), valid=valid)

    def to_images(self, values: np.ndarray) -> np.ndarray:
        """Patch tokens (n, N, C) -> images (n, H, W, ch); the inverse of `tokenize` (padding cut off)."""
        rows, cols = self.grid
        p, ch = self.patch, self.image_channels
        n = len(values)
        patches = np.asarray(values).reshape(n, rows, cols, p, p, ch).transpose(0, 1, 3, 2, 4, 5)
        return patches.reshape(n, rows * p, cols * p, ch)[:, : self.height, : self.width]


@dataclass(frozen=True)
class ByteSequence(ModalitySpec):
    """Strings -> their bytes as ids (V = 256), truncated to `max_tokens`, padded with id 0."""

    max_tokens: int = 256
    name: str = "text"
    discrete: bool = True
    vocab_size: int = 256
    default_ratio: float = 0.15

    def tokenize(self, raw: list[str] | list[bytes]) -> TokenArrays:
        n = len(raw)
        inputs = np.zeros((n, self.max_tokens), dtype=np.int64)
        valid = np.zeros((n, self.max_tokens), dtype=bool)
        for i, text in enumerate(raw):
            data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            data = data[: self.max_tokens]
            inputs[i, : len(data)] = np.frombuffer(data, dtype=np.uint8)
            valid[i, : len(data)] = True
        return TokenArrays(inputs=inputs, valid=valid)

    def to_text(self, ids: np.ndarray, valid: np.ndarray) -> str:
        return bytes(ids[valid].astype(np.uint8).tolist()).decode("utf-8", errors="replace")

    def check(self, text: str) -> tuple[str, str | None]:
        """A sample as it is tokenized, and what is wrong with it (None when it is fine)."""
        return text, None

    def split(self, samples: list[str]) -> dict[str, np.ndarray] | None:
        """Splits this modality prescribes for these samples; None: a fixed random split."""
        return None


MAX_SMILES = 10_000  # characters; the largest molecules in PubChem are written in fewer


@dataclass(frozen=True)
class SmilesSequence(ByteSequence):
    """SMILES as bytes (V = 256). Each string must parse with RDKit and is kept in RDKit's
    canonical form; datasets of molecules are split by Bemis-Murcko scaffold."""

    max_tokens: int = 128
    name: str = "smiles"
    default_ratio: float = 0.3
    rewrites = True  # canonical form

    def check(self, text: str) -> tuple[str, str | None]:
        text = text.strip()
        if len(text) > MAX_SMILES:  # refused before RDKit parses it (it runs out of memory on huge strings)
            return text, f"SMILES of {len(text):,} characters is longer than the limit of {MAX_SMILES:,}"
        canonical = chem.canonical(text)
        if canonical is None:
            return text, f"invalid SMILES {text[:60]!r} (RDKit cannot parse it)"
        return canonical, None

    def split(self, samples: list[str]) -> dict[str, np.ndarray]:
        return chem.scaffold_splits(samples)


@functools.cache
def outside(alphabet: str) -> re.Pattern:
    """A pattern matching any character outside `alphabet` (either case): one C-speed scan a sequence."""
    return re.compile(f"[^{re.escape(alphabet + alphabet.lower())}]")


PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWYXBZUO"  # 20 standard amino acids, X unknown, B Z ambiguous, U O rare
DNA_ALPHABET = "ACGTN"


@dataclass(frozen=True)
class AlphabetSequence(ModalitySpec):
    """Strings over a fixed alphabet (proteins, DNA) -> ids 1..len(alphabet); 0 is padding.

    Letters are upper-cased; a letter outside the alphabet is an error naming the record
    (`invalid` says which letter, so readers can report the file and line first).
    """

    alphabet: str = PROTEIN_ALPHABET
    max_tokens: int = 512
    name: str = "protein"
    discrete: bool = True
    default_ratio: float = 0.15

    @property
    def vocab_size(self) -> int:  # type: ignore[override]
        return len(self.alphabet) + 1

    def _table(self) -> np.ndarray:
        table = np.full(256, -1, dtype=np.int64)
        for i, letter in enumerate(self.alphabet):
            table[ord(letter)] = table[ord(letter.lower())] = i + 1
        return table

    def first_invalid(self, text: str) -> int | None:
        """The index of the first letter outside the alphabet (either case), or None."""
        found = outside(self.alphabet).search(text)
        return None if found is None else found.start()

    def check(self, text: str) -> tuple[str, str | None]:
        """The sample as tokenized (stripped, a trailing '*' stop dropped) and what is wrong with it."""
        text = text.strip().removesuffix("*")
        return text, self.invalid(text)

    def split(self, samples: list[str]) -> None:
        return None

    def invalid(self, text: str) -> str | None:
        """What is wrong with a sequence (the first letter outside the alphabet, 1-based column), or None."""
        i = self.first_invalid(text)
        if i is not None:
            return f"letter {text[i]!r} at column {i + 1} is not in the {self.name} alphabet {self.alphabet}"
        return None if text else "empty sequence"

    def tokenize(self, raw: list[str]) -> TokenArrays:
        table = self._table()
        n = len(raw)
        inputs = np.zeros((n, self.max_tokens), dtype=np.int64)
        valid = np.zeros((n, self.max_tokens), dtype=bool)
        for i, text in enumerate(raw):
            problem = self.invalid(text)
            if problem:
                raise ValueError(f"record {i}: {problem}")
            data = np.frombuffer(text[: self.max_tokens].encode("ascii"), dtype=np.uint8)
            inputs[i, : len(data)] = table[data]
            valid[i, : len(data)] = True
        return TokenArrays(inputs=inputs, valid=valid)

    def token_text(self, token_id: int) -> str:
        return self.alphabet[token_id - 1] if 0 < token_id <= len(self.alphabet) else "."

    def to_text(self, ids: np.ndarray, valid: np.ndarray) -> str:
        return "".join(self.token_text(int(i)) for i in ids[valid])


MAX_KMER = 6  # 4**6 + 1 = 4,097 ids


@dataclass(frozen=True)
class DnaSequence(AlphabetSequence):
    """DNA -> non-overlapping k-mers of bases as ids 1..4**k (k = 1: single nucleotides); 0 is padding.

    Lower case is the same base (soft-masked repeats). N, an unknown base, makes its token invalid
    (like a missing value in a table: the encoder never sees it, the loss never asks for it); so
    does a k-mer holding one. `max_tokens` counts k-mers: a sample keeps max_tokens * k bases, and
    a last part shorter than k is dropped. Letters other than ACGTN are errors (`invalid`).
    """

    alphabet: str = DNA_ALPHABET
    max_tokens: int = 512
    name: str = "dna"
    kmer: int = 1

    @property
    def vocab_size(self) -> int:  # type: ignore[override]
        return 4**self.kmer + 1

    def tokenize(self, raw: list[str]) -> TokenArrays:
        codes = np.full(256, -1, dtype=np.int64)  # A C G T -> 0..3 (either case); N and the rest -> -1
        for i, base in enumerate("ACGT"):
            codes[ord(base)] = codes[ord(base.lower())] = i
        weights = 4 ** np.arange(self.kmer - 1, -1, -1)
        n = len(raw)
        inputs = np.zeros((n, self.max_tokens), dtype=np.int64)
        valid = np.zeros((n, self.max_tokens), dtype=bool)
        for i, text in enumerate(raw):
            problem = self.invalid(text)
            if problem:
                raise ValueError(f"record {i}: {problem}")
            k = min(len(text) // self.kmer, self.max_tokens)
            data = np.frombuffer(text[: k * self.kmer].encode("ascii"), dtype=np.uint8)
            bases = codes[data].reshape(k, self.kmer)
            known = (bases >= 0).all(1)
            inputs[i, :k] = np.where(known, bases @ weights + 1, 0)
            valid[i, :k] = known
        return TokenArrays(inputs=inputs, valid=valid)

    def token_text(self, token_id: int) -> str:
        """The k-mer's bases; an invalid token (a k-mer with an N) prints as N."""
        if not 0 < token_id <= 4**self.kmer:
            return "N" * self.kmer
        digits = np.unravel_index(token_id - 1, (4,) * self.kmer)
        return "".join("ACGT"[int(d)] for d in digits)


def protein_spec(max_tokens: int = 512) -> AlphabetSequence:
    return AlphabetSequence(PROTEIN_ALPHABET, max_tokens=max_tokens, name="protein", default_ratio=0.15)


def dna_spec(max_tokens: int = 512, kmer: int = 1) -> DnaSequence:
    return DnaSequence(max_tokens=max_tokens, kmer=kmer)


def smiles_spec(max_tokens: int = 128) -> SmilesSequence:
    return SmilesSequence(max_tokens=max_tokens)


# The modalities whose samples are strings (FASTA, text files, a table's text column), with their
# specs: (max_tokens, kmer) -> spec. The readers derive their lists from this table.
STRING_SPECS = {
    "text": lambda max_tokens, kmer: ByteSequence(max_tokens=max_tokens),
    "protein": lambda max_tokens, kmer: protein_spec(max_tokens),
    "dna": dna_spec,
    "smiles": lambda max_tokens, kmer: smiles_spec(max_tokens),
}


def _standardise(values: np.ndarray, mean: tuple[float, ...], scale: tuple[float, ...]) -> np.ndarray:
    """(values - mean) / scale, computed in float64 (values near the float32 limit do not overflow)."""
    values = np.asarray(values, dtype=np.float64)
    return ((values - np.asarray(mean)) / np.asarray(scale)).astype(np.float32)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def fit_scale(values: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-column mean and standard deviation over finite entries (std 1 where a column is constant).

    Computed on values divided by the column's largest magnitude and scaled back, so huge
    finite numbers (1e300) neither overflow the variance nor turn it into inf."""
    return scale_of(*moments(values))


def moments(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column: (finite count, largest magnitude `peak`, mean and sum of squared deviations of
    the values divided by `peak`)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = finite.sum(0)
    peak = np.where(finite, np.abs(values), 0.0).max(0, initial=0.0)
    peak = np.where(peak > 0, peak, 1.0)
    unit = np.where(finite, values / peak, 0.0)
    mean = unit.sum(0) / np.maximum(count, 1)
    return count, peak, mean, np.where(finite, (unit - mean) ** 2, 0.0).sum(0)


def scale_of(count, peak, mean, squares) -> tuple[tuple[float, ...], tuple[float, ...]]:
    std = np.sqrt(squares / np.maximum(count, 1)) * peak
    mean = mean * peak
    std[~(std >= 1e-12 * np.maximum(np.abs(mean), 1.0))] = 1.0  # constant column (relative to its size)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


class ScaleFit:
    """fit_scale over rows that arrive a chunk at a time, at memory independent of their number:
    moments of fixed blocks of BLOCK rows, combined in order (Chan et al.), so the result depends
    on the rows alone, not on the chunks they came in; rows that fit one block give fit_scale's."""

    BLOCK = 65536

    def __init__(self, width: int) -> None:
        self.width, self.held, self.blocks = width, np.zeros((0, width)), []

    def add(self, rows: np.ndarray) -> None:
        self.held = np.concatenate([self.held, np.asarray(rows, dtype=np.float64).reshape(-1, self.width)])
        while len(self.held) >= self.BLOCK:
            self.blocks.append(moments(self.held[: self.BLOCK]))
            self.held = self.held[self.BLOCK :]

    def result(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        blocks = self.blocks + ([moments(self.held)] if len(self.held) or not self.blocks else [])
        if len(blocks) == 1:
            return scale_of(*blocks[0])
        peak = np.max([b[1] for b in blocks], axis=0)
        count, mean, squares = np.zeros(self.width), np.zeros(self.width), np.zeros(self.width)
        for n, own, m, s in blocks:
            ratio = own / peak
            m, s = m * ratio, s * ratio * ratio
            total = np.maximum(count + n, 1)
            delta = m - mean
            mean = mean + delta * n / total
            squares = squares + s + delta * delta * count * n / total
            count = count + n
        return scale_of(count, peak, mean, squares)


@dataclass(frozen=True)
class FeatureTokens(ModalitySpec):
    """Tabular rows (n, F) -> one token per feature with C = 1 value; position = feature index.

    Values are standardised with the spec's per-feature `mean` and `scale` (readers fit them on
    all rows, labels unused). A missing value (NaN) becomes an invalid token: the encoder never
    sees it and the loss never asks for it. Categorical columns arrive one-hot (one feature per
    level) from the readers.
    """

    features: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    name: str = "tabular"
    default_ratio: float = 0.2
    channels: int = 1

    @property
    def max_tokens(self) -> int:  # type: ignore[override]
        return len(self.features)

    def tokenize(self, raw: np.ndarray) -> TokenArrays:
        values = np.asarray(raw, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise ValueError(f"expected rows of {len(self.features)} features, got shape {values.shape}")
        if np.isinf(values).any():
            raise ValueError("features contain inf")
        valid = ~np.isnan(values)
        scaled = np.where(valid, _standardise(values, self.mean, self.scale), 0.0).astype(np.float32)
        return TokenArrays(inputs=scaled[..., None], valid=valid)


@dataclass(frozen=True)
class ValueSet(ModalitySpec):
    """Variable-size sets of elements with C values each (e.g. particles: pT, y, phi, id).

    The model learns one position per slot, so a set needs a canonical order: elements are
    sorted by channel `sort_by` descending (pT for particles), the leading `max_tokens` kept,
    and position = rank. (With no positions at all, every decoder query would be identical.)
    Values are standardised per channel with `mean` / `scale`.
    """

    channels: int = 4
    max_tokens: int = 64
    sort_by: int = 0
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    name: str = "set"
    default_ratio: float = 0.3

    def tokenize(self, raw: list[np.ndarray]) -> TokenArrays:
        n, c = len(raw), self.channels
        inputs = np.zeros((n, self.max_tokens, c), dtype=np.float32)
        valid = np.zeros((n, self.max_tokens), dtype=bool)
        mean = self.mean or (0.0,) * c
        scale = self.scale or (1.0,) * c
        for i, elements in enumerate(raw):
            elements = np.asarray(elements, dtype=np.float32).reshape(-1, c)
            if not np.isfinite(elements).all():
                raise ValueError(f"set {i} has NaN or inf values")
            order = np.argsort(-elements[:, self.sort_by], kind="stable")[: self.max_tokens]
            inputs[i, : len(order)] = _standardise(elements[order], mean, scale)
            valid[i, : len(order)] = True
        return TokenArrays(inputs=inputs, valid=valid)

    def raw_features(self, tokens: TokenArrays) -> np.ndarray:
        """Set size, and per channel the mean and maximum over elements."""
        valid = tokens.valid[..., None]
        count = np.maximum(valid.sum(1), 1)
        mean = (tokens.inputs * valid).sum(1) / count
        top = np.where(valid, tokens.inputs, -np.inf).max(1)
        top[~np.isfinite(top)] = 0.0
        return np.concatenate([tokens.valid.sum(1, keepdims=True).astype(np.float32), mean, top], axis=1)


@dataclass(frozen=True)
class SeriesPatches(ModalitySpec):
    """Time series (T,) or (T, ch) of any length -> patches of `patch` steps, C = patch * ch.

    Each series is z-normalised per channel (the UCR convention) when `znorm`; the last,
    partial patch is zero-filled; series longer than `max_tokens * patch` steps are cut.
    """

    max_tokens: int = 64
    patch: int = 4
    series_channels: int = 1
    znorm: bool = True
    name: str = "series"
    default_ratio: float = 0.3

    @property
    def channels(self) -> int:  # type: ignore[override]
        return self.patch * self.series_channels

    def tokenize(self, raw: list[np.ndarray]) -> TokenArrays:
        n, p, ch = len(raw), self.patch, self.series_channels
        inputs = np.zeros((n, self.max_tokens, p * ch), dtype=np.float32)
        valid = np.zeros((n, self.max_tokens), dtype=bool)
        for i, series in enumerate(raw):
            series = np.asarray(series, dtype=np.float64).reshape(len(series), ch)[: self.max_tokens * p]
            if not np.isfinite(series).all() or len(series) == 0:
                raise ValueError(f"series {i} is empty or has NaN or inf values")
            if self.znorm:  # in float64, on values divided by their peak: huge values do not overflow
                peak = np.abs(series).max(0)
                unit = series / np.where(peak > 0, peak, 1.0)
                std = unit.std(0)
                series = (unit - unit.mean(0)) / np.where(std > 1e-8, std, 1.0)
            k = -(-len(series) // p)
            padded = np.zeros((k * p, ch), dtype=np.float32)
            padded[: len(series)] = series
            inputs[i, :k] = padded.reshape(k, p * ch)
            valid[i, :k] = True
        return TokenArrays(inputs=inputs, valid=valid)


def spec_to_dict(spec: ModalitySpec) -> dict:
    """A spec as JSON-able data (its class and fields), so a checkpoint can rebuild it without the data."""
    return {"kind": type(spec).__name__, **{f.name: getattr(spec, f.name) for f in fields(spec)}}


def spec_from_dict(data: dict) -> ModalitySpec:
    """The inverse of `spec_to_dict`; lists come back as tuples (specs are frozen)."""
    kinds, todo = {}, [ModalitySpec]
    while todo:  # every spec class, subclasses of subclasses included
        cls = todo.pop()
        kinds[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    values = dict(data)
    cls = kinds.get(values.pop("kind", ""))
    if cls is None or cls is ModalitySpec:
        raise ValueError(f"unknown modality spec {data.get('kind')!r}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
