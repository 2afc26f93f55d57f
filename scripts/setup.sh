#!/usr/bin/env bash
# Set up everything ovms_notebook needs on a fresh Debian machine with Python 3.11:
# system packages (when run as root with apt), a virtual environment in .venv,
# and the package with its extras, pinned by constraints.txt.
# Idempotent: a second run only checks. Source-free: nothing is downloaded at
# run time except packages from the registries.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(graphviz chromium fonts-dejavu-core)
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"ovms_notebook needs Python 3.11, found {sys.version.split()[0]}"'

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.ovms-notebook-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing ovms_notebook and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test,notebook,bench]"
  echo "$want" > "$stamp"
fi
