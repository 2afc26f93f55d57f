"""Watching config.json the way OVMS does: check it every few seconds and reload when it changed.

OVMS polls its config file every `--file_system_poll_wait_seconds` (1 by default, 0 turns polling off) and,
when the file changed, loads new graphs, reloads changed ones and retires the ones it no longer lists; open
streams keep the graph they started with. A config that cannot be read is logged and the graphs already
served stay as they are.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: OVMS's default for `--file_system_poll_wait_seconds`.
OVMS_POLL_SECONDS = 1.0


def fingerprint(path: Path) -> bytes | None:
    """A digest of the file's bytes (None when it cannot be read): a rewrite with the same content is no change."""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


class ConfigWatch:
    """A thread that calls `reload()` whenever `path` changes, checking every `seconds` (0: no thread at all)."""

    def __init__(self, reload: Callable[[], object], path: Path, seconds: float) -> None:
        self.reload = reload
        self.path = path
        self.seconds = float(seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: bytes | None = None

    def start(self) -> None:
        """Start watching (nothing happens with `seconds` 0 or when already watching)."""
        if self.seconds <= 0 or self._thread is not None:
            return
        self._seen = fingerprint(self.path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ovms-config-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for the thread (a reload in progress finishes first)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def check(self) -> bool:
        """Reload if the file changed since the last look; True if it did."""
        now = fingerprint(self.path)
        if now is None or now == self._seen:
            return False
        self._seen = now
        log.info("%s changed: reloading", self.path)
        try:
            self.reload()
        except Exception:  # a broken config must not end the watch: OVMS keeps serving what it has
            log.exception("reloading %s failed; the graphs loaded before are served on", self.path)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.check()
