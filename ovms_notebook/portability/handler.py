"""A notebook `Calculator` as an OVMS `PythonExecutorCalculator` handler file (class `OvmsPythonModel`).

`handler_source(cls, node_name, inputs, outputs)` returns the file text, or raises `NotExportable`
with every reason it cannot: the handler must run in OVMS's Python image (numpy and pyovms, no
ovms_notebook, no mediapipe), see only pyovms Tensors, and has no timestamps, side packets or
bounds. The calculator's own source is copied as written; the free names it uses are brought along
when they are modules (imported again), simple constants, or functions and classes whose source
can be read (copied too); anything else is a reason. Helpers that come from ovms_notebook itself (say
`boxes_of` from its tracking calculators) are imported from the package, not copied with the package's
own internals: `Handler.package_imports` names them, so export can say plainly that the OVMS side then
needs the ovms_notebook package.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
from collections.abc import Mapping
from dataclasses import dataclass, field

from ovms_notebook.engine.python.api import Calculator
from ovms_notebook.errors import NotExportable
from ovms_notebook.portability.source import class_source

#: Calculator helpers with no counterpart in OVMS's Python node API.
_CONTEXT_ONLY = ("emit", "set_next_timestamp_bound", "close_output", "input_timestamp", "input_done", "options")
#: Names from ovms_notebook.engine.python.api the handler cannot offer.
_API_ONLY = {"Packet": "stamps packets explicitly", "Bound": "sets timestamp bounds",
             "STOP": "is a source node (STOP)", "EMPTY": "sends bound-only updates"}
#: Top-level packages OVMS's Python image does not have.
_ABSENT = ("ovms_notebook", "mediapipe", "IPython", "ipywidgets", "matplotlib")
_SIMPLE = (int, float, str, bool, bytes, type(None))

_PRELUDE = '''\
import numpy as np
from pyovms import Tensor


class Calculator:
    """Stand-in for ovms_notebook.engine.python.api.Calculator, which the calculator below subclasses."""

    inputs = ()
    outputs = ()
    side_packets = ()
    input_stream_handler = "DefaultInputStreamHandler"
    sync_sets = ()
    timestamp_offset = 0
    process_timestamp_bounds = False

    def open(self, side_packets):
        pass

    def process(self, timestamp, inputs):
        return None

    def close(self):
        return None


def register(name=None):
    """ovms_notebook's registration decorator: a no-op here."""
    return name if isinstance(name, type) else (lambda cls: cls)
'''

_RUNNER = '''

_DATATYPES = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
              "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
              "float32": "FP32", "float64": "FP64"}


class _TensorValue:
    """What the calculator saw in ovms_notebook (codec TensorValue): name, datatype, shape, data, array()."""

    def __init__(self, tensor):
        self.name, self.datatype, self.shape = tensor.name, tensor.datatype, tuple(tensor.shape)
        self._array = np.asarray(tensor)
        self.data = self._array.tobytes()

    def array(self):
        return self._array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


class OvmsPythonModel:
    """OVMS's Python node contract around the calculator: one instance per graph definition."""

    def initialize(self, kwargs):
        self.calculator = __CLASS__()
        self.calculator.node_name = kwargs.get("node_name", "")
        self.calculator.input_tags = tuple(INPUTS.values())
        self.calculator.output_tags = tuple(OUTPUTS)
        self.calculator.open({})

    def execute(self, inputs):
        values = dict.fromkeys(INPUTS.values())
        for tensor in inputs:
            values[INPUTS[tensor.name]] = _TensorValue(tensor)
        result = self.calculator.process(None, values)
        if result is None:
            return []
        if not isinstance(result, dict):
            result = {next(iter(OUTPUTS)): result}
        tensors = []
        for key, value in result.items():
            if value is None:
                continue
            array = np.ascontiguousarray(value.array() if hasattr(value, "array") else np.asarray(value))
            datatype = _DATATYPES.get(array.dtype.name)
            if datatype is None:
                raise TypeError(f"output {key!r}: numpy dtype {array.dtype} has no KServe datatype")
            tensors.append(Tensor(OUTPUTS[key], array, shape=array.shape, datatype=datatype))
        return tensors
