"""Images: numpy arrays (.npy / .npz) and folders of PNG / JPEG files (Pillow, `anymae[images]`).

Folders: a sub-folder per class (the first folder level under the folder is the label, as
torchvision's ImageFolder reads it; deeper folders belong to their top one) or images directly
in the folder (unlabelled). Any size works: images are never resized. A folder of mixed sizes
is read on a canvas of the largest height and width, each image at the top left and the rest
padding; a patch that lies wholly in padding is an invalid token (never encoded, never in the
loss). The patch size is chosen among the divisors of the size (choose_patch); where none gives
2 to `data.max_tokens` patches, the image is padded to a multiple of the patch.
Colour: if any image is in colour, all become RGB (grey is repeated), else grey; alpha is
dropped, palettes expanded.

Pixels end in [0, 1] by one rule (pixel_scale), stored with the run so `Encoder.embed` scales
its inputs the same way: integers are divided by 255 when they all lie in 0-255, else by 65535
when they lie in 0-65535 (16-bit PNGs: always 65535); floats must already lie in [0, 1].
"""

from __future__ import annotations

import warnings
import zipfile
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
    """4 (or 2, 1) when that gives at most `max_tokens` patches, else the smallest larger divisor of
    both sides that does; where no divisor gives 2 to `max_tokens` patches, the smallest patch
    that does once the image is padded to a multiple of it (ImagePatches pads)."""

    def fits(p: int) -> bool:
        return 2 <= -(-height // p) * -(-width // p) <= max_tokens

    divisors = [p for p in range(1, min(height, width) + 1) if height % p == 0 and width % p == 0]
    for p in (*[p for p in (4, 2, 1) if p in divisors], *[p for p in divisors if p > 4]):
        if fits(p):
            return p
    return next((p for p in range(1, max(height, width) + 1) if fits(p)), 1)  # 1: too small, refused later


def pixel_scale(where: str, images: np.ndarray) -> float:
    """The divisor that brings integer pixels into [0, 1] (255 or 65535, by their values); 1.0 for
    floats, which must lie in [0, 1] already. The one rule for arrays of images, API inputs included."""
    if images.dtype.kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low >= 0 and high <= 65535:
            return 255.0 if high <= 255 else 65535.0
        raise UserError(f"{where}: integer pixels must lie in 0-255 (8 bits) or 0-65535 (16 bits), got {low} to {high}")
    flat = images.reshape(len(images), -1)
    finite = np.isfinite(flat) & (np.abs(flat) <= FLOAT32_MAX)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise UserError(
            f"{where}: field 'x' has NaN, inf or values beyond float32 in {len(bad)} images (first: {bad[0]})"
        )
    outside = (flat < 0) | (flat > 1)
    if outside.any():
        first = int(np.flatnonzero(outside.any(axis=1))[0])
        low, high = float(flat.min()), float(flat.max())
        hint = " (pixels of 0-255 as floats? divide them by 255)" if high > 1 else ""
        raise UserError(
            f"{where}: float pixels must lie in [0, 1], got {low:g} to {high:g} (first in image {first}){hint}"
        )
    return 1.0


MAX_IMAGE_PIXELS = 4096 * 4096  # one image; larger ones are refused from their header (decompression bombs)


def image_dataset(
    images: np.ndarray, places: list[str], bad: BadRecords, config: DataConfig, scale: float = 255.0, **about
) -> Dataset:
    """Images (n, H, W[, C]) in [0, 1] (NaN: padding) cut into patches of `data.patch` (default:
    choose_patch). `scale`: how integer pixels were scaled (kept in the spec). `about`: name, labels,
    source, license, metric, task, importance (see make_dataset)."""
    height, width = images.shape[1:3]
    channels = images.shape[3] if images.ndim == 4 else 1
    patch = config.patch or choose_patch(height, width, max(config.max_tokens, 16))
    spec = ImagePatches(height=height, width=width, image_channels=channels, patch=patch, pixel_scale=scale)
    return make_dataset(spec, images, places, bad, **about)


def load_image_arrays(
    path: Path, config: DataConfig, images: np.ndarray, labels: np.ndarray | None, importance=None
) -> Dataset:
    """`.npy` of images, or `.npz` with `x` (images) and optionally labels (`y`, or --label).

    Images are (n, H, W) or (n, H, W, channels), scaled to [0, 1] by `pixel_scale`.
    """
    if images.ndim not in (3, 4) or len(images) < 2 or images.shape[1] < 1 or images.shape[2] < 1:
        raise UserError(
            f"{path}: field 'x' must hold at least 2 images of shape (H, W) or (H, W, C), got {images.shape}"
        )
    if images.dtype.kind not in "biuf":
        raise UserError(f"{path}: field 'x' must hold numbers, got {images.dtype} values")
    if labels is not None and labels.shape != (len(images),):
        raise UserError(f"{path}: the labels must be one per image ({len(images)}), got shape {labels.shape}")
    depth = pixel_scale(str(path), images)
    scaled = images.astype(np.float32) / np.float32(depth)
    places = [f"image {i}" for i in range(len(images))]
    return image_dataset(
        scaled,
        places,
        BadRecords(path, config.on_bad_record),
        config,
        depth,
        name=path.name,
        labels=None if labels is None else labels.tolist(),
        task=array_task(labels),
        importance=importance,
        source=str(path),
    )


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a .npy (as 'x') or .npz file, without unpickling anything; refused before
    loading when they would take more than the file limit in memory."""
    magic = b"PK" if path.suffix.lower() == ".npz" else b"\x93NUMPY"
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            kind = "a zip archive of arrays (numpy.savez)" if magic == b"PK" else "an array file (numpy.save)"
            raise UserError(f"{path}: not a readable numpy file (it does not begin as {kind} does)")
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
    except UserError:
        raise
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
    height = max(s[1] for s, _ in headers.values())  # PIL sizes are (width, height)
    width = max(s[0] for s, _ in headers.values())
    colour = any(mode not in GREY_MODES for _, mode in headers.values())
    channels = 3 if colour else 1
    check_size(path, len(headers) * height * width * channels * 4)
    images, names, places, deep = [], [], [], False
    for f in headers:
        place = f"file {f.relative_to(path)}"
        try:
            with Image.open(f) as image:
                pixels = pixel_values(image, colour)
                deep = deep or image.mode.startswith("I")
        except (OSError, ValueError, SyntaxError) as error:
            bad(place, f"not a readable image ({brief(error, 120)})")
            continue
        canvas = np.full((height, width, channels), np.nan, dtype=np.float32)  # NaN: padding
        canvas[: pixels.shape[0], : pixels.shape[1]] = pixels.reshape(pixels.shape[0], pixels.shape[1], channels)
        images.append(canvas)
        names.append(f.relative_to(path).parts[0])  # the class: the first folder level under the folder
        places.append(place)
    if len(images) < 2:
        raise UserError(f"{path}: fewer than 2 usable images ({bad.count} bad)")
    return image_dataset(
        np.stack(images),
        places,
        bad,
        config,
        65535.0 if deep and not colour else 255.0,
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
