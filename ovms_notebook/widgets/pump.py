"""A coalescing redraw thread: `poke()` from any thread, `work()` runs at most every `min_interval` seconds.

The live widgets get a poke per response (on a client's reader thread, which
must stay quick) but only need the newest state drawn: pokes that come while a
drawing is due or running collapse into one more drawing. The thread is
started on the first poke, named with `THREAD_PREFIX`, ends after `IDLE_SECONDS`
without a poke (the next poke starts a new one: a widget whose stream is over
keeps no thread), and is joined by `close()`.

It is the widgets' one refresh mechanism: the console, the live view and the timeline each own one. A pump
holds a bound method's object only weakly, so an abandoned widget can be collected; its thread then ends by
itself (and its owner's finalizer closes it at once).
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections.abc import Callable
from types import MethodType

from ovms_notebook.widgets.render import THREAD_PREFIX

IDLE_SECONDS = 2.0  # a pump thread without a poke for this long ends


class Pump:
    """Run `work()` on one daemon thread after `poke()`, never more often than every `min_interval` s.

    An exception in `work` goes to `on_error(traceback text)` and the pump keeps going.
    """

    def __init__(self, work: Callable[[], None], name: str, *, min_interval: float,
                 on_error: Callable[[str], None]) -> None:
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.min_interval = min_interval
        self._work: Callable[[], Callable[[], None] | None] = (
            weakref.WeakMethod(work) if isinstance(work, MethodType) else (lambda: work))
        self._name = f"{THREAD_PREFIX}{name}"
        self._on_error = on_error
        self._cond = threading.Condition()
        self._dirty = False
        self._busy = False
        self._closed = False
        self._last = 0.0
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Ask for a run; returns at once (any thread, callbacks included)."""
        with self._cond:
            if self._closed:
                return
            self._dirty = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every poke so far has been worked off; False if `timeout` s passed first."""
        if self._thread is threading.current_thread():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while (self._dirty or self._busy) and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (a run in progress finishes first). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def note_run(self) -> None:
        """Count a run done outside the pump (a widget's first drawing, on its own thread) for the pace."""
        with self._cond:
            self._last = time.monotonic()

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                idle_until = time.monotonic() + IDLE_SECONDS
                while not self._dirty and not self._closed:
                    remaining = idle_until - time.monotonic()
                    if remaining <= 0:
                        self._thread = None  # the next poke starts a new thread
                        return
                    self._cond.wait(remaining)
                if self._closed:
                    return
                due = self._last + self.min_interval
                while not self._closed and (wait := due - time.monotonic()) > 0:
                    self._cond.wait(wait)  # pokes meanwhile merge into this run
                if self._closed:
                    return
                self._dirty = False
                self._busy = True
                self._last = time.monotonic()  # the pace counts from the start of a run, not its end
            work = self._work()
            if work is None:  # the owner is gone
                with self._cond:
                    self._closed, self._busy = True, False
                    self._cond.notify_all()
                return
            try:
                work()
            except Exception:
                self._on_error(traceback.format_exc())
            finally:
                del work
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