'''


def _class_source(obj: type | types.FunctionType) -> ast.ClassDef | ast.FunctionDef:
    text = class_source(obj) if isinstance(obj, type) else inspect.getsource(obj)
    tree = ast.parse(textwrap.dedent(text))
    definition = tree.body[0]
    assert isinstance(definition, ast.ClassDef | ast.FunctionDef)
    definition.decorator_list = []
    for node in ast.walk(definition):  # annotations name types the handler need not import: drop them
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
        elif isinstance(node, ast.arg):
            node.annotation = None
    return definition


def _free_names(definition: ast.AST) -> set[str]:
    """Names read but never bound inside `definition` (module-level names it depends on)."""
    bound: set[str] = set()
    loaded: set[str] = set()
    for node in ast.walk(definition):
        if isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store | ast.Del) else loaded).add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef) and node is not definition:
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return loaded - bound - set(dir(builtins))


def _uses(definition: ast.ClassDef) -> list[str]:
    reasons = []
    for node in ast.walk(definition):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
                and node.attr in (*_CONTEXT_ONLY, "node")):
            reasons.append(f"uses self.{node.attr}, which OVMS's Python node API has no counterpart for")
    for method in definition.body:
        if isinstance(method, ast.FunctionDef) and method.name == "process" and len(method.args.args) >= 2:
            stamp = method.args.args[1].arg
            if any(isinstance(n, ast.Name) and n.id == stamp for n in ast.walk(method)):
                reasons.append(f"process() reads its timestamp argument {stamp!r}; OVMS's execute() gets no timestamp")
        if isinstance(method, ast.FunctionDef) and method.name == "close":
            reasons.append("defines close(), which runs at each stream's end here; OVMS has no per-stream end call")
    return list(dict.fromkeys(reasons))


@dataclass(frozen=True)
class Handler:
    """A generated handler: the file's text and the ovms_notebook helpers it imports ("name (module)")."""

    text: str
    package_imports: list[str] = field(default_factory=list)


def _where(namespace: Mapping[str, object]) -> str:
    module = str(namespace.get("__name__", ""))
    return "the notebook global" if module in ("__main__", "") else f"the global of module {module}:"


def _bring_along(names: set[str], namespace: Mapping[str, object], reasons: list[str],
                 seen: set[str], package: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(import lines, definitions) for the free `names`, resolved in `namespace`; reasons for what cannot come.

    Functions and classes of ovms_notebook are imported, not copied; `package` collects them.
    """
    package = [] if package is None else package
    imports: list[str] = []
    definitions: list[str] = []
    for name in sorted(names - seen):
        seen.add(name)
        if name in ("Calculator", "register", "np", "Tensor"):
            continue
        if name in _API_ONLY:
            reasons.append(f"uses {name} (it {_API_ONLY[name]}), which an OVMS Python node cannot do")
            continue
        if name not in namespace:
            reasons.append(f"uses the name {name!r}, which is not defined where the calculator was defined")
            continue
        value = namespace[name]
        module = getattr(value, "__module__", None) or ""
        if isinstance(value, types.ModuleType):
            if value.__name__.split(".")[0] in _ABSENT:
                reasons.append(f"uses module {value.__name__} ({name}), which OVMS's Python image does not have")
            else:
                imports.append(f"import {value.__name__} as {name}" if value.__name__ != name else f"import {name}")
        elif isinstance(value, _SIMPLE) or (isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value)):
            definitions.append(f"{name} = {value!r}")
        elif isinstance(value, types.FunctionType | type) and module.split(".")[0] == "ovms_notebook":
            copied = _copy(value, seen)
            if copied is not None:  # a self-contained helper travels as source, like the calculator's own
                imports += copied[0]
                definitions += copied[1]
            else:  # it needs more of the package than can be copied: import it from there
                alias = f" as {name}" if value.__name__ != name else ""
                imports.append(f"from {module} import {value.__name__}{alias}")
                package.append(f"{name} ({module})")
        elif isinstance(value, types.FunctionType | type):
            try:
                definition = _class_source(value)
            except (OSError, TypeError):
                reasons.append(f"uses {name} ({module}), whose source cannot be read")
                continue
            more_imports, more = _bring_along(_free_names(definition), vars(inspect.getmodule(value) or types),
                                              reasons, seen, package)
            imports += more_imports
            definitions += [*more, ast.unparse(definition)]
        else:
            reasons.append(f"uses {_where(namespace)} {name!r} (a {type(value).__name__}), which cannot be copied")
    return imports, definitions


def _copy(value: types.FunctionType | type, seen: set[str]) -> tuple[list[str], list[str]] | None:
    """(imports, definitions) copying a package helper and all it uses; None when any of it cannot be copied
    (then nothing is marked as brought along)."""
    try:
        definition = _class_source(value)
    except (OSError, TypeError):
        return None
    reasons: list[str] = []
    nested: list[str] = []
    trial = set(seen)
    imports, more = _bring_along(_free_names(definition), vars(inspect.getmodule(value) or types), reasons, trial,
                                 nested)
    if reasons or nested or any(line.split()[1].split(".")[0] in _ABSENT for line in imports):
        return None
    seen |= trial
    return imports, [*more, ast.unparse(definition)]


def handler_source(cls: type[Calculator], registered_as: str, inputs: Mapping[str, str],
                   outputs: Mapping[str, str]) -> Handler:
    """The handler for `cls`; `inputs` maps stream name -> the calculator's key, `outputs` key -> name.

    NotExportable lists every reason it cannot be written.
    """
    reasons = []
    if cls.side_packets:
        reasons.append(f"declares input side packets {tuple(cls.side_packets)}; OVMS gives Python nodes only "
                       "PYTHON_NODE_RESOURCES")
    if cls.process_timestamp_bounds:
        reasons.append("runs on timestamp bounds (process_timestamp_bounds=True); an OVMS Python node runs only "
                       "when a packet arrives")
    if cls.input_stream_handler == "SyncSetInputStreamHandler":
        reasons.append("uses SyncSetInputStreamHandler sync sets, which the handler cannot reproduce")
    try:
        definition = _class_source(cls)
    except (OSError, TypeError) as error:
        raise NotExportable([*reasons, f"the source of {cls.__qualname__} cannot be read ({error})"]) from None
    if not isinstance(definition, ast.ClassDef):
        raise NotExportable([*reasons, f"{cls.__qualname__} is not a class definition"])
    reasons += _uses(definition)
    namespace = vars(inspect.getmodule(cls)) if inspect.getmodule(cls) else {}
    package: list[str] = []
    imports, definitions = _bring_along(_free_names(definition), namespace, reasons, {cls.__name__}, package)
    if reasons:
        raise NotExportable(reasons)
    header = (f'"""OVMS Python node handler generated by `ovms-notebook export` from the calculator '
              f'{registered_as!r} ({cls.__module__}.{cls.__qualname__}).\n\n'
              "The calculator code below is re-emitted from its source; OvmsPythonModel maps pyovms Tensors to its "
              "inputs and outputs by stream name. One instance serves every stream of the graph (OVMS shares a "
              'Python node between graph instances).\n"""\n')
    body = "\n\n\n".join([*definitions, ast.unparse(definition)])
    tables = f"\n\nINPUTS = {dict(inputs)!r}\nOUTPUTS = {dict(outputs)!r}\n"
    text = "\n".join([header, *imports, _PRELUDE]) + "\n\n" + body + tables + _RUNNER.replace("__CLASS__", cls.__name__)
    return Handler(text, list(dict.fromkeys(package)))
