"""Calculators written in Python: the contract a notebook cell implements, and the registry.

A calculator is a class; the graph creates one instance per graph run (one per
stream), so `self` is per-stream state. It declares its streams by MediaPipe
tag and index, and the graph calls `open`, then `process` once per input
timestamp its input stream handler makes ready, then `close`:

    @register()
    class Scale(Calculator):
        inputs = (":0",)            # one untagged input stream
        outputs = (":0",)
        side_packets = ("FACTOR",)

        def open(self, side_packets):
            self.factor = side_packets.get("FACTOR", 2)

        def process(self, timestamp, inputs):
            return {":0": inputs[":0"] * self.factor}

Stream keys are MediaPipe's `TAG:index`: "ALLOW" is ALLOW index 0, "TAG:1"
index 1, and untagged streams ("in", "b") are addressed by index as ":0",
":1"... in pbtxt order. Declarations may use wildcards: "TAG:*" (any index of
TAG), ":*" (any number of untagged streams), "*" (anything). A declared stream
need not be connected; `inputs` holds the connected ones, in MediaPipe's
order (tags sorted, untagged first, then by index).

Timestamps follow MediaPipe (ovms_notebook.framework.timestamps has the special
values). `process` returns {key: value} for packets at the input timestamp;
`Packet(value, timestamp)` stamps one explicitly (a generator's T+1, a
PRESTREAM packet); `Bound(timestamp)` only advances that output's bound
(MediaPipe's SetNextTimestampBound). A value of None means "no packet", so
None is never a packet value.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeVar, overload

from google.protobuf.message import Message

from ovms_notebook.framework.options import node_options
from ovms_notebook.framework.tags import is_tag, parse_tag_index

log = logging.getLogger(__name__)

__all__ = [
    "EMPTY",
    "STOP",
    "Bound",
    "Calculator",
    "Packet",
    "Registry",
    "default_registry",
    "register",
    "registered",
    "tag_key",
    "unregister",
]

HANDLERS: Final = ("DefaultInputStreamHandler", "ImmediateInputStreamHandler", "SyncSetInputStreamHandler")


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


EMPTY: Final = _Sentinel("EMPTY")
"""A bound-only update: added as a value it advances the input's bound; observers receive it for bounds."""

STOP: Final = _Sentinel("STOP")
"""Returned by `process` of a source node (no input streams) when it is done (MediaPipe's tool::StatusStop())."""


@dataclass(frozen=True)
class Packet:
    """A value stamped explicitly, for outputs at a timestamp other than the input's."""

    value: object
    timestamp: int


@dataclass(frozen=True)
class Bound:
    """Advance an output's next timestamp bound without a packet (MediaPipe's SetNextTimestampBound)."""

    timestamp: int


_M = TypeVar("_M", bound=Message)


class _Context(Protocol):
    def emit(self, tag: str, value: object, timestamp: int | None) -> None: ...
    def set_next_timestamp_bound(self, tag: str, timestamp: int) -> None: ...
    def close_output(self, tag: str) -> None: ...
    def input_timestamp(self, tag: str) -> int: ...
    def input_done(self, tag: str) -> bool: ...
    def set_side_packet(self, tag: str, value: object) -> None: ...


def tag_key(tag: str, index: int) -> str:
    """The key a stream is addressed by: "TAG" for index 0, "TAG:2", untagged ":0", ":1"..."""
    return f"{tag}:{index}" if not tag or index else tag


def canonical_key(text: str) -> str:
    """Any spelling of a `TAG:index` ("TAG:0", "", ":0") in its key form ("TAG", ":0")."""
    return tag_key(*parse_tag_index(text))


def declares(declared: Sequence[str], tag: str, index: int) -> bool:
    """True when a `inputs`/`outputs`/`side_packets` declaration admits the stream `tag`:`index`."""
    for item in declared:
        if item == "*":
            return True
        if item.endswith(":*"):
            if item[:-2] == tag:
                return True
        elif parse_tag_index(item) == (tag, index):
            return True
    return False


def check_declaration(declared: Sequence[str], what: str) -> None:
    """ValueError when a declaration is not a sequence of `TAG:index`, `TAG:*`, `:*` or `*` strings."""
    if isinstance(declared, str):
        raise ValueError(f"{what} must be a sequence of tags, got the string {declared!r} (write ({declared!r},))")
    for item in declared:
        if item == "*" or (item.endswith(":*") and (item == ":*" or is_tag(item[:-2]))):
            continue
        try:
            parse_tag_index(item)
        except ValueError as error:
            raise ValueError(f"{what}: {error}") from None


