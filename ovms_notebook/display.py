"""How data classes of the lower layers show themselves in Jupyter, without importing the UI.

`Server`, `Trace` and `StreamClient` live below `widgets/` and must not import it; their
`_repr_mimebundle_` asks this registry instead. `ovms_notebook.widgets` registers a renderer per class
when it is imported (`register`), and the package's top level installs a loader that imports
`ovms_notebook.widgets` the first time an object is shown, so a bare `server` in a notebook cell still
shows the panel. Without ipywidgets or matplotlib the loader fails and objects show their `repr`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["Renderer", "mimebundle", "register", "set_loader"]

#: Builds a Jupyter MIME bundle for an object: (object, the keyword arguments IPython passes) -> bundle.
Renderer = Callable[..., dict[str, Any]]

_renderers: dict[type, Renderer] = {}
_loader: Callable[[], object] | None = None
_loaded = False
_lock = threading.Lock()


def register(cls: type, renderer: Renderer) -> None:
    """Show instances of `cls` (and its subclasses) with `renderer`; a later registration replaces it."""
    _renderers[cls] = renderer


def set_loader(loader: Callable[[], object]) -> None:
    """Call `loader` (once) before the first object is shown: it imports whatever registers the renderers."""
    global _loader, _loaded
    _loader, _loaded = loader, False


def _load() -> None:
    global _loaded
    with _lock:
        if _loaded or _loader is None:
            return
        _loaded = True
        try:
            _loader()
        except ImportError as error:  # ipywidgets or matplotlib missing: objects show their repr
            log.info("no rich display for ovms_notebook objects: %s", error)


def _renderer_for(cls: type) -> Renderer | None:
    for klass in cls.__mro__:
        if klass in _renderers:
            return _renderers[klass]
    return None


def mimebundle(obj: object, **kwargs: Any) -> dict[str, Any]:
    """The bundle of `obj`'s registered renderer, or {"text/plain": repr(obj)} when none is registered."""
    renderer = _renderer_for(type(obj))
    if renderer is None:
        _load()
        renderer = _renderer_for(type(obj))
    if renderer is None:
        return {"text/plain": repr(obj)}
    return renderer(obj, **kwargs)
