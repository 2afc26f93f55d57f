#!/usr/bin/env bash
# Set up what ovms_notebook needs on a fresh Debian machine: system packages (when run as root with apt),
# a virtual environment in .venv and the package with its extras, pinned by constraints.txt.
#
#   bash scripts/setup.sh          # the notebook set-up: JupyterLab, the lessons, the CLI   (scripts/lab.sh)
#   bash scripts/setup.sh test     # the above plus the test and benchmark extras, Chromium  (scripts/test.sh)
#
# Idempotent: a second run only checks (a stamp in .venv records what was installed). Nothing is downloaded
# at run time except packages from the registries.
#
# The package is installed editable in setuptools' "strict" mode: .venv sees a tree of symlinks to the
# files under build/, so an edit to a module shows at once, and a folder named ovms_notebook in the working
# folder (the clone itself, seen from its parent) cannot shadow the package as a namespace package, which
# the default editable mode lets happen. A new or removed module changes the stamp: the next run relinks.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-notebook}" in
  notebook) EXTRAS=notebook; APT_PACKAGES=(graphviz) ;;
  test) EXTRAS=notebook,test,bench; APT_PACKAGES=(graphviz chromium fonts-dejavu-core) ;;
  *) echo "usage: bash scripts/setup.sh [notebook|test]" >&2; exit 2 ;;
esac

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

# The Python versions every pinned dependency publishes wheels for (pyproject.toml's requires-python).
supported='import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)'
if [ ! -x .venv/bin/python ]; then
  PYTHON="${PYTHON:-}"
  if [ -z "$PYTHON" ]; then
    for candidate in python3 python3.12 python3.11; do
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$supported" 2>/dev/null; then
        PYTHON=$candidate; break
      fi
    done
  fi
  if [ -z "$PYTHON" ] || ! "$PYTHON" -c "$supported"; then
    echo "setup: ovms_notebook needs Python 3.11 or 3.12 (set PYTHON=/path/to/python3.x); found ${PYTHON:-none}" >&2
    exit 1
  fi
  echo "setup: creating .venv with $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.ovms-notebook-installed
want="$( { echo "$EXTRAS"; cat pyproject.toml constraints.txt;
           find ovms_notebook pyovms -name __pycache__ -prune -o -print | LC_ALL=C sort; } | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing ovms_notebook[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # setuptools boxes a note about the strict mode's build/ folder (described above): not for the user
  PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/python -m pip install -q -c constraints.txt --config-settings editable_mode=strict -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
