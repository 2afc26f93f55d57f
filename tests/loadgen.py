"""Concurrent tritonclient streams that check every response: count, order, timestamps, values.

Shared by tests/test_load.py (bounded sizes, no timing asserts) and bench/load.py (8 x 10,000 requests
and 8 x 300 frames, with throughput and latency figures). Each stream keeps at most `window` requests
in flight, so latency is a request's own time through the server, not a queue of thousands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tritonclient.grpc as triton

#: (stream index, request index) -> the inputs of that request.
InputsFor = Callable[[int, int], list]
#: (stream index, request index, tritonclient InferResult) -> "" when the output is right, else what is wrong.
CheckOutput = Callable[[int, int, object], str]


@dataclass
class StreamOutcome:
    """What one stream saw: response timestamps in arrival order, problems, per-request latency (s)."""

    timestamps: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


@dataclass
class LoadResult:
    """Every stream's outcome plus the wall time from the first send to the last stream's end."""

    streams: list[StreamOutcome]
    seconds: float
    requests: int

    @property
    def throughput(self) -> float:
        """Responses per second over all streams."""
        return sum(len(s.timestamps) for s in self.streams) / self.seconds

    def latency_ms(self, q: float) -> float:
        """The q-quantile (0..1) of every request's send-to-response time, in ms."""
        values = sorted(v for s in self.streams for v in s.latencies)
        return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")

    def problems(self) -> list[str]:
        """Everything that was not exactly one in-order response per request, timestamps 0..N-1, right value."""
        found = []
        for index, outcome in enumerate(self.streams):
            if outcome.timestamps != list(range(self.requests)):
                missing = sorted(set(range(self.requests)) - set(outcome.timestamps))
                found.append(f"stream {index}: {len(outcome.timestamps)} responses for {self.requests} requests, "
                             f"in order: {outcome.timestamps == sorted(outcome.timestamps)}, missing {missing[:5]}")
            found.extend(f"stream {index}: {problem}" for problem in outcome.problems[:5])
        return found


def run_streams(address: str, graph: str, inputs_for: InputsFor, check: CheckOutput, *, streams: int,
                requests: int, window: int = 32) -> LoadResult:
    """Open `streams` tritonclient streams on `graph` at once, send `requests` automatic-timestamp requests on
    each (at most `window` unanswered), half-close, and return what every stream saw."""
    outcomes = [StreamOutcome() for _ in range(streams)]
    ready = threading.Barrier(streams + 1)
    errors: list[BaseException] = []

    def drive(index: int) -> None:
        outcome = outcomes[index]
        slots = threading.Semaphore(window)
        sent: list[float] = [0.0] * requests
        client = triton.InferenceServerClient(address)

        def on_response(result: object, error: object) -> None:
            now = time.perf_counter()
            slots.release()
            if error is not None:
                outcome.problems.append(f"error: {error}")
                return
            stamp = result.get_response().parameters["OVMS_MP_TIMESTAMP"].int64_param  # type: ignore[attr-defined]
            outcome.timestamps.append(stamp)
            if 0 <= stamp < requests:
                outcome.latencies.append(now - sent[stamp])
                problem = check(index, stamp, result)
                if problem:
                    outcome.problems.append(f"timestamp {stamp}: {problem}")

        try:
            client.start_stream(on_response)
            ready.wait()
            for number in range(requests):
                slots.acquire()
                sent[number] = time.perf_counter()
                client.async_stream_infer(graph, inputs_for(index, number))
            client.stop_stream()  # half-close and wait for the stream's end
        except BaseException as error:
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=drive, args=(i,), name=f"load-{i}") for i in range(streams)]
    for thread in threads:
        thread.start()
    ready.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return LoadResult(outcomes, seconds, requests)


def passthrough_inputs(stream: int, number: int) -> list:
    """FP32[1] holding stream * 100,000 + number (exact in float32 for these sizes)."""
    tensor = triton.InferInput("in", [1], "FP32")
    tensor.set_data_from_numpy(np.array([stream * 100_000 + number], dtype=np.float32))
    return [tensor]


def passthrough_check(stream: int, number: int, result: object) -> str:
    """The echoed value must be the one sent at that timestamp on that stream."""
    value = result.as_numpy("out")  # type: ignore[attr-defined]
    expected = stream * 100_000 + number
    return "" if value is not None and value.tolist() == [expected] else f"expected [{expected}], got {value}"


def image_inputs(frames: list[np.ndarray], name: str = "image") -> InputsFor:
    """Each stream sends frames[number] (UINT8 HWC) on input `name`."""

    def inputs_for(stream: int, number: int) -> list:
        frame = frames[number % len(frames)]
        tensor = triton.InferInput(name, list(frame.shape), "UINT8")
        tensor.set_data_from_numpy(frame)
        return [tensor]

    return inputs_for


def has_output(name: str) -> CheckOutput:
    """The response must carry output `name` (any content)."""

    def check(stream: int, number: int, result: object) -> str:
        outputs = [o.name for o in result.get_response().outputs]  # type: ignore[attr-defined]
        return "" if outputs == [name] else f"expected output [{name!r}], got {outputs}"

    return check
