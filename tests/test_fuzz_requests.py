"""Hypothesis-generated ModelInferRequests (valid protobuf, hostile contents) against a live server.

Requests are built with tritonclient's proto, a superset of ours (its InferParameter also has
`double_param` and `uint64_param`), and sent as bytes. Contents aim at every check: model names and
versions, parameters of every kind (OVMS_MP_TIMESTAMP included, special values too), inputs with every
KServe datatype and some made up, shapes with zero, negative, huge and int64-extreme dims, raw buffers of
the right length, almost the right length or random, typed contents in any field.

The oracle: every unary call ends within its deadline with OK or an intended code (spec §2.2: OVMS's
mapped codes, UNKNOWN only as OVMS's literal "Unknown error"); every stream ends OK (or with a graph's
own execution error) after answering a valid request sent after the hostile ones; no in-band text is a
wrapped unforeseen exception; the server logs no traceback. `OVMS_FUZZ_EXAMPLES` sets the number of
examples per test (default 300 unary, a third of that as streams); `bench/fuzz_requests.py N` runs N.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2 as triton_pb

import ovms_notebook
from tests.test_malformed_corpus import GRAPHS, VALID, check_valid, valid_request, write_repository
from tests.wire import Conversation, infer

EXAMPLES = int(os.environ.get("OVMS_FUZZ_EXAMPLES", "300"))
CALL_TIMEOUT = 10.0
MAX_RAW = 4096

DATATYPES = {"BOOL": 1, "UINT8": 1, "UINT16": 2, "UINT32": 4, "UINT64": 8, "INT8": 1, "INT16": 2, "INT32": 4,
             "INT64": 8, "FP16": 2, "FP32": 4, "FP64": 8, "BYTES": 1}
TARGETS = [*GRAPHS, "add"]
INPUT_NAMES = ["in", "in2", "a", "b", "input", "input1", "input2", ""]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SPECIAL_TIMESTAMPS = [INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, INT64_MIN + 3, INT64_MAX - 3, INT64_MAX - 2,
                      INT64_MAX - 1, INT64_MAX]
#: gRPC codes a hostile request may get (spec §2.2); UNKNOWN only with OVMS's literal "Unknown error".
INTENDED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN}
USER_HANDLER_FAILED = "Error occurred during node"
#: In-band or final texts that would mean an exception nobody foresaw reached the client.
UNFORESEEN = ("Exception:", "Exception calling application", "Traceback", "Failed to get packet")

int64s = st.integers(INT64_MIN, INT64_MAX)


def mostly(common: st.SearchStrategy, rare: st.SearchStrategy, times: int = 4) -> st.SearchStrategy:
    """`common` about `times` draws in `times + 1`, else `rare` (one_of weighs its branches alike)."""
    return st.integers(0, times).flatmap(lambda i: common if i else rare)
dims = st.one_of(st.integers(0, 4), st.integers(-3, -1), st.sampled_from([2**31, 2**32, 2**62, INT64_MAX, INT64_MIN]),
                 int64s)


@st.composite
def parameters(draw: st.DrawFn) -> dict[str, tuple[str, object] | None]:
    keys = draw(st.lists(mostly(st.just("OVMS_MP_TIMESTAMP"), st.one_of(
        st.sampled_from(["py", "val", "priority"]), st.text(max_size=8)), 3), min_size=1, max_size=3, unique=True))
    int64 = st.tuples(st.just("int64_param"), st.one_of(st.integers(-5, 50), st.sampled_from(SPECIAL_TIMESTAMPS),
                                                        int64s))
    kinds = mostly(int64, st.one_of(
        st.tuples(st.just("bool_param"), st.booleans()),
        st.tuples(st.just("string_param"), st.text(max_size=8)),
        st.tuples(st.just("double_param"), st.floats(allow_nan=True)),
        st.tuples(st.just("uint64_param"), st.integers(0, 2**64 - 1)),
        st.none(),
    ), 2)
    return {key: draw(kinds) for key in keys}


TYPED = {
    "bool_contents": st.lists(st.booleans(), max_size=6),
    "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6),
    "int64_contents": st.lists(int64s, max_size=6),
    "uint_contents": st.lists(st.integers(0, 2**32 - 1), max_size=6),
    "uint64_contents": st.lists(st.integers(0, 2**64 - 1), max_size=6),
    "fp32_contents": st.lists(st.floats(width=32), max_size=6),
    "fp64_contents": st.lists(st.floats(), max_size=6),
    "bytes_contents": st.lists(st.binary(max_size=8), max_size=6),
}


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    raw: bytes | None
    typed: dict[str, list] = field(default_factory=dict)


@st.composite
def tensors(draw: st.DrawFn, names: list[str]) -> Tensor:
    name = draw(mostly(st.sampled_from(names), st.text(max_size=6)))
    datatype = draw(mostly(st.sampled_from(list(DATATYPES)), st.sampled_from(["", "FP8", "my_string"])))
    shape = draw(st.one_of(st.lists(st.integers(1, 4), max_size=4), st.lists(dims, max_size=5)))
    count = 1
    for d in shape:
        count *= d
    size = DATATYPES.get(datatype, 0) * count
    raw_kind = draw(st.sampled_from(["exact", "exact", "exact", "off-by-one", "random", "typed", "typed", "both"]))
    raw: bytes | None = None
    if raw_kind in ("exact", "off-by-one", "both") and 0 <= size <= MAX_RAW:
        raw = draw(st.binary(min_size=size, max_size=size))
        if datatype == "BYTES" and count > 0 and draw(st.booleans()):
            raw = b"".join(len(item).to_bytes(4, "little") + item
                           for item in draw(st.lists(st.binary(max_size=4), min_size=count, max_size=count)))
        if raw_kind == "off-by-one":
            raw = raw[:-1] if raw and draw(st.booleans()) else raw + b"\0"
    elif raw_kind == "random":
        raw = draw(st.binary(max_size=64))
    typed = {}
    if raw_kind in ("typed", "both"):
        fields = draw(st.lists(st.sampled_from(list(TYPED)), max_size=2, unique=True))
        typed = {f: draw(TYPED[f]) for f in fields}
    return Tensor(name, datatype, shape, raw, typed)


@st.composite
def requests(draw: st.DrawFn, model: str | None = None) -> bytes:
    """One hostile ModelInferRequest as bytes on the wire."""
    message = triton_pb.ModelInferRequest(
        model_name=model if model is not None else draw(mostly(st.sampled_from(TARGETS), st.text(max_size=6), 8)),
        model_version=draw(st.sampled_from(["", "", "", "", "", "", "1", "0", "2", "abc", "-1",
                                            "99999999999999999999"])),
        id=draw(st.text(max_size=4)),
    )
    for key, choice in draw(st.one_of(st.just({}), st.just({}), parameters())).items():
        if choice is None:
            message.parameters[key].Clear()
        else:
            setattr(message.parameters[key], *choice)
    names = list(VALID[message.model_name].inputs(1.0)) if message.model_name in VALID else INPUT_NAMES
    items = draw(st.lists(tensors(names), max_size=3))
    for item in items:
        tensor = message.inputs.add(name=item.name, datatype=item.datatype, shape=item.shape)
        for name, values in item.typed.items():
            getattr(tensor.contents, name).extend(values)
    raws = [item.raw for item in items if item.raw is not None]
    layout = draw(st.sampled_from(["as-built"] * 6 + ["drop-one", "extra"]))
    if layout == "drop-one" and raws:
        raws = raws[1:]
    elif layout == "extra":
        raws.append(draw(st.binary(max_size=16)))
    message.raw_input_contents.extend(raws)
    return message.SerializeToString()


# -- running one example ---------------------------------------------------------------------------------------

class TracebackCatcher(logging.Handler):
    """Every log record of the package that carries an exception (a server-side traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # A Python node's handler that raises is logged with its traceback on purpose (OVMS logs it too).
        if record.exc_info and not record.getMessage().startswith(USER_HANDLER_FAILED):
            self.records.append(record)


@dataclass
class Tally:
    """Outcomes of a fuzz run: gRPC codes of unary calls and stream ends, in-band error kinds, failures."""

    unary: Counter = field(default_factory=Counter)
    unary_kinds: Counter = field(default_factory=Counter)
    unary_seconds: float = 0.0  # time inside the unary calls (not generating them)
    stream: Counter = field(default_factory=Counter)
    in_band: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def unary_once(channel: grpc.Channel, message: bytes, tally: Tally) -> None:
    start = time.perf_counter()
    try:
        infer(channel, message, timeout=CALL_TIMEOUT)
        code, details = grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
    tally.unary_seconds += time.perf_counter() - start
    tally.unary[code.name] += 1
    tally.unary_kinds[details.split(" - ")[0]] += 1
    if code not in INTENDED or (code == grpc.StatusCode.UNKNOWN and details != "Unknown error") \
            or any(word in details for word in UNFORESEEN):
        tally.failures.append(f"unary {code.name}: {details!r} for {message!r}")


def stream_once(channel: grpc.Channel, graph: str, messages: list[bytes], tally: Tally) -> None:
    """A valid opener, the hostile requests, then a valid request that must still be answered."""
    talk = Conversation(channel, timeout=CALL_TIMEOUT * (len(messages) + 2))
    talk.send(valid_request(graph, 1.0, None))
    for message in messages:
        talk.send(message)
    talk.send(valid_request(graph, 2.0, None).SerializeToString())
    ending = talk.end()
    tally.stream[ending.code.name if ending.code else "NONE"] += 1
    outputs = [r.infer_response for r in ending.responses if not r.error_message]
    errors = [r.error_message for r in ending.responses if r.error_message]
    tally.in_band.update(text.split(" - ")[0].split(";")[0] for text in errors)
    bad = [text for text in errors if any(word in text for word in UNFORESEEN)]
    graph_error = ending.code == grpc.StatusCode.INVALID_ARGUMENT and ending.details.startswith(
        "Mediapipe execution failed. MP status - ")
    if bad or not (ending.code == grpc.StatusCode.OK or graph_error):
        tally.failures.append(f"stream {ending.code}: {ending.details!r}, {bad} for {messages!r}")
    elif ending.code == grpc.StatusCode.OK:
        # Both valid requests are answered: the opener by its output; the last one by its output or, after a
        # hostile stamp near Max(), by an in-band timestamp error.
        last_rejected = bool(errors) and errors[-1].startswith("Malformed packet timestamp - ")
        if not answered(graph, outputs, 1.0) or not (answered(graph, outputs, 2.0) or last_rejected):
            tally.failures.append(f"stream lost a valid answer: {ending.responses!r} for {messages!r}")


def answered(graph: str, outputs: list, value: float) -> bool:
    """True when one of `outputs` is the valid request's answer for `value`."""
    for response in outputs:
        try:
            check_valid(graph, response, value, None)
        except (AssertionError, ValueError):  # another answer (a pyovms tensor echoes any datatype, unchecked)
            continue
        return True
    return False


@dataclass
class FuzzServer:
    server: ovms_notebook.Server
    channel: grpc.Channel
    catcher: TracebackCatcher


@contextlib.contextmanager
def fuzz_server(root: Path) -> Iterator[FuzzServer]:
    """A server on the corpus repository with a traceback catcher on the package's logger."""
    catcher = TracebackCatcher()
    logging.getLogger("ovms_notebook").addHandler(catcher)
    server = ovms_notebook.serve(write_repository(root))
    channel = grpc.insecure_channel(server.address)
    try:
        yield FuzzServer(server, channel, catcher)
    finally:
        channel.close()
        server.stop()
        logging.getLogger("ovms_notebook").removeHandler(catcher)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory) -> Iterator[FuzzServer]:
    with fuzz_server(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))
