"""Clients that vanish mid-stream, and a census of what a server leaves behind.

Shared by tests/test_faults.py (bounded counts) and bench/faults.py (the 1,000-cycle loop). A client
vanishes in one of three ways while requests are still in flight: it cancels its call, closes its
channel, or is a separate process (tritonclient) killed with SIGKILL, so the server only sees the
connection drop.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from ovms_notebook.codec import encode_input
from ovms_notebook.engine.native import graph_instances
from ovms_notebook.proto import grpc_predict_v2_pb2 as pb
from ovms_notebook.proto.service import METHODS

KINDS = ("cancel", "close", "kill")
POOL_PREFIX = "ovms-grpc"  # the server's thread pool: sized by max_workers, kept between calls

#: A tritonclient process that streams requests to graph argv[2] ("in" FP32[1]) at argv[1] until it is
#: killed; it says "ready" once the first response came back, so the kill lands mid-stream.
KILLED_CLIENT = r"""
import sys, threading, time
import numpy as np
import tritonclient.grpc as triton

client = triton.InferenceServerClient(sys.argv[1])
first = threading.Event()
client.start_stream(lambda result, error: first.set())
number = 0
while True:
    tensor = triton.InferInput("in", [1], "FP32")
    tensor.set_data_from_numpy(np.float32([number]))
    client.async_stream_infer(sys.argv[2], [tensor])
    number += 1
    if number == 1:
        first.wait(30)
        print("ready", flush=True)
    time.sleep(0.001)
"""


@dataclass(frozen=True)
class Census:
    """What the process holds: server sessions, graph instances, threads, listening ports, memory."""

    sessions: int
    open_graphs: int
    graphs_in_memory: int
    stream_threads: tuple[str, ...]  # our own threads outside the pool (stream readers, engines, ...)
    os_threads: int  # every OS thread of the process (MediaPipe's included) minus the pool's
    listening: frozenset[int]
    fds: int
    rss_bytes: int


def request(graph: str, value: float) -> pb.ModelInferRequest:
    """A pass-through request carrying FP32[1] `value` on input "in"."""
    message = pb.ModelInferRequest(model_name=graph)
    tensor, raw = encode_input("in", np.float32([value]))
    message.inputs.append(tensor)
    message.raw_input_contents.append(raw)
    return message


def listening_ports() -> frozenset[int]:
    """TCP ports this process listens on (from /proc: sockets in LISTEN state whose inode is one of our fds)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return frozenset(ports)


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def census(server: object) -> Census:
    """Count what `server` (an ovms_notebook.Server) and the process hold right now, after a gc pass."""
    gc.collect()
    names = [t.name for t in threading.enumerate()]
    pool = sum(1 for name in names if name.startswith(POOL_PREFIX))
    return Census(
        sessions=len(server.sessions),  # type: ignore[attr-defined]
        open_graphs=graph_instances(),
        graphs_in_memory=graph_instances(open_only=False),
        stream_threads=tuple(sorted(n for n in names if n.startswith("ovms-") and not n.startswith(POOL_PREFIX))),
        os_threads=len(os.listdir("/proc/self/task")) - pool,
        listening=listening_ports(),
        fds=len(os.listdir("/proc/self/fd")),
        rss_bytes=rss_bytes(),
    )


def settle(server: object, baseline: Census | None = None, deadline: float = 60.0) -> Census:
    """Poll until no session, open graph or stream thread is left (and, given a baseline, the OS thread
    count and the graph objects in memory are back to it), or `deadline` seconds passed; returns the last
    census either way."""
    end = time.monotonic() + deadline
    while True:
        now = census(server)
        quiet = not now.sessions and not now.open_graphs and not now.stream_threads
        if quiet and (baseline is None or (now.os_threads <= baseline.os_threads
                                          and now.graphs_in_memory <= baseline.graphs_in_memory)):
            return now
        if time.monotonic() > end:
            return now
        time.sleep(0.05)


def vanish(address: str, graph: str, kind: str) -> int:
    """One client that opens a stream, gets a response, sends more and vanishes; returns its response count."""
    if kind == "kill":
        return _killed(address, graph)
    method = METHODS["ModelStreamInfer"]
    channel = grpc.insecure_channel(address)
    outbox: queue.SimpleQueue = queue.SimpleQueue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    call = channel.stream_stream(method.path, request_serializer=method.request.SerializeToString,
                                 response_deserializer=method.response.FromString)(requests())
    for number in range(3):
        outbox.put(request(graph, number))
    next(call)  # the graph runs: the rest is mid-stream
    for number in range(3, 8):
        outbox.put(request(graph, number))
    if kind == "cancel":
        call.cancel()
    elif kind == "close":
        channel.close()
    else:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    outbox.put(None)  # ends the request iterator, so the client's sender thread ends too
    channel.close()
    return 1


def _killed(address: str, graph: str) -> int:
    process = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, address, graph], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "ready":
            raise RuntimeError(f"the client process should print 'ready' after its first response, got {line!r}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]
    return 1
