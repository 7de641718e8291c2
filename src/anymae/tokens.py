"""Modality specs: everything becomes tokens.

A token is either a discrete id (vocabulary V) or a vector of C continuous values. Each token
has a position (an index into a learned table, unless the spec says the tokens form a set) and
a validity flag (False = padding). A spec owns raw -> tokens -> raw; nothing else in anymae
branches on the modality.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TokenBatch:
    """A batch of tokens: exactly one of `ids` (B, N) or `values` (B, N, C) is set."""

    valid: torch.Tensor  # (B, N) bool, False on padding
    ids: torch.Tensor | None = None
    values: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.valid.shape)  # type: ignore[return-value]

    @property
    def n_valid(self) -> torch.Tensor:
        return self.valid.sum(dim=1)

    def to(self, device: torch.device | str) -> TokenBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return TokenBatch(valid=move(self.valid), ids=move(self.ids), values=move(self.values))


@dataclass
class TokenArrays:
    """A whole dataset as padded token arrays (numpy), ready to be sliced into batches."""

    inputs: np.ndarray  # (n, N) int64 ids or (n, N, C) float32 values
    valid: np.ndarray  # (n, N) bool

    def __len__(self) -> int:
        return len(self.valid)

    def batch(self, index: np.ndarray, discrete: bool) -> TokenBatch:
        inputs = torch.from_numpy(self.inputs[index])
        valid = torch.from_numpy(self.valid[index])
        return TokenBatch(valid=valid, ids=inputs) if discrete else TokenBatch(valid=valid, values=inputs)


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

    def describe(self) -> dict:
        kind = f"ids (V={self.vocab_size})" if self.discrete else f"values (C={self.channels})"
        return {"modality": self.name, "tokens": self.max_tokens, "token": kind}


@dataclass(frozen=True)
class ImagePatches(ModalitySpec):
    """Images (n, H, W) or (n, H, W, ch) with values in [0, 1] -> non-overlapping p x p patches."""

    height: int
    width: int
    image_channels: int = 1
    patch: int = 4
    name: str = "image"
    default_ratio: float = 0.75

    def __post_init__(self) -> None:
        if self.height % self.patch or self.width % self.patch:
            raise ValueError(f"patch size {self.patch} does not divide image size {self.height}x{self.width}")

    @property
    def grid(self) -> tuple[int, int]:  # type: ignore[override]
        return self.height // self.patch, self.width // self.patch

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
        patches = images.reshape(n, rows, p, cols, p, ch).transpose(0, 1, 3, 2, 4, 5)
        inputs = np.ascontiguousarray(patches.reshape(n, rows * cols, p * p * ch))
        return TokenArrays(inputs=inputs, valid=np.ones((n, rows * cols), dtype=bool))

    def to_images(self, values: np.ndarray) -> np.ndarray:
        """Patch tokens (n, N, C) -> images (n, H, W, ch); the inverse of `tokenize`."""
        rows, cols = self.grid
        p, ch = self.patch, self.image_channels
        n = len(values)
        patches = np.asarray(values).reshape(n, rows, cols, p, p, ch).transpose(0, 1, 3, 2, 4, 5)
        return patches.reshape(n, rows * p, cols * p, ch)


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