class Calculator:
    """Base class of Python calculators; subclass it in a notebook cell and `register` it.

    Class attributes declare the contract (MediaPipe's GetContract):
    `inputs`, `outputs`, `side_packets`, `output_side_packets` are `TAG:index` keys or wildcards;
    `optional_side_packets` marks those of `side_packets` a run may lack (MediaPipe's `Optional()`:
    a graph side packet no request gave and no node makes is then absent from `open`'s mapping);
    `input_messages` names the protobuf message an input takes, by key or tag
    (`{"NORM_RECT": "mediapipe.NormalizedRect"}`): a graph's `PROTO:` input that reaches only
    Python nodes reads its message type there, as it reads a native node's from MediaPipe;
    `input_stream_handler` is Default (run at t once every input has a
    packet at t or a bound past t), Immediate (run on every arrival, other
    inputs EMPTY) or SyncSet (with `sync_sets`, groups of input keys
    synchronised independently); a pbtxt `input_stream_handler` overrides it.
    `timestamp_offset` is MediaPipe's SetOffset: with 0 (the default, as in
    PassThrough, Gate, Concatenate) outputs' bounds follow the input
    timestamp, so a run that emits nothing still tells downstream nodes that
    t is settled; None leaves bounds to the packets and `Bound`s emitted (set
    it before `open` returns to decide per instance; a source node, which
    MediaPipe runs at a dummy timestamp 0, wants None). `process_timestamp_bounds`
    (MediaPipe's SetProcessTimestampBounds) also runs `process` for
    timestamps that are settled without any packet.

    The graph sets `node` (the node's CalculatorGraphConfig.Node proto),
    `node_name`, `input_tags` and `output_tags` (connected keys) before `open`.
    """

    inputs: ClassVar[Sequence[str]] = ()
    outputs: ClassVar[Sequence[str]] = ()
    side_packets: ClassVar[Sequence[str]] = ()
    optional_side_packets: ClassVar[Sequence[str]] = ()
    input_messages: ClassVar[Mapping[str, str]] = {}
    output_side_packets: ClassVar[Sequence[str]] = ()
    input_stream_handler: ClassVar[str] = "DefaultInputStreamHandler"
    sync_sets: ClassVar[Sequence[Sequence[str]]] = ()
    timestamp_offset: int | None = 0
    process_timestamp_bounds: ClassVar[bool] = False

    node: Any
    node_name: str
    input_tags: tuple[str, ...]
    output_tags: tuple[str, ...]
    _ovms_context: _Context | None = None

    def open(self, side_packets: Mapping[str, object]) -> None:
        """Called once per run before any `process`, with the connected input side packets by key."""

    def process(self, timestamp: int, inputs: Mapping[str, object | None]) -> Mapping[str, object] | object | None:
        """Handle the inputs at `timestamp` (None = no packet at this timestamp); return {key: value|Packet|Bound}.

        A source node (no input streams) is called repeatedly with timestamp 0
        while the graph is otherwise idle, until it returns STOP.
        """
        return None

    def close(self) -> Mapping[str, object] | None:
        """Called once when every input is done (or the run ends); may return {key: Packet|Bound} to emit last."""
        return None

    # Helpers for open/process/close (MediaPipe's CalculatorContext).

    def emit(self, tag: str, value: object, timestamp: int | None = None) -> None:
        """Send `value` on output `tag` at `timestamp` (default: the input timestamp); several per call are fine."""
        self._context().emit(tag, value, timestamp)

    def set_next_timestamp_bound(self, tag: str, timestamp: int) -> None:
        """Promise that output `tag` gets no packet below `timestamp` (MediaPipe's SetNextTimestampBound)."""
        self._context().set_next_timestamp_bound(tag, timestamp)

    def close_output(self, tag: str) -> None:
        """Close output `tag`: its consumers see it done (bound Timestamp::Done())."""
        self._context().close_output(tag)

    def set_side_packet(self, tag: str, value: object) -> None:
        """Set output side packet `tag` (declared in `output_side_packets`), in open() or process(): once per run.

        Nodes that take it as an input side packet open when it is set (their inputs wait until then); setting
        it again fails the run with MediaPipe's `Output side packet "name" was already set.`
        """
        self._context().set_side_packet(tag, value)

    def input_timestamp(self, tag: str) -> int:
        """The timestamp of input `tag`'s packet in this call; for EMPTY, the settled bound (bound - 1)."""
        return self._context().input_timestamp(tag)

    def input_done(self, tag: str) -> bool:
        """True when input `tag` has no packet now and will never get one (its stream is done)."""
        return self._context().input_done(tag)

    def options(self, message_type: type[_M]) -> _M:
        """The node's options of `message_type` (its `options { [ext] }` extension and/or `node_options` Any)."""
        return node_options(getattr(self, "node", None), message_type)

    def _context(self) -> _Context:
        if self._ovms_context is None:
            raise RuntimeError("stream helpers can only be used inside open(), process() or close() run by a graph")
        return self._ovms_context


