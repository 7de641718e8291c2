"""Images: numpy arrays (.npy / .npz) and folders of PNG / JPEG files (Pillow, `anymae[images]`).

Folders: a sub-folder per class (its name is the label) or images directly in the folder
(unlabelled). Sizes are not resized: the most common size is the dataset's size and an image
of another size is a bad record (skip it with --on-bad-record skip; resize beforehand to keep
it). Colour: if any image is in colour, all become RGB (grey is repeated), else grey; alpha
is dropped, palettes expanded. Pixels are scaled to [0, 1].
"""

from __future__ import annotations

import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.dataset import Dataset, make_dataset
from anymae.data.records import BadRecords, array_task, brief, check_size
from anymae.errors import UserError
from anymae.tokens import FLOAT32_MAX, ImagePatches

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PILLOW_INSTALL = "pip install 'anymae[images]'  (or: pip install pillow)"
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def choose_patch(height: int, width: int, max_tokens: int) -> int:
    """4 (or 2, 1) when that gives at most `max_tokens` patches, else the smallest larger one."""
    for p in (4, 2, 1, 7, 8, 14, 16, 28, 32):
        if height % p == 0 and width % p == 0 and (height // p) * (width // p) <= max_tokens:
            return p
    raise UserError(f"no patch size divides the image size {height}x{width} into at most {max_tokens} patches")


MAX_IMAGE_PIXELS = 4096 * 4096  # one image; larger ones are refused from their header (decompression bombs)


def image_dataset(images: np.ndarray, places: list[str], bad: BadRecords, config: DataConfig, **about) -> Dataset:
    """Images (n, H, W[, C]) in [0, 1] cut into patches of `data.patch` (default: choose_patch).
    `about`: name, labels, source, license, metric, task, importance (see make_dataset)."""
    height, width = images.shape[1:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    patch = config.patch or choose_patch(height, width, max(config.max_tokens, 16))
    # ImagePatches refuses a patch that does not divide the image, naming the sizes that do
    spec = ImagePatches(height=height, width=width, image_channels=channels, patch=patch)
    return make_dataset(spec, images, places, bad, **about)


def load_image_arrays(
    path: Path, config: DataConfig, images: np.ndarray, labels: np.ndarray | None, importance=None
) -> Dataset:
    """`.npy` of images, or `.npz` with `x` (images) and optionally labels (`y`, or --label).

    Images are (n, H, W) or (n, H, W, channels); uint8 is scaled by 1/255, uint16 by 1/65535,
    floats are kept.
    """
    if images.ndim not in (3, 4) or len(images) < 2 or images.shape[1] < 1 or images.shape[2] < 1:
        raise UserError(
            f"{path}: field 'x' must hold at least 2 images of shape (H, W) or (H, W, C), got {images.shape}"
        )
    if images.dtype.kind not in "biuf":
        raise UserError(f"{path}: field 'x' must hold numbers, got {images.dtype} values")
    if labels is not None and labels.shape != (len(images),):
        raise UserError(f"{path}: the labels must be one per image ({len(images)}), got shape {labels.shape}")
    flat = images.reshape(len(images), -1)
    if images.dtype.kind == "f" and not (np.isfinite(flat) & (np.abs(flat) <= FLOAT32_MAX)).all():
        bad = np.flatnonzero(~(np.isfinite(flat) & (np.abs(flat) <= FLOAT32_MAX)).all(axis=1))
        raise UserError(
            f"{path}: field 'x' has NaN, inf or values beyond float32 in {len(bad)} images (first: {bad[0]})"
        )
    depth = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(images.dtype, 1.0)
    scaled = images.astype(np.float32) / depth
    places = [f"image {i}" for i in range(len(images))]
    return image_dataset(
        scaled,
        places,
        BadRecords(path, config.on_bad_record),
        config,
        name=path.name,
        labels=None if labels is None else labels.tolist(),
        task=array_task(labels),
        importance=importance,
        source=str(path),
    )


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy (as 'x') or .npz file, without unpickling anything; refused before
    loading when they would take more than the file limit in memory."""
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as archive:
                check_size(path, sum(info.file_size for info in archive.infolist()))
        else:
            header = np.load(path, mmap_mode="r", allow_pickle=False)
            check_size(path, header.nbytes)
            del header
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError) as error:
        raise UserError(f"{path}: not a readable numpy file ({brief(error)})") from None


def load_image_folder(path: Path, config: DataConfig) -> Dataset:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UserError(f"{path}: image folders need Pillow; install it with: {PILLOW_INSTALL}") from None
    if config.label:
        raise UserError(f"{path}: image folders take their labels from sub-folder names; --label does not apply")
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{path}: no PNG or JPEG images in this folder")
    labelled = all(f.parent != path for f in files)
    if not labelled and any(f.parent != path for f in files):
        raise UserError(f"{path}: images both directly in the folder and in sub-folders (use one or the other)")
    bad = BadRecords(path, config.on_bad_record)
    headers = {}
    for f in files:  # first pass: sizes and modes from the headers only
        place = f"file {f.relative_to(path)}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(f) as image:
                    size, mode = image.size, image.mode
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as error:
            bad(place, f"not a readable image ({brief(error, 120)})")
            continue
        if size[0] * size[1] > MAX_IMAGE_PIXELS:
            bad(place, f"is {size[0]}x{size[1]}, more than the limit of {MAX_IMAGE_PIXELS:,} pixels per image")
            continue
        headers[f] = (size, mode)
    if not headers:
        raise UserError(f"{path}: no readable images ({bad.count} bad)")
    size = Counter(s for s, _ in headers.values()).most_common(1)[0][0]
    colour = any(mode not in GREY_MODES for _, mode in headers.values())
    check_size(path, len(headers) * size[0] * size[1] * (3 if colour else 1) * 4)
    images, names, places = [], [], []
    for f, (s, _) in headers.items():
        place = f"file {f.relative_to(path)}"
        if s != size:
            bad(place, f"is {s[0]}x{s[1]}, the other images are {size[0]}x{size[1]}")
            continue
        try:
            with Image.open(f) as image:
                pixels = pixel_values(image, colour)
        except (OSError, ValueError, SyntaxError) as error:
            bad(place, f"not a readable image ({brief(error, 120)})")
            continue
        images.append(pixels)
        names.append(f.parent.name)
        places.append(place)
    if len(images) < 2:
        raise UserError(f"{path}: fewer than 2 usable images ({bad.count} bad)")
    return image_dataset(
        np.stack(images),
        places,
        bad,
        config,
        name=path.name,
        labels=names if labelled else None,
        task="classification" if labelled else None,
        source=str(path),
    )


def pixel_values(image, colour: bool) -> np.ndarray:
    """Pixels in [0, 1]: 16-bit grey images keep all 16 bits; colour drops alpha, expands palettes."""
    if not colour and image.mode in ("I", "I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.float64).astype(np.float32) / 65535.0
    return np.asarray(image.convert("RGB" if colour else "L"), dtype=np.float32) / 255.0
