"""Images: numpy arrays (.npy / .npz) and folders of PNG / JPEG files (Pillow, `anymae[images]`).

Folders: a sub-folder per class (its name is the label) or images directly in the folder
(unlabelled). Sizes are not resized: the most common size is the dataset's size and an image
of another size is a bad record (skip it with --on-bad-record skip; resize beforehand to keep
it). Colour: if any image is in colour, all become RGB (grey is repeated), else grey; alpha
is dropped, palettes expanded. Pixels are scaled to [0, 1].
"""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, random_splits
from anymae.data.records import BadRecords, class_labels
from anymae.errors import UserError
from anymae.tokens import ImagePatches

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PILLOW_INSTALL = "pip install 'anymae[images]'  (or: pip install pillow)"
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def choose_patch(height: int, width: int, max_tokens: int) -> int:
    """4 (or 2, 1) when that gives at most `max_tokens` patches, else the smallest larger one."""
    for p in (4, 2, 1, 7, 8, 14, 16, 28, 32):
        if height % p == 0 and width % p == 0 and (height // p) * (width // p) <= max_tokens:
            return p
    raise UserError(f"no patch size divides the image size {height}x{width} into at most {max_tokens} patches")


def image_dataset(name: str, images: np.ndarray, labels, config: DataConfig, notes: dict, source: str) -> Dataset:
    height, width = images.shape[1:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    patch = config.patch or choose_patch(height, width, max(config.max_tokens, 16))
    if height % patch or width % patch:
        raise UserError(f"{name}: patch size {patch} does not divide the image size {height}x{width} (set data.patch)")
    spec = ImagePatches(height=height, width=width, image_channels=channels, patch=patch)
    return Dataset(
        name=name,
        spec=spec,
        tokens=spec.tokenize(images),
        labels=labels,
        splits=random_splits(len(images), seed=0),
        task="classification" if labels is not None else "none",
        source=source,
        notes=notes,
    )


def load_image_arrays(path: Path, config: DataConfig, images: np.ndarray, labels: np.ndarray | None) -> Dataset:
    """`.npy` of images, or `.npz` with `x` (images) and optionally `y` (labels).

    Images are (n, H, W) or (n, H, W, channels); uint8 is scaled to [0, 1], floats are kept.
    """
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
    y = None if labels is None else labels.astype(np.int64)
    return image_dataset(path.name, scaled, y, config, {}, str(path))


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy (as 'x') or .npz file, without unpickling anything."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        return {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise UserError(f"{path}: not a readable numpy file ({error})") from None


def load_image_folder(path: Path, config: DataConfig) -> Dataset:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UserError(f"{path}: image folders need Pillow; install it with: {PILLOW_INSTALL}") from None
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{path}: no PNG or JPEG images in this folder")
    labelled = all(f.parent != path for f in files)
    if not labelled and any(f.parent != path for f in files):
        raise UserError(f"{path}: images both directly in the folder and in sub-folders (use one or the other)")
    bad = BadRecords(path, config.on_bad_record)
    headers = {}
    for f in files:  # first pass: sizes and modes from the headers only
        try:
            with Image.open(f) as image:
                headers[f] = (image.size, image.mode)
        except (UnidentifiedImageError, OSError) as error:
            bad(f"file {f.relative_to(path)}", f"not a readable image ({error})")
    if not headers:
        raise UserError(f"{path}: no readable images")
    size = Counter(s for s, _ in headers.values()).most_common(1)[0][0]
    colour = any(mode not in GREY_MODES for _, mode in headers.values())
    images, names = [], []
    for f, (s, _) in headers.items():
        if s != size:
            bad(f"file {f.relative_to(path)}", f"is {s[0]}x{s[1]}, the other images are {size[0]}x{size[1]}")
            continue
        try:
            with Image.open(f) as image:
                pixels = np.asarray(image.convert("RGB" if colour else "L"), dtype=np.float32) / 255.0
        except OSError as error:
            bad(f"file {f.relative_to(path)}", f"not a readable image ({error})")
            continue
        images.append(pixels)
        names.append(f.parent.name)
    if len(images) < 2:
        raise UserError(f"{path}: fewer than 2 usable images ({bad.count} bad)")
    notes = bad.report()
    labels = None
    if labelled:
        labels, classes = class_labels(names)
        notes["classes"] = classes
    return image_dataset(path.name, np.stack(images), labels, config, notes, str(path))
