"""Helpers for the flow-control tests: a CLI server in its own process, its RSS, and a raw stream whose
requests and reading the test drives by hand (a client that stops reading, then reads)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np

from ovms_notebook.codec import encode_input
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS

STREAM = METHODS["ModelStreamInfer"]
FRAME_SHAPE = (480, 640, 3)  # a VGA camera frame, 900 KiB


def frame_request(graph: str, number: int, name: str = "in") -> pb.ModelInferRequest:
    """A UINT8 640x480x3 frame whose first byte is `number % 256` and next two bytes `number` (big endian)."""
    frame = np.zeros(FRAME_SHAPE, np.uint8)
    frame.flat[0], frame.flat[1], frame.flat[2] = number % 256, number >> 8 & 255, number & 255
    message = pb.ModelInferRequest(model_name=graph)
    tensor, raw = encode_input(name, frame)
    message.inputs.append(tensor)
    message.raw_input_contents.append(raw)
    return message


def frame_number(response: pb.ModelInferResponse) -> int:
    """The `number` a `frame_request` frame carried, read back from an echoed output."""
    raw = response.raw_output_contents[0]
    return raw[1] << 8 | raw[2]


class ManualStream:
    """A raw ModelStreamInfer call: `send()` queues requests (counted as gRPC takes them), `read()` takes
    responses only when the test asks, so until then the client reads nothing."""

    def __init__(self, address: str, *, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        )
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.taken = 0  # requests gRPC took from the iterator (it takes the next one once it sent the last)
        stub = self.channel.stream_stream(
            STREAM.path,
            request_serializer=STREAM.request.SerializeToString,
            response_deserializer=STREAM.response.FromString,
        )
        self.call = stub(self._requests(), metadata=metadata)

    def _requests(self) -> Iterator[pb.ModelInferRequest]:
        while (item := self.outbox.get()) is not None:
            yield item
            self.taken += 1

    def send(self, message: pb.ModelInferRequest) -> None:
        self.outbox.put(message)

    def half_close(self) -> None:
        self.outbox.put(None)

    def read(self, count: int | None = None) -> list[pb.ModelStreamInferResponse]:
        """The next `count` responses (None: every one until the end; raises grpc.RpcError at a failed end)."""
        got = []
        for response in self.call:
            got.append(response)
            if count is not None and len(got) == count:
                break
        return got

    def close(self) -> None:
        self.half_close()
        self.call.cancel()
        self.channel.close()


def wait_until_still(read: object, *, settle: float = 2.0, deadline: float = 120.0) -> object:
    """Poll `read()` until its value stopped changing for `settle` seconds (or `deadline` passed)."""
    end = time.monotonic() + deadline
    last, since = read(), time.monotonic()  # type: ignore[operator]
    while time.monotonic() < end:
        time.sleep(0.1)
        now = read()  # type: ignore[operator]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            break
    return last


class CliServer:
    """`ovms-notebook serve CONFIG --port 0 ...` in a child process; `address` once it says where it listens."""

    def __init__(self, config: Path, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ovms_notebook.cli", "serve", str(config), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=config.parent,
        )
        self.lines: list[str] = []
        self.address = ""
        end = time.monotonic() + 60
        while not self.address and time.monotonic() < end:
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            self.lines.append(line)
            if line.startswith("serving on "):
                self.address = line.split()[2]
        if not self.address:
            self.stop()
            raise RuntimeError("the CLI did not start:\n" + "".join(self.lines))
        self._pump = threading.Thread(target=self._read_output, daemon=True)
        self._pump.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    @property
    def rss_bytes(self) -> int:
        with open(f"/proc/{self.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
