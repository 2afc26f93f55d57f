"""P8: does serving leak? Process RSS after 10k requests against after 1k, on the pass-through graph.

P8 streams = RSS after 10k stream requests / RSS after the first 1k (goal <= 1.05); the requests travel
     in batches of a few concurrent ModelStreamInfer streams (pipelined, FP32[16]), each stream opened,
     used and half-closed, so graphs are built and closed all along.
P8 unary = the same for unary ModelInfer, which builds and closes a graph per request (goal <= 1.05).
Both readings of a pair come from the same process, after gc.collect(); the growth per 1k requests
between them is printed too, as it is what would add up over a long notebook session. The streams
pair is taken first, then the unary pair, client and server sharing the process as in a kernel.
The server's EventLog keeps the last 10,000 events (two per request), so part of the streams'
growth is that bounded log filling (up to ~5k requests); the events held at each reading are printed.

Run: .venv/bin/python bench/p8_memory.py [--requests N] [--first N] [--streams S]
"""

from __future__ import annotations

import argparse
import gc
import threading

import grpc
import numpy as np
import psutil
from common import METHODS, REPO, StreamDriver, make_request, report

import ovms_notebook

PROCESS = psutil.Process()


def rss_mb() -> float:
    gc.collect()
    return PROCESS.memory_info().rss / 2**20


def stream_batch(address: str, message, streams: int, per_stream: int) -> None:
    """`streams` concurrent streams, each pipelining `per_stream` requests and then half-closing."""
    errors: list[str] = []

    def run() -> None:
        try:
            driver = StreamDriver(address)
            for _ in range(per_stream):
                driver.send(message)
            for _ in range(per_stream):
                response = driver.receive()
                if response.error_message:
                    errors.append(response.error_message)
            driver.close()
        except Exception as error:  # reported below, never lost in a thread
            errors.append(repr(error))

    threads = [threading.Thread(target=run) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]


def unary_batch(address: str, message, count: int) -> None:
    method = METHODS["ModelInfer"]
    with grpc.insecure_channel(address) as channel:
        infer = channel.unary_unary(method.path, request_serializer=method.request.SerializeToString,
                                    response_deserializer=method.response.FromString)
        for _ in range(count):
            infer(message)


def measure(name: str, run_batch, total: int, first: int, events) -> None:
    """RSS after the first `first` requests and after `total`, run in batches of `first`."""
    run_batch(first)
    early, early_events = rss_mb(), len(events.snapshot())
    for _ in range(total // first - 1):
        run_batch(first)
    late, late_events = rss_mb(), len(events.snapshot())
    per_k = (late - early) * 1024 / ((total - first) / 1000)
    report(f"P8 {name} RSS after {total / 1000:g}k / after {first / 1000:g}k", late / early, "<= 1.05",
           f"{late:.1f} MB vs {early:.1f} MB, {per_k:+.1f} KB per 1k requests "
           f"(event log {late_events} vs {early_events} events)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=1_000, help="the early reading, and the batch size")
    parser.add_argument("--streams", type=int, default=4, help="concurrent streams per batch")
    args = parser.parse_args()
    message = make_request("passthrough", {"in": np.arange(16, dtype=np.float32)})
    server = ovms_notebook.serve(REPO / "graphs")
    try:
        measure("streams", lambda n: stream_batch(server.address, message, args.streams, n // args.streams),
                args.requests, args.first, server.events)
        measure("unary", lambda n: unary_batch(server.address, message, n), args.requests, args.first,
                server.events)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
