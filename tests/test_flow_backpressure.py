"""Backpressure: a client that stops reading makes the server stop reading its requests (gRPC flow control
then stalls the sender) instead of keeping every answer; nothing is dropped, and `stop()` delivers a backlog.

RSS is measured on a CLI server in its own process; the bound asserted is the documented one
(`max_pending_bytes` plus gRPC's and the graph's own buffers), far below what keeping every answer takes.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import grpc
import pytest

from tests.conftest import PASSTHROUGH, write_graphs
from tests.flow import FRAME_SHAPE, CliServer, ManualStream, frame_number, frame_request, wait_until_still

FRAMES = 3000
FRAME_BYTES = FRAME_SHAPE[0] * FRAME_SHAPE[1] * FRAME_SHAPE[2]
PENDING_BYTES = 32 << 20
#: gRPC's transport buffers (flow-control windows both ways, a message being read and one being written),
#: the frames inside the graph and the allocator's slack: measured at 60-120 MiB here.
SLACK_BYTES = 200 << 20


def test_a_client_that_never_reads_is_held_back_and_then_gets_every_answer_in_order(tmp_path):
    config = write_graphs(tmp_path, {"g": PASSTHROUGH})
    server = CliServer(config, "--max-pending-bytes", str(PENDING_BYTES))
    try:
        client = ManualStream(server.address)
        client.send(frame_request("g", 0))
        assert frame_number(client.read(1)[0].infer_response) == 0
        baseline = server.rss_bytes
        for number in range(1, FRAMES):
            client.send(frame_request("g", number))
        peak = baseline
        sampler_done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not sampler_done.is_set():
                peak = max(peak, server.rss_bytes)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        taken = wait_until_still(lambda: client.taken, settle=3.0)
        assert taken < FRAMES - 1, f"the sender never stalled: gRPC took all {taken} requests"
        assert peak - baseline < PENDING_BYTES + SLACK_BYTES, (
            f"server RSS grew {(peak - baseline) >> 20} MiB with {taken} frames taken"
        )
        client.half_close()
        numbers = [frame_number(r.infer_response) for r in client.read()]  # every answer, then OK
        sampler_done.set()
        sampler.join()
        assert numbers == list(range(1, FRAMES))
        print(
            f"server RSS {baseline >> 20} MiB, peak +{(peak - baseline) >> 20} MiB, {taken} of {FRAMES - 1} "
            "frames taken before the sender stalled"
        )
        assert peak - baseline < PENDING_BYTES + SLACK_BYTES, f"server RSS grew {(peak - baseline) >> 20} MiB"
        client.close()
    finally:
        server.stop()


def test_stop_delivers_an_unread_backlog_and_ok_within_its_timeout(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH}, grace=30.0)
    client = ManualStream(server.address)
    count = 40  # 36 MiB of answers: far more than the flow-control windows hold
    for number in range(count):
        client.send(frame_request("g", number))
    wait_until_still(lambda: client.taken, settle=1.0)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(3.0)  # the client only starts reading now, once the old 2 s grace is over
    try:
        numbers = [frame_number(r.infer_response) for r in client.read()]
        code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        numbers, code = [], error.code()
    stopper.join(60)
    assert code == grpc.StatusCode.OK
    assert len(numbers) >= 1 and numbers == list(range(len(numbers)))  # what the server read, all answered
    assert server.state == "stopped"
    client.close()


def test_stop_gives_up_on_a_client_that_never_reads_after_grace_and_says_so(serve_graphs, caplog):
    server = serve_graphs({"g": PASSTHROUGH}, grace=1.0)
    client = ManualStream(server.address)
    for number in range(40):
        client.send(frame_request("g", number))
    wait_until_still(lambda: client.taken, settle=1.0)
    (session,) = server.sessions
    with caplog.at_level(logging.WARNING, logger="ovms_notebook.server.lifecycle"):
        assert server.stop() is True
    (line,) = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert re.fullmatch(
        rf"stop\(\) gave up after 1\.0 s: stream {session.id} \(g\): [1-9][0-9]* outputs "
        r"undelivered, client not reading",
        line,
    ), line
    with pytest.raises(grpc.RpcError):
        client.read()
    client.close()
