"""Per-stream state a notebook calculator keeps on `self`, which OVMS would share across streams.

ovms_notebook creates one Calculator instance per graph run, so per stream: `self` is that stream's
state. OVMS creates one `OvmsPythonModel` per node per graph definition and uses it for every stream,
so once `export` turns the calculator into a handler, whatever it keeps on `self` between `process`
calls is shared (and interleaved) by all streams, and `open` runs once, not per stream. The class
source is read (AST) for writes to self attributes outside `__init__`/`open`: assignments
(`self.x = ...`, `self.x += ...`, `self.x[k] = ...`, `del self.x`) and calls of the usual mutating
methods on them (`self.x.append(...)`, `self.tracker.update(...)`).
"""

from __future__ import annotations

import ast
import textwrap

from ovms_notebook.portability.findings import Finding
from ovms_notebook.portability.source import class_source

#: Methods where setting up state is per instance on both sides (run once per stream here, once on OVMS).
_SETUP = ("__init__", "open")
#: Method names that change the object they are called on (list, dict, set, deque, and trackers' update).
_MUTATORS = frozenset({"append", "appendleft", "extend", "extendleft", "insert", "pop", "popleft", "popitem",
                       "clear", "update", "add", "remove", "discard", "setdefault", "sort", "reverse", "fill",
                       "put", "resize"})


def _self_attribute(node: ast.AST, self_name: str) -> str | None:
    """The attribute `x` when `node` is `self.x`, `self.x[...]`, `self.x.y...` (the part on self); else None."""
    while isinstance(node, ast.Subscript | ast.Attribute):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == self_name:
            return node.attr
        node = node.value
    return None


def _writes(method: ast.FunctionDef) -> list[str]:
    """Self attributes `method` assigns, deletes or mutates, in source order."""
    if not method.args.args:
        return []
    me = method.args.args[0].arg
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(method):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in _MUTATORS):
            targets = [node.func.value]
        for target in targets:
            for part in ast.walk(target) if isinstance(target, ast.Tuple | ast.List) else [target]:
                name = _self_attribute(part, me)
                if name is not None and isinstance(part, ast.expr):
                    found.append((part.lineno, part.col_offset, name))
    return list(dict.fromkeys(name for _, _, name in sorted(found)))


def stream_state(cls: type) -> dict[str, list[str]]:
    """{method: [self attributes it writes]} for the methods of `cls` other than __init__/open; {} if none.

    A class whose source cannot be read gives {} (export then refuses it for that reason anyway).
    """
    try:
        tree = ast.parse(textwrap.dedent(class_source(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    definition = tree.body[0]
    if not isinstance(definition, ast.ClassDef):
        return {}
    found = {}
    for method in definition.body:
        if isinstance(method, ast.FunctionDef) and method.name not in _SETUP:
            written = _writes(method)
            if written:
                found[method.name] = written
    return found


def shared_state_finding(subject: str, cls: type) -> Finding | None:
    """A warning when `cls` keeps per-stream state on self that OVMS would share across streams; else None."""
    state = stream_state(cls)
    if not state:
        return None
    where = "; ".join(f"{', '.join(f'self.{a}' for a in attrs)} in {method}()" for method, attrs in state.items())
    return Finding("warning", "shared-state", subject,
                   f"keeps state on self between calls ({where}): ovms_notebook creates one calculator per stream, "
                   "but OVMS creates one OvmsPythonModel per node per graph definition and uses it for every stream, "
                   "so on OVMS that state is shared by all streams (and open() runs once, not per stream)")
