"""Faults: clients that vanish mid-stream, stop() with open streams, a re-run start cell, reload under load.

Counts are bounded for the default run (50 cancels, 50 channel closes, 10 killed client processes);
bench/faults.py runs the 1,000-cycle loop with memory figures. Waits for the server to settle poll with a
generous deadline; nothing here asserts on speed.
"""

from __future__ import annotations

import queue
import threading

import grpc
import numpy as np
import pytest

import ovms_notebook
from ovms_notebook.engine.native import graph_instances
from ovms_notebook.proto.service import METHODS
from tests.conftest import PASSTHROUGH, write_graphs
from tests.vanish import listening_ports, request, settle, vanish

CYCLES = {"cancel": 50, "close": 50, "kill": 10}
STREAM = METHODS["ModelStreamInfer"]


class OpenStream:
    """A raw ModelStreamInfer call fed from a queue: send requests one by one, read responses, half-close."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.call = self.channel.stream_stream(STREAM.path, request_serializer=STREAM.request.SerializeToString,
                                               response_deserializer=STREAM.response.FromString)(self._requests())

    def _requests(self):
        while (item := self.outbox.get()) is not None:
            yield item

    def send(self, message: object) -> None:
        self.outbox.put(message)

    def half_close(self) -> None:
        self.outbox.put(None)

    def close(self) -> None:
        self.half_close()
        self.channel.close()


def values_and_stamps(responses: list) -> list[tuple[float, int]]:
    """(FP32 value, OVMS_MP_TIMESTAMP) of every data response; in-band errors as (nan, -1)."""
    out = []
    for item in responses:
        if item.error_message:
            out.append((float("nan"), -1))
            continue
        response = item.infer_response
        value = float(np.frombuffer(response.raw_output_contents[0], dtype=np.float32)[0])
        out.append((value, response.parameters["OVMS_MP_TIMESTAMP"].int64_param))
    return out


@pytest.mark.parametrize("kind", list(CYCLES))
def test_clients_that_vanish_mid_stream_leave_no_session_graph_or_thread(serve_graphs, kind):
    server = serve_graphs({"g": PASSTHROUGH})
    vanish(server.address, "g", kind)  # warm-up: the pool and gRPC's own threads exist from here on
    baseline = settle(server)
    assert (baseline.sessions, baseline.open_graphs, baseline.stream_threads) == (0, 0, ())
    for _ in range(CYCLES[kind]):
        vanish(server.address, "g", kind)
    after = settle(server, baseline)
    assert (after.sessions, after.open_graphs, after.stream_threads) == (0, 0, ())
    assert after.graphs_in_memory <= baseline.graphs_in_memory  # a closed one may linger in the baseline
    assert after.os_threads <= baseline.os_threads
    assert after.listening == baseline.listening
    live = OpenStream(server.address)
    for number in range(3):
        live.send(request("g", 10 + number))
    live.half_close()
    assert values_and_stamps(list(live.call)) == [(10.0, 0), (11.0, 1), (12.0, 2)]
    live.close()


def test_stop_with_open_streams_ends_each_with_its_outputs_and_ok_and_closes_every_graph(serve_graphs):
    server = serve_graphs({"g": PASSTHROUGH}, grace=5.0)
    streams = [OpenStream(server.address) for _ in range(8)]
    for index, open_stream in enumerate(streams):
        open_stream.send(request("g", index))
        assert values_and_stamps([next(open_stream.call)]) == [(float(index), 0)]
        open_stream.send(request("g", 100 + index))  # may or may not be answered before stop: both are fine
    assert len(server.sessions) == 8 and graph_instances() == 8
    stopper = threading.Thread(target=lambda: stopped.append(server.stop()))
    stopped: list[bool] = []
    stopper.start()
    stopper.join(60)  # a hang check, not a speed check: stop() finishes the streams instead of waiting out grace
    assert stopped == [True]
    for index, open_stream in enumerate(streams):
        rest = values_and_stamps(list(open_stream.call))
        assert rest in ([], [(100.0 + index, 1)])
        assert open_stream.call.code() == grpc.StatusCode.OK
        open_stream.close()
    assert (server.sessions, graph_instances()) == ([], 0)
    assert server.port not in listening_ports()


def test_rerunning_the_start_cell_100_times_leaves_one_server_and_one_listening_port(tmp_path):
    config = write_graphs(tmp_path / "repo", {"g": PASSTHROUGH})
    ovms_notebook.serve(config).stop()  # warm-up: gRPC's process-wide state exists from here on
    before = listening_ports()
    servers = [ovms_notebook.serve(config) for _ in range(100)]  # `server = serve(config)` run 100 times
    last = servers[-1]
    assert [s.state for s in servers].count("running") == 1 and last.state == "running"
    assert listening_ports() - before == {last.port}
    probe = OpenStream(last.address)
    probe.send(request("g", 7))
    probe.half_close()
    assert values_and_stamps(list(probe.call)) == [(7.0, 0)]
    probe.close()
    assert ovms_notebook.stop_all() == 1
    after = settle(last)
    assert after.listening == before and after.stream_threads == ()


def test_a_reload_during_eight_busy_streams_loses_no_response(tmp_path):
    repo = tmp_path / "repo"
    config = write_graphs(repo, {"g": PASSTHROUGH})
    requests_per_stream, streams_per_worker = 100, 3
    results: dict[tuple[int, int], list] = {}
    failures: list[BaseException] = []
    with ovms_notebook.serve(config) as server:

        def worker(number: int) -> None:
            try:
                for round_ in range(streams_per_worker):
                    base = number * 1000 + round_ * 100
                    messages = [request("g", base + i) for i in range(requests_per_stream)]
                    with grpc.insecure_channel(server.address) as channel:
                        call = channel.stream_stream(STREAM.path, request_serializer=STREAM.request.SerializeToString,
                                                     response_deserializer=STREAM.response.FromString)
                        results[number, round_] = values_and_stamps(list(call(iter(messages), timeout=120)))
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in workers:
            thread.start()
        changes = []
        for edit in range(10):  # each edit changes the pbtxt text: a real reload of "g"
            write_graphs(repo, {"g": PASSTHROUGH + f"# edit {edit}\n"})
            changes.append(server.reload())
        for thread in workers:
            thread.join(300)
        assert failures == []
        assert changes == [{"g": "reloaded"}] * 10
        for (number, round_), seen in sorted(results.items()):
            base = number * 1000 + round_ * 100
            assert seen == [(float(base + i), i) for i in range(requests_per_stream)], (number, round_)
        assert len(results) == 8 * streams_per_worker
        assert settle(server).open_graphs == 0
