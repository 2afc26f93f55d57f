"""How the widgets of this package live and die: composites that own their ipywidgets, callbacks that do not keep
their owner alive, and a re-run cell replaces what its last run made (and nothing another cell made).

ipywidgets calls its own methods (`send`, `log`, `focus`, `close`, `layout`, ...) on every widget, so a widget
here never subclasses an ipywidgets class to add behaviour: it is a `Composite` that owns a box (`box`) and shows
it. ipywidgets also keeps every open widget in a class-level registry, and a button's `on_click` handler is held
by the button: a handler that refers to its composite strongly keeps the composite, its stream and its threads
alive for the life of the kernel. Handlers are therefore wrapped with `weakly`, and each composite ends its
threads and streams in a `weakref.finalize` that runs at `close()` or when the composite is collected.
"""

from __future__ import annotations

import logging
import threading
import types
import weakref
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, Protocol, TypeVar

import ipywidgets as widgets

from ovms_notebook._cell import CellOwned

log = logging.getLogger(__name__)

__all__ = ["Closable", "Composite", "close_all", "closing_views", "replace_previous", "weakly"]

P = ParamSpec("P")
R = TypeVar("R")


class Closable(Protocol):
    """Anything with a `close()` that ends its threads and streams."""

    def close(self) -> None: ...


def weakly(method: Callable[P, R]) -> Callable[P, R | None]:
    """`method` (a bound method) called through a weak reference: once its object is gone, the call does nothing."""
    if not isinstance(method, types.MethodType):
        raise TypeError(f"weakly() takes a bound method, got {method!r}")
    ref = weakref.WeakMethod(method)

    def call(*args: P.args, **kwargs: P.kwargs) -> R | None:
        target = ref()
        return None if target is None else target(*args, **kwargs)

    return call


class Composite:
    """A widget made of ipywidgets it owns: `box` is what a notebook shows and what a container embeds.

    Subclasses set `box` in `__init__` and create their finalizer with `_own(release, *args)`: `release(*args)`
    runs once, at `close()` or when the composite is garbage-collected, so it must not refer to the composite.
    """

    box: widgets.Box
    _finalizer: weakref.finalize | None = None

    def _own(self, release: Callable[..., None], *args: Any) -> None:
        self._finalizer = weakref.finalize(self, release, *args)

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or the composite was collected)."""
        return self._finalizer is not None and not self._finalizer.alive

    def close(self) -> None:
        """End this widget's threads and streams and close its ipywidgets. Idempotent."""
        if self._finalizer is not None:
            with closing_views():
                self._finalizer()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        show = getattr(self.box, "_repr_mimebundle_", None)  # ipywidgets sets it to None when a widget closes
        if self.closed or show is None:
            return {"text/plain": f"<{type(self).__name__}: closed, by close() or by a new run of the cell that "
                                  "made it; its views, stream and threads are gone>"}
        return show(**kwargs)


_explicit = threading.local()


class closing_views:
    """Within this block, `close_all` closes ipywidgets: a `close()` the user (or a re-run cell) asked for.

    A composite that is only garbage-collected (nobody holds it, e.g. `display(Timeline(...))` in a loop)
    ends its threads and streams but leaves its ipywidgets open, as ipywidgets leaves any displayed widget:
    the notebook keeps showing what it last drew instead of "model not found".
    """

    def __enter__(self) -> None:
        _explicit.depth = getattr(_explicit, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _explicit.depth -= 1


def close_all(items: Any) -> None:
    """Close every widget in `items` (nested boxes included) when closing was asked for: a release helper.

    Outside a `closing_views()` block (a finalizer run by the garbage collector or at exit) the views are
    left as they are; see `closing_views`.

    Closing a widget tells the front end over the kernel's comm socket. When the kernel is shutting down
    (finalizers run at exit) that socket is already gone and ipywidgets raises ZMQError; there is nobody
    left to tell, so that is logged at debug level instead of printed as a traceback on the way out. Any other
    failure is logged as a warning, and the remaining widgets are closed all the same.
    """
    if not getattr(_explicit, "depth", 0):
        return
    for item in items:
        children = getattr(item, "children", ())
        if children:
            close_all(children)
        try:
            item.close()
        except Exception as error:
            if type(error).__module__.startswith("zmq"):  # the kernel's socket is gone: nobody left to tell
                log.debug("closing %s: the front end could not be told (%s)", type(item).__name__, error)
            else:
                log.warning("closing %s failed; its other widgets are closed still", type(item).__name__,
                            exc_info=True)


_made_by_cell = CellOwned()  # which cell's run made which widget: a re-run closes its own


def replace_previous(key: Hashable, widget: Closable) -> None:
    """Record `widget` as made by the running notebook cell, closing what that cell's previous run made.

    Re-running a cell replaces its consoles, players, timelines and cameras (their streams, threads and
    views); a widget made in another cell, even for the same server and graph, stays. Outside a notebook
    cell, `key` (what the widget is for, e.g. ("console", server address, graph)) decides: the widget
    made last for the same key is closed.
    """
    for old in _made_by_cell.claim(widget, fallback_key=key):
        old.close()