STREAM_GRAPHS = [name for name in GRAPHS if name not in ("split", "py_raises")]


def test_hostile_unary_requests_get_intended_errors_only(fuzz: FuzzServer):
    tally = Tally()

    @FUZZ_SETTINGS
    @given(message=requests())
    def run(message: bytes) -> None:
        unary_once(fuzz.channel, message, tally)

    run()
    assert tally.failures == []
    assert [r.getMessage() for r in fuzz.catcher.records] == []
    assert sum(tally.unary.values()) >= EXAMPLES
    assert len(tally.unary) >= 3  # the examples reach several outcomes, not one early rejection
    check_valid("ov", infer(fuzz.channel, valid_request("ov", 4.0, None)), 4.0, 0)


def test_hostile_requests_on_streams_lose_no_valid_packet(fuzz: FuzzServer):
    tally = Tally()

    @settings(FUZZ_SETTINGS, max_examples=max(EXAMPLES // 3, 10))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        graph = data.draw(st.sampled_from(STREAM_GRAPHS))
        messages = data.draw(st.lists(mostly(requests(graph), requests()), min_size=1, max_size=4))
        stream_once(fuzz.channel, graph, messages, tally)

    run()
    assert tally.failures == []
    assert [r.getMessage() for r in fuzz.catcher.records] == []
    assert tally.stream["OK"] >= 1 and len(tally.in_band) >= 3


def test_the_fuzzer_reaches_the_validation_it_aims_at():
    """A sample of requests decodes to every datatype, raw and typed contents, and special timestamps."""
    seen: Counter = Counter()

    @settings(max_examples=800, deadline=None, database=None, derandomize=True)
    @given(message=requests())
    def run(message: bytes) -> None:
        parsed = triton_pb.ModelInferRequest.FromString(message)
        seen.update(tensor.datatype for tensor in parsed.inputs)
        seen["raw"] += bool(parsed.raw_input_contents)
        seen["typed"] += any(t.HasField("contents") for t in parsed.inputs)
        seen["timestamp"] += "OVMS_MP_TIMESTAMP" in parsed.parameters
        seen["negative dim"] += any(d < 0 for t in parsed.inputs for d in t.shape)

    run()
    assert {name: seen[name] > 0 for name in ("FP32", "UINT8", "BYTES", "raw", "typed", "timestamp",
                                              "negative dim")} == dict.fromkeys(
        ("FP32", "UINT8", "BYTES", "raw", "typed", "timestamp", "negative dim"), True)
    assert np.count_nonzero([seen[d] for d in DATATYPES]) >= 10
