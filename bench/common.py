"""Shared pieces of the benchmarks: a raw gRPC echo baseline, a stream driver, figures.

Every benchmark prints ratios of two things measured in the same process run,
side by side, so a noisy shared machine affects both alike.
"""

from __future__ import annotations

import queue
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
import numpy as np

import ovms_notebook  # noqa: F401  (sets gRPC's environment first)
from ovms_notebook.codec import encode_input
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS, SERVICE_NAME

REPO = Path(__file__).resolve().parents[1]
STREAM = METHODS["ModelStreamInfer"]


def make_request(model: str, inputs: dict[str, np.ndarray], timestamp: int | None = None) -> pb.ModelInferRequest:
    """A raw-contents request, as tritonclient builds them."""
    message = pb.ModelInferRequest(model_name=model)
    for name, value in inputs.items():
        tensor, raw = encode_input(name, value)
        message.inputs.append(tensor)
        message.raw_input_contents.append(raw)
    if timestamp is not None:
        message.parameters["OVMS_MP_TIMESTAMP"].int64_param = timestamp
    return message


def _echo(requests: Iterator[pb.ModelInferRequest], context: grpc.ServicerContext):
    """The transport floor: answer each request with a response of the same shape, nothing else."""
    for number, item in enumerate(requests):
        response = pb.ModelStreamInferResponse()
        out = response.infer_response
        out.model_name, out.model_version = item.model_name, "1"
        for tensor, raw in zip(item.inputs, item.raw_input_contents, strict=False):
            out.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
            out.raw_output_contents.append(raw)
        out.parameters["OVMS_MP_TIMESTAMP"].int64_param = number
        yield response


def start_echo_server(answer: Callable = _echo) -> tuple[grpc.Server, str]:
    """A plain grpcio bidi server of KServe messages on 127.0.0.1:0; `answer` is its stream handler
    (default: echo each request back). The transport floor the benchmarks compare against."""
    server = grpc.server(ThreadPoolExecutor(max_workers=16), options=[("grpc.so_reuseport", 0),
                                                                      ("grpc.max_receive_message_length", 1 << 30)])
    handler = grpc.stream_stream_rpc_method_handler(
        answer, request_deserializer=pb.ModelInferRequest.FromString,
        response_serializer=pb.ModelStreamInferResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                          {"ModelStreamInfer": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class StreamDriver:
    """One open ModelStreamInfer call fed from a queue (sentinel None ends it)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 30),
                                                               ("grpc.max_send_message_length", 1 << 30)])
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        call = self.channel.stream_stream(STREAM.path, request_serializer=STREAM.request.SerializeToString,
                                          response_deserializer=STREAM.response.FromString)
        self.responses = call(iter(self.outbox.get, None))

    def send(self, message: pb.ModelInferRequest) -> None:
        self.outbox.put(message)

    def receive(self) -> pb.ModelStreamInferResponse:
        return next(self.responses)

    def close(self) -> None:
        self.outbox.put(None)
        for _ in self.responses:
            pass
        self.channel.close()


def lockstep_frames_per_second(address: str, model: str, image_input: str, frames: list[np.ndarray],
                                done: frozenset[str]) -> float:
    """Frames/s of `model` over one stream, one frame in flight: a frame is done once responses on every
    output in `done` came back at its timestamp. Frame 0 (model loading) is not timed."""
    driver = StreamDriver(address)
    start = 0.0
    for timestamp, frame in enumerate(frames):
        if timestamp == 1:
            start = time.perf_counter()
        driver.send(make_request(model, {image_input: frame}))
        seen: set[str] = set()
        while not done <= seen:
            response = driver.receive()
            assert not response.error_message, response.error_message
            out = response.infer_response
            assert out.parameters["OVMS_MP_TIMESTAMP"].int64_param == timestamp
            seen.add(out.outputs[0].name)
    elapsed = time.perf_counter() - start
    driver.close()
    return (len(frames) - 1) / elapsed


def best_interleaved(run: Callable[[str], float], models: Iterable[str], rounds: int) -> dict[str, float]:
    """The best of `rounds` runs of `run(model)` per model, the models taking turns within each round."""
    models = list(models)
    rates: dict[str, list[float]] = {model: [] for model in models}
    for _ in range(rounds):
        for model in models:
            rates[model].append(run(model))
    return {model: max(values) for model, values in rates.items()}


def round_trips(address: str, message_for: Callable[[int], pb.ModelInferRequest], count: int) -> list[float]:
    """Seconds per send->receive, one request in flight at a time."""
    driver = StreamDriver(address)
    times = []
    for index in range(count):
        start = time.perf_counter()
        driver.send(message_for(index))
        response = driver.receive()
        times.append(time.perf_counter() - start)
        assert not response.error_message, response.error_message
    driver.close()
    return times


def pipelined(address: str, message_for: Callable[[int], pb.ModelInferRequest], count: int) -> float:
    """Responses per second with every request sent at once."""
    driver = StreamDriver(address)
    start = time.perf_counter()
    for index in range(count):
        driver.send(message_for(index))
    for _ in range(count):
        response = driver.receive()
        assert not response.error_message, response.error_message
    elapsed = time.perf_counter() - start
    driver.close()
    return count / elapsed


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def percentile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(name: str, ratio: float, goal: str, detail: str) -> None:
    """One figure line: name, ratio, goal, and the two measurements behind it."""
    print(f"{name}: {ratio:.3f}  (goal {goal})  {detail}", flush=True)
