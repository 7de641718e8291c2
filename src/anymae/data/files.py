"""Readers for users' own files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, random_splits
from anymae.errors import UserError
from anymae.tokens import ImagePatches


def load_image_arrays(path: Path, config: DataConfig) -> Dataset:
    """`.npy` of images, or `.npz` with `x` (images) and optionally `y` (labels).

    Images are (n, H, W) or (n, H, W, channels); uint8 is scaled to [0, 1], floats are kept.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise UserError(f"{path}: not a readable numpy file ({error})") from None
    if isinstance(loaded, np.ndarray):
        images, labels = loaded, None
    else:
        if "x" not in loaded.files:
            raise UserError(f"{path}: expected an array named 'x' (images), found {', '.join(loaded.files) or 'none'}")
        images, labels = loaded["x"], loaded["y"] if "y" in loaded.files else None
    if images.ndim not in (3, 4) or len(images) < 2:
        raise UserError(
            f"{path}: field 'x' must hold at least 2 images of shape (H, W) or (H, W, C), got {images.shape}"
        )
    if labels is not None and labels.shape != (len(images),):
        raise UserError(f"{path}: field 'y' must hold one label per image ({len(images)}), got shape {labels.shape}")
    if not np.isfinite(images).all():
        bad = np.flatnonzero(~np.isfinite(images.reshape(len(images), -1)).all(axis=1))
        raise UserError(f"{path}: field 'x' has NaN or inf in {len(bad)} images (first: index {bad[0]})")
    scaled = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    height, width = images.shape[1:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    patch = config.patch or next(p for p in (4, 2, 1) if height % p == 0 and width % p == 0)
    if height % patch or width % patch:
        raise UserError(f"{path}: patch size {patch} does not divide the image size {height}x{width} (set data.patch)")
    spec = ImagePatches(height=height, width=width, image_channels=channels, patch=patch)
    return Dataset(
        name=path.name,
        spec=spec,
        tokens=spec.tokenize(scaled),
        labels=None if labels is None else labels.astype(np.int64),
        splits=random_splits(len(images), seed=0),
        task="classification" if labels is not None else "none",
        source=str(path),
    )


READERS = {".npy": load_image_arrays, ".npz": load_image_arrays}


def load_file(path: Path, config: DataConfig) -> Dataset:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: no reader for '{path.suffix}' files (readable: {', '.join(READERS)})")
    return reader(path, config)
