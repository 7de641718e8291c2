"""anymae: masked-autoencoder pretraining for any kind of data.

The API (`anymae.pretrain`, `anymae.load`, `anymae.load_dataset`, ...) is imported on first use,
so `import anymae` stays light (no torch until a function is called).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "pretrain": "anymae.api",
    "load": "anymae.api",
    "load_dataset": "anymae.api",
    "Encoder": "anymae.api",
    "Config": "anymae.config",
    "Dataset": "anymae.data.dataset",
    "BUILTINS": "anymae.data",
    "UserError": "anymae.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'anymae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
