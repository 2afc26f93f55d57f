#!/usr/bin/env bash
# The main job, from a fresh machine: set up (the notebook extra only), then open JupyterLab on the lessons.
# It prints the URL to open (http://127.0.0.1:PORT/lab?token=...); Ctrl-C stops it. Extra arguments go to
# `jupyter lab` (e.g. --port 8899).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh notebook
args=(--ServerApp.ip=127.0.0.1 --notebook-dir=notebooks)
# No "get notified about Jupyter news?" prompt over the lessons' first cells, and no update check on start.
args+=(--LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate)
[ "$(id -u)" = 0 ] && args+=(--allow-root)      # JupyterLab refuses to run as root without it (CI, containers)
[ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && args+=(--no-browser)   # no desktop: open the printed URL yourself
exec .venv/bin/jupyter lab "${args[@]}" "$@"
