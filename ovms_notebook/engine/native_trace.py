"""MediaPipe's own tracer, switched on in a graph config and read back as `TraceEvent`s.

What the 0.10.21 wheel does (probed and measured for this module):
`profiler_config { trace_enabled: true trace_log_path: "<dir>/" }` makes the
graph write `GraphProfile` protos to `<dir>/<n>.binarypb`; every
`trace_log_interval_usec` (500 ms by default) a task on the graph's default
executor appends the events since the previous write, and `close()` writes
the rest. That task holds one executor thread for the whole run: a graph
whose executor has one thread (one node, or one CPU) never runs a node, so
`with_tracing` adds a thread. With the defaults MediaPipe cycles through 2
files of 10 writes each, so a stream longer than 10 s would lose its
beginning; `with_tracing` asks for one file per write instead, and
`TraceFiles` reads the finished ones while the graph runs and deletes them,
so nothing is lost and the directory stays small.

Event times are µs after `GraphTrace.base_time` (Unix µs) and timestamps are
relative to `base_timestamp`; stream and node ids index that trace's
`stream_name` and the file's `calculator_name` (MediaPipe's canonical node
names of the expanded graph: `Calculator_2` for repeated unnamed nodes,
`lowercasename__...__Inner` inside a subgraph). A Process() that spans a
write has its start in one write and its finish in the next: they are joined.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.framework.trace import INPUT, PROCESS, Hop, Trace, TraceEvent, build_trace, order_nodes

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_USEC = 500_000
#: Events kept per native graph; beyond it the oldest go (a long video stream would otherwise grow without end).
EVENT_LIMIT = 200_000
_FILE = re.compile(r"^(\d+)\.binarypb$")
_MANY_FILES = 2**31 - 1


def with_tracing(config: GraphConfig, directory: str | Path, *,
                 interval_usec: int = DEFAULT_INTERVAL_USEC) -> GraphConfig:
    """A copy of `config` (a CalculatorGraphConfig) whose run writes its trace into `directory`.

    Other `profiler_config` settings of the graph are kept; the ones that say where and how often the trace
    is written are ours. `interval_usec` is how often the graph appends what it recorded (-1: only when it
    closes). The periodic writer occupies one thread of the graph's default executor for the whole run, so
    the executor gets one thread more than MediaPipe would give it (without it a one-node graph would never
    run a node); where that cannot be done (an executor that is not a thread pool) writes happen at close.
    """
    from mediapipe.framework import calculator_pb2

    copy = calculator_pb2.CalculatorGraphConfig()
    copy.CopyFrom(config)
    profiler = copy.profiler_config
    profiler.trace_enabled = True
    profiler.enable_profiler = True
    profiler.trace_log_disabled = False
    profiler.trace_log_path = os.path.join(str(directory), "")
    profiler.trace_log_interval_count = 1  # every write starts a file of its own, complete once the next exists
    profiler.trace_log_count = _MANY_FILES
    periodic = interval_usec >= 0 and _spare_thread(copy)
    profiler.trace_log_interval_usec = interval_usec if periodic else -1
    return copy


def _spare_thread(config: GraphConfig) -> bool:
    """Give the default executor one thread more than MediaPipe would; False when it is no thread pool."""
    from mediapipe.framework import thread_pool_executor_pb2

    extension = thread_pool_executor_pb2.ThreadPoolExecutorOptions.ext
    default = next((e for e in config.executor if not e.name), None)
    if default is None:
        default = config.executor.add()
    elif default.type not in ("", "ThreadPoolExecutor"):
        return False
    options = default.options.Extensions[extension]
    threads = options.num_threads
    if threads <= 0:  # MediaPipe's choice (CalculatorGraph::InitializeDefaultExecutor)
        nodes = max(_expanded_node_count(config), len(config.packet_generator), 1)
        threads = min(os.cpu_count() or 1, nodes)
    options.num_threads = threads + 1
    return True


def _expanded_node_count(config: GraphConfig) -> int:
    """How many nodes the graph has once its subgraphs are expanded (what MediaPipe sizes its executor by)."""
    try:
        from mediapipe.framework import calculator_pb2
        from mediapipe.python._framework_bindings import validated_graph_config

        validated = validated_graph_config.ValidatedGraphConfig()
        validated.initialize(graph_config=config)
        return len(calculator_pb2.CalculatorGraphConfig.FromString(validated.binary_config).node)
    except Exception:  # the graph will say what is wrong with it when it is built
        return len(config.node)


def canonical_names(config: GraphConfig) -> list[str]:
    """MediaPipe's canonical names (`tool::CanonicalNodeName`) of a config's top-level nodes, in pbtxt order."""
    from ovms_notebook.engine.python.validate import canonical_node_name

    return [canonical_node_name(config, i) for i in range(len(config.node))]


def display_name(canonical: str, top_level: Mapping[str, str]) -> str:
    """The name a trace shows for a node of the expanded graph.

    `top_level` maps the canonical names of the pbtxt's nodes to the names to show; a node a subgraph
    expanded into (`detector__facedetection__ImageToTensorCalculator`) becomes `<subgraph node>/<inner>`.
    """
    if canonical in top_level:
        return top_level[canonical]
    for name, shown in top_level.items():
        prefix = name.lower() + "__"
        if canonical.startswith(prefix):
            return f"{shown}/{canonical.rsplit('__', 1)[-1]}"
    return canonical


class TraceFiles:
    """The trace files of one graph run in a directory this object owns, read as they are finished.

    `read()` parses every finished file (all of them with `final=True`, after the graph closed), deletes
    it and returns every event so far; `remove()` deletes the directory. `top_level` maps the
    graph's canonical top-level node names to the names to show (see `display_name`).
    """

    def __init__(self, directory: str | Path, top_level: Mapping[str, str], *, owned: bool = True,
                 limit: int = EVENT_LIMIT) -> None:
        self.directory = Path(directory)
        self.top_level = dict(top_level)
        self.owned = owned
        self.limit = limit
        self.names: list[str] = []  # display names, in MediaPipe's node id order
        self._events: list[TraceEvent] = []
        self._open: dict[tuple[str, int | None], int] = {}  # Process() calls whose finish is still to come
        self._lock = threading.Lock()
        self._done = False
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.directory), True) if owned else None

    def read(self, final: bool = False) -> list[TraceEvent]:
        """Events (absolute Unix µs) written so far; `final` (after the graph closed) takes them all.

        A file is final once a later one exists (each write makes a new file): those are parsed once and
        deleted. The newest may still be being written, so while the graph runs it is parsed afresh on every
        read and only added to what is returned.
        """
        with self._lock:
            if self._done:
                return list(self._events)
            files = self._files()
            for _, path in files if final else files[:-1]:
                self._parse(path, self._events, self._open)
                if self.owned:
                    path.unlink(missing_ok=True)
            self._trim()
            if final:
                self._done = True
                return list(self._events)
            events = list(self._events)
            if files:
                self._parse(files[-1][1], events, dict(self._open), quiet=True)
            return events

    def remove(self) -> None:
        """Delete the directory (if this object owns it). MediaPipe writes once more when the graph is
        destroyed, so call this after that."""
        if self._remove is not None:
            self._remove()

    def _trim(self) -> None:
        if len(self._events) > self.limit:
            cut = len(self._events) - self.limit
            del self._events[:cut]
            self._open = {key: index - cut for key, index in self._open.items() if index >= cut}

    def _files(self) -> list[tuple[int, Path]]:
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = [(int(m.group(1)), self.directory / name) for name in entries if (m := _FILE.match(name))]
        return sorted(found)

    def _parse(self, path: Path, events: list[TraceEvent], pending: dict[tuple[str, int | None], int], *,
               quiet: bool = False) -> None:
        from mediapipe.framework import calculator_profile_pb2

        profile = calculator_profile_pb2.GraphProfile()
        try:
            profile.ParseFromString(path.read_bytes())
        except Exception:  # a torn file is reported (unless it may still be being written), never fatal
            if not quiet:
                log.warning("could not parse MediaPipe trace file %s", path, exc_info=True)
            return
        if not self.names and profile.config.node:
            self.names = self._display([node.name for node in profile.config.node])
        for graph_trace in profile.graph_trace:
            if graph_trace.calculator_name:
                self.names = self._display(list(graph_trace.calculator_name))
            for entry in graph_trace.calculator_trace:
                _add(self._convert(entry, graph_trace), events, pending)

    def _display(self, canonical: list[str]) -> list[str]:
        shown = [display_name(name, self.top_level) for name in canonical]
        if len(set(shown)) == len(shown):
            return shown
        # Two inner nodes of nested subgraphs share a name: show their whole path instead.
        return [s if shown.count(s) == 1 else s.split("/", 1)[0] + "/" + c.split("__", 1)[-1].replace("__", "/")
                for s, c in zip(shown, canonical, strict=True)]

    def _convert(self, entry: object, graph_trace: object) -> TraceEvent:
        from mediapipe.framework.calculator_profile_pb2 import GraphTrace

        base_time, base_timestamp = graph_trace.base_time, graph_trace.base_timestamp  # type: ignore[attr-defined]
        streams = graph_trace.stream_name  # type: ignore[attr-defined]

        def time(message: object, name: str) -> int | None:
            return base_time + getattr(message, name) if message.HasField(name) else None  # type: ignore[attr-defined]

        def stream(stream_id: int) -> str:
            return streams[stream_id] if 0 <= stream_id < len(streams) else f"stream {stream_id}"

        node_id = entry.node_id  # type: ignore[attr-defined]
        if node_id < 0:
            node, kind = INPUT, "input"
        else:
            node = self.names[node_id] if node_id < len(self.names) else f"node {node_id}"
            kind = "native"
        has_timestamp = entry.HasField("input_timestamp")  # type: ignore[attr-defined]
        return TraceEvent(
            node=node,
            kind=kind,  # type: ignore[arg-type]
            event_type=GraphTrace.EventType.Name(entry.event_type),  # type: ignore[attr-defined]
            input_timestamp=base_timestamp + entry.input_timestamp if has_timestamp else None,  # type: ignore[attr-defined]
            start_us=time(entry, "start_time"),
            finish_us=time(entry, "finish_time"),
            thread=f"mediapipe-{entry.thread_id}",  # type: ignore[attr-defined]
            inputs=tuple(Hop(stream(s.stream_id), base_timestamp + s.packet_timestamp, time(s, "start_time"),
                             time(s, "finish_time")) for s in entry.input_trace),  # type: ignore[attr-defined]
            outputs=tuple((stream(s.stream_id), base_timestamp + s.packet_timestamp)
                          for s in entry.output_trace),  # type: ignore[attr-defined]
        )


def _add(event: TraceEvent, events: list[TraceEvent], pending: dict[tuple[str, int | None], int]) -> None:
    """Append `event`, joining a Process() whose start and finish were written in two writes."""
    if event.event_type != PROCESS or event.kind == "input":
        events.append(event)
        return
    key = (event.node, event.input_timestamp)
    if event.finish_us is None:  # its finish comes in a later write
        pending[key] = len(events)
        events.append(event)
    elif event.start_us is None and key in pending:
        index = pending.pop(key)
        started = events[index]
        events[index] = TraceEvent(
            started.node, started.kind, PROCESS, started.input_timestamp, started.start_us, event.finish_us,
            started.thread, started.inputs or event.inputs, started.outputs + event.outputs,
        )
    else:
        events.append(event)


def read_trace(
    directory: str | Path,
    *,
    config: GraphConfig | None = None,
    origin_us: int | None = None,
) -> Trace:
    """The trace MediaPipe wrote into `directory` (the `trace_log_path` prefix `<dir>/`), files left in place.

    `config` (the graph's CalculatorGraphConfig as written in pbtxt) orders the nodes and names the ones a
    subgraph expanded into after their subgraph node; `origin_us` (Unix µs) is time 0, by default the
    first event's time.
    """
    names = canonical_names(config) if config is not None else []
    files = TraceFiles(directory, {name: name for name in names}, owned=False)
    events = files.read(final=True)
    origin = origin_us if origin_us is not None else min((e.time_us for e in events), default=0)
    return build_trace(events, origin, order_nodes(names, files.names), dict.fromkeys(files.names, "native"))


def native_trace(files: TraceFiles, top_level: Sequence[str], origin_us: int, *, final: bool = False) -> Trace:
    """A Trace of one native graph's files so far (`top_level`: its pbtxt node names, in order)."""
    events = files.read(final=final)
    return build_trace(events, origin_us, order_nodes(top_level, files.names), dict.fromkeys(files.names, "native"))