_C = TypeVar("_C", bound=type[Calculator])


class Registry(Mapping[str, type[Calculator]]):
    """Calculator classes by calculator name; a graph looks its nodes' `calculator` up here when it is built."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Calculator]] = {}
        self._preparers: list[Callable[[Any], Any]] = []
        self._lock = threading.RLock()
        self._loader: Callable[[Registry], object] | None = None

    def set_loader(self, loader: Callable[[Registry], object]) -> None:
        """Fill the registry with `loader(self)` before its first use (lookup, listing or registration).

        The package top installs `ovms_notebook.calculators.register_builtin` this way on the default
        registry, so the engine never imports the calculator library and importing the package stays light.
        The loader runs once; an ImportError in it propagates to the first use (and the next one tries again).
        """
        with self._lock:
            self._loader = loader

    def _load(self) -> None:
        if self._loader is None:
            return
        with self._lock:
            loader, self._loader = self._loader, None
            if loader is None:
                return
            try:
                loader(self)
            except BaseException:
                self._loader = loader
                raise

    def add_preparer(self, preparer: Callable[[Any], Any]) -> None:
        """Register a rewrite of a graph config into the form the engine runs it in (see `prepare`)."""
        with self._lock:
            self._preparers.append(preparer)

    def prepare(self, config: Any) -> Any:
        """`config` as the engine runs it: each registered preparer applied in turn.

        A calculator library whose calculators OVMS wires differently than the Python engine can run them
        registers a preparer here (OVMS's session calculator hands its SESSION out as an output side
        packet; the Python engine gives it one, bound when the graph loads).
        """
        self._load()
        for preparer in list(self._preparers):
            config = preparer(config)
        return config

    @overload
    def register(self, name: _C) -> _C: ...
    @overload
    def register(self, name: str | None = None) -> Callable[[_C], _C]: ...

    def register(self, name: str | type[Calculator] | None = None) -> Any:
        """Decorator registering a Calculator subclass under `name` (default: the class name).

        Registering a name again (a re-run notebook cell) replaces the class,
        with a log line; graphs built earlier keep the class they were built with.
        """
        if isinstance(name, type):
            return self._add(name.__name__, name)

        def decorator(cls: _C) -> _C:
            return self._add(name or cls.__name__, cls)

        return decorator

    def _add(self, name: str, cls: _C) -> _C:
        self._load()  # built-ins first, so that a notebook's class of the same name replaces the built-in one
        if not (isinstance(cls, type) and issubclass(cls, Calculator)):
            raise TypeError(f"only Calculator subclasses can be registered, got {cls!r}")
        if not name:
            raise ValueError("a calculator name must not be empty")
        check_declaration(cls.inputs, f"{cls.__name__}.inputs")
        check_declaration(cls.outputs, f"{cls.__name__}.outputs")
        check_declaration(cls.side_packets, f"{cls.__name__}.side_packets")
        check_declaration(cls.optional_side_packets, f"{cls.__name__}.optional_side_packets")
        for sync_set in cls.sync_sets:
            check_declaration(sync_set, f"{cls.__name__}.sync_sets")
        if cls.input_stream_handler not in HANDLERS:
            raise ValueError(
                f"{cls.__name__}.input_stream_handler must be one of {', '.join(HANDLERS)}, "
                f"got {cls.input_stream_handler!r}"
            )
        with self._lock:
            previous = self._classes.get(name)
            self._classes[name] = cls
        if previous is not None and previous is not cls:
            log.info("calculator %r re-registered: %s replaces %s", name, cls.__qualname__, previous.__qualname__)
        return cls

    def registered(self, name: str) -> type[Calculator] | None:
        """The class registered under `name`, or None."""
        self._load()
        return self._classes.get(name)

    def unregister(self, name: str) -> None:
        """Forget `name`; unknown names are ignored."""
        self._load()
        with self._lock:
            self._classes.pop(name, None)

    def __getitem__(self, name: str) -> type[Calculator]:
        self._load()
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._classes))

    def __len__(self) -> int:
        self._load()
        return len(self._classes)


default_registry: Final = Registry()
"""The registry `register` writes to and a graph reads when given none."""


@overload
def register(name: _C) -> _C: ...
@overload
def register(name: str | None = None) -> Callable[[_C], _C]: ...


def register(name: str | type[Calculator] | None = None) -> Any:
    """Register a Calculator subclass in the default registry: `@register()`, `@register("Name")` or `@register`."""
    return default_registry.register(name)


def registered(name: str) -> type[Calculator] | None:
    """The class the default registry holds under `name`, or None."""
    return default_registry.registered(name)


def unregister(name: str) -> None:
    """Remove `name` from the default registry."""
    default_registry.unregister(name)
