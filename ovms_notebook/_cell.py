"""Which notebook cell is running now, so that re-running a cell replaces what its last run made, and only that.

A Jupyter front end (JupyterLab, Notebook 7, VS Code) sends the id of the cell it executes in the execute
request's metadata (`cellId`); each execution has its own request id. `current_cell()` reads both from the
kernel's current request. Servers and widgets use them to tell a re-run of the same cell (replace) from a
second object made in another cell (keep both). Outside a kernel, or with a front end that sends no cell id,
there is no cell: callers then fall back to replacing by what the object is for.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Cell", "CellOwned", "current_cell"]


class Cell(NamedTuple):
    """A cell (`cell_id`, stable across runs) and one run of it (`run`, the execute request's id)."""

    cell_id: str
    run: str


def current_cell() -> Cell | None:
    """The cell whose execution is running on this thread's kernel request, or None outside one."""
    if "IPython" not in sys.modules:  # not in a kernel: importing IPython here would only cost time
        return None
    try:
        from IPython import get_ipython

        shell = get_ipython()
        kernel = getattr(shell, "kernel", None)
        parent: Any = kernel.get_parent() if kernel is not None else None
    except Exception:  # an IPython without a kernel, or a kernel API this code does not know
        return None
    if not isinstance(parent, dict) or parent.get("header", {}).get("msg_type") != "execute_request":
        return None
    cell_id = (parent.get("metadata") or {}).get("cellId")
    run = parent.get("header", {}).get("msg_id")
    if not isinstance(cell_id, str) or not cell_id or not isinstance(run, str):
        return None
    return Cell(cell_id, run)


@dataclass
class _Made:
    run: str
    objects: list[weakref.ref[Any]] = field(default_factory=list)


class CellOwned:
    """What each cell's last run made of one kind (servers, or widgets): a new run of a cell closes the last run's.

    `claim(obj, close, fallback_key)` records `obj` as made by the running cell and returns the objects to close:
    those the same cell's previous run made. Outside a cell it replaces by `fallback_key` instead (the object
    made last for the same purpose). Objects are held weakly.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_cell: dict[str, _Made] = {}
        self._by_key: dict[Hashable, weakref.ref[Any]] = {}

    def claim(self, obj: Any, fallback_key: Hashable) -> list[Any]:
        """Record `obj`; return what it replaces (never `obj` itself), for the caller to close."""
        cell = current_cell()
        with self._lock:
            if cell is None:
                for stale in [k for k, ref in self._by_key.items() if ref() is None]:
                    del self._by_key[stale]
                previous = self._by_key.get(fallback_key)
                self._by_key[fallback_key] = weakref.ref(obj)
                replaced = [previous] if previous is not None else []
            else:
                made = self._by_cell.get(cell.cell_id)
                if made is None or made.run != cell.run:
                    replaced = made.objects if made is not None else []
                    self._by_cell[cell.cell_id] = _Made(cell.run, [weakref.ref(obj)])
                else:  # the same run made one more: both stay
                    made.objects.append(weakref.ref(obj))
                    replaced = []
        alive = (ref() for ref in replaced)
        return [old for old in alive if old is not None and old is not obj]
