"""IDLE: what one open, idle stream costs the server, beside what it costs a raw grpcio echo server.

Each server runs in its own process (ours: `ovms-notebook serve graphs --port 0`; the echo: bench/common.py's
grpcio echo on a thread pool sized for the streams). A client opens S streams that sent nothing (tritonclient's
`start_stream()` before the first request), then S more that sent one pass-through request and were answered
(their graph is built, then they idle). Per stream: server RSS and OS threads after ÷ before, from /proc.

IDLE memory = our RSS per idle stream ÷ the echo's (informational, shows what a stream holds beyond gRPC's own);
also printed: threads per stream, the server's CPU over 5 s with every stream open and idle (a writer that polls
on a timer shows here), and whether health (ServerLive) still answers with the 2*S streams open.

Run: .venv/bin/python bench/flow_idle_streams.py [--streams S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import grpc
import numpy as np
from common import REPO, make_request, pb, report

from ovms_notebook.proto.service import METHODS

IDLE_SECONDS = 5.0

ECHO = """
import sys, threading
sys.path.insert(0, {bench!r})
from concurrent.futures import ThreadPoolExecutor
import grpc
from common import _echo, pb
from ovms_notebook.proto.service import SERVICE_NAME, METHODS
server = grpc.server(ThreadPoolExecutor(max_workers=int(sys.argv[1]) + 8), options=[("grpc.so_reuseport", 0)],
                     maximum_concurrent_rpcs=None)
stream = grpc.stream_stream_rpc_method_handler(_echo, request_deserializer=pb.ModelInferRequest.FromString,
                                               response_serializer=pb.ModelStreamInferResponse.SerializeToString)
live = grpc.unary_unary_rpc_method_handler(lambda r, c: pb.ServerLiveResponse(live=True),
                                           request_deserializer=pb.ServerLiveRequest.FromString,
                                           response_serializer=pb.ServerLiveResponse.SerializeToString)
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    SERVICE_NAME, {{"ModelStreamInfer": stream, "ServerLive": live}}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"serving on 127.0.0.1:{{port}}", flush=True)
threading.Event().wait()
"""


def start(kind: str, streams: int) -> tuple[subprocess.Popen, str]:
    if kind == "ours":
        command = [
            sys.executable,
            "-m",
            "ovms_notebook.cli",
            "serve",
            str(REPO / "graphs"),
            "--port",
            "0",
            "--log-level",
            "WARNING",
        ]
    else:
        command = [sys.executable, "-c", ECHO.format(bench=str(REPO / "bench")), str(2 * streams)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:  # type: ignore[union-attr]
        if line.startswith("serving on "):
            return process, line.split()[2]
    raise RuntimeError(f"{kind} server did not start")


def rss_and_threads(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return rss, len(os.listdir(f"/proc/{pid}/task"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled(pid: int) -> tuple[int, int]:
    time.sleep(1.0)
    return rss_and_threads(pid)


def live(address: str) -> str:
    method = METHODS["ServerLive"]
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(
            method.path,
            request_serializer=method.request.SerializeToString,
            response_deserializer=method.response.FromString,
        )
        try:
            return "live" if call(pb.ServerLiveRequest(), timeout=10).live else "not live"
        except grpc.RpcError as error:
            return f"{error.code().name} {error.details()!r}"


def measure(kind: str, streams: int) -> dict[str, float | str]:
    process, address = start(kind, streams)
    method = METHODS["ModelStreamInfer"]
    channel = grpc.insecure_channel(address)
    stub = channel.stream_stream(
        method.path,
        request_serializer=method.request.SerializeToString,
        response_deserializer=method.response.FromString,
    )
    outboxes: list[list] = []
    calls = []
    try:
        live(address)  # warm: the pool's first threads, the channel
        rss0, threads0 = settled(process.pid)
        for _ in range(streams):  # opened, nothing sent
            box: list = []
            outboxes.append(box)
            calls.append(stub(_waiting(box)))
        rss1, threads1 = settled(process.pid)
        answered = []
        for number in range(streams):  # one request answered, then idle
            box = [make_request("passthrough", {"in": np.float32([number])})]
            outboxes.append(box)
            call = stub(_waiting(box))
            calls.append(call)
            answered.append(call)
        for call in answered:
            next(call)
        rss2, threads2 = settled(process.pid)
        cpu0 = cpu_seconds(process.pid)
        time.sleep(IDLE_SECONDS)  # every stream open and idle: what does the server spend doing nothing?
        idle_cpu = (cpu_seconds(process.pid) - cpu0) / IDLE_SECONDS
        health = live(address)
    finally:
        for box in outboxes:
            box.append(None)
        for call in calls:
            call.cancel()
        channel.close()
        process.kill()
        process.wait()
    return {
        "opened_rss": (rss1 - rss0) / streams,
        "opened_threads": (threads1 - threads0) / streams,
        "answered_rss": (rss2 - rss1) / streams,
        "answered_threads": (threads2 - threads1) / streams,
        "health": health,
        "idle_cpu": idle_cpu,
    }


def _waiting(box: list):
    """Requests from `box` as they appear; None ends them (an idle stream just waits here)."""
    index = 0
    while True:
        while len(box) <= index:
            time.sleep(0.05)
        item = box[index]
        index += 1
        if item is None:
            return
        yield item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=30, help="idle streams of each kind (default 30)")
    args = parser.parse_args()
    echo = measure("echo", args.streams)
    ours = measure("ours", args.streams)
    for name, row in (("echo", echo), ("ours", ours)):
        print(f"{name}: CPU while all {2 * args.streams} streams idle: {100 * row['idle_cpu']:.1f} % of a core")
        print(
            f"{name}: {args.streams} opened streams {row['opened_rss'] / 1024:.0f} KiB and "
            f"{row['opened_threads']:.2f} threads each; {args.streams} answered-then-idle "
            f"{row['answered_rss'] / 1024:.0f} KiB and {row['answered_threads']:.2f} threads each; "
            f"ServerLive with {2 * args.streams} open: {row['health']}"
        )
    per_echo = max(1.0, (echo["opened_rss"] + echo["answered_rss"]) / 2)  # type: ignore[operator]
    per_ours = (ours["opened_rss"] + ours["answered_rss"]) / 2  # type: ignore[operator]
    report(
        "IDLE memory",
        per_ours / per_echo,
        "informational",
        f"ours {per_ours / 1024:.0f} KiB vs echo {per_echo / 1024:.0f} KiB per idle stream",
    )


if __name__ == "__main__":
    main()
