"""The source text of a class, also when it was written in a notebook cell.

`inspect.getsource(cls)` on Python 3.11 looks for a class in its module's file; a class defined in a Jupyter cell
lives in `__main__`, which has no file, so it fails with "source code not available" - exactly for the
calculators `check` and `export` care most about. Their methods do know where they came from: each function's
code names the cell's pseudo file (`/tmp/ipykernel_…/….py`), whose text IPython keeps in `linecache`. So the
class is found there: the class definition of that name that encloses one of its methods.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import types

__all__ = ["class_source"]


def class_source(cls: type) -> str:
    """The text of `cls`'s definition (with its decorators), from its module file or from the cell it came from.

    Raises OSError when neither has it (a class made with `type()`, or a cell whose text is gone).
    """
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        pass
    for code in _method_codes(cls):
        lines = linecache.getlines(code.co_filename)
        if not lines:
            continue
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.ClassDef) and node.name == cls.__name__
                    and node.lineno <= code.co_firstlineno <= (node.end_lineno or node.lineno)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                return "".join(lines[start - 1:node.end_lineno])
    raise OSError(f"the source of class {cls.__qualname__} is not available: neither its module "
                  f"({cls.__module__}) nor the cell its methods came from holds it")


def _method_codes(cls: type) -> list[types.CodeType]:
    """The code objects of the functions defined in `cls`'s own body (methods, static and class methods)."""
    codes = []
    for value in vars(cls).values():
        function = getattr(value, "__func__", value)
        code = getattr(function, "__code__", None)
        if isinstance(code, types.CodeType):
            codes.append(code)
    return codes
