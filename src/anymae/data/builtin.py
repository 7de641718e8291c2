"""Built-in real datasets, read from files that ship with packages (no download at run time)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from anymae.config import DataConfig
from anymae.data.carriers import Builtin, always
from anymae.data.dataset import Dataset, random_splits
from anymae.data.realdata import REAL_BUILTINS
from anymae.errors import UserError
from anymae.tokens import ImagePatches

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path, offset: int) -> np.ndarray:
    """An IDX file (gzip): the payload after `offset` header bytes, as uint8."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_fashion_mnist(config: DataConfig) -> Dataset:
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        parts[split] = (images, read_idx(FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", 8))
    images = np.concatenate([parts["train"][0], parts["test"][0]]).astype(np.float32) / 255.0
    labels = np.concatenate([parts["train"][1], parts["test"][1]]).astype(np.int64)
    n_train = len(parts["train"][0])
    order = np.random.default_rng(0).permutation(n_train)  # the official test set stays the test set
    spec = ImagePatches(height=28, width=28, patch=config.patch or 4)
    return Dataset(
        name="fashion-mnist",
        spec=spec,
        tokens=spec.tokenize(images),
        labels=labels,
        splits={"train": np.sort(order[5000:]), "val": np.sort(order[:5000]), "test": np.arange(n_train, len(images))},
        source="Debian dataset-fashion-mnist",
        license="MIT",
    )


def load_digits(config: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    spec = ImagePatches(height=8, width=8, patch=config.patch or 2)
    return Dataset(
        name="digits",
        spec=spec,
        tokens=spec.tokenize(digits.images.astype(np.float32) / 16.0),
        labels=digits.target.astype(np.int64),
        splits=random_splits(len(digits.target), seed=0),
        source="scikit-learn load_digits (bundled)",
        license="BSD-3-Clause",
    )


IMAGE_BUILTINS = (
    Builtin(
        "fashion-mnist",
        "image",
        "70,000 28x28 grey (55k/5k/10k)",
        "10 classes",
        "accuracy",
        "Debian dataset-fashion-mnist",
        "MIT",
        "apt-get install -y --no-install-recommends dataset-fashion-mnist",
        lambda: (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
        load_fashion_mnist,
    ),
    Builtin(
        "digits",
        "image",
        "1,797 8x8 grey (60/20/20)",
        "10 classes",
        "accuracy",
        "scikit-learn load_digits (bundled)",
        "BSD-3-Clause",
        "",
        always,
        load_digits,
    ),
)

BUILTINS: dict[str, Builtin] = {b.name: b for b in (*IMAGE_BUILTINS, *REAL_BUILTINS)}


def load_builtin(name: str, config: DataConfig) -> Dataset:
    builtin = BUILTINS[name]
    if not builtin.ready():
        raise UserError(f"dataset '{name}' is not installed on this machine; install it with: {builtin.install}")
    return builtin.load(config)
