"""Misuses that abort or crash the process inside mediapipe 0.10.21, and the validation that stops each one.

Each misuse runs first as raw MediaPipe code in a child process, which must die by a signal (SIGABRT from
a glog CHECK, SIGSEGV): the danger is real, on this machine, today. Then the same misuse is attempted
through ovms_notebook (the graph wrapper, the codec, or a request to a live server in this process) and
must be refused with a clear error while this process lives on. The list comes from the probes in the
project notes ("Error and crash behaviour of misuse", "Timestamp rules") and the codec's image probes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import grpc
import mediapipe as mp
import numpy as np
import pytest

from ovms_notebook.codec import encode_output
from ovms_notebook.engine.convert import native_timestamp
from ovms_notebook.engine.engines import make_graph
from ovms_notebook.engine.graphconfig import parse_graph
from ovms_notebook.engine.native import NativeGraph
from ovms_notebook.framework import timestamps as ts
from ovms_notebook.status import OvmsStatus
from tests.conftest import PASSTHROUGH, request
from tests.wire import Conversation

CHILD_TIMEOUT = 20.0  # the misuses that crash do so within a few seconds; the one that may hang is killed
PREAMBLE = f"""
import numpy as np
import mediapipe as mp
CONFIG = '''{PASSTHROUGH}'''
g = mp.CalculatorGraph(graph_config=CONFIG)
"""


@dataclass(frozen=True)
class Misuse:
    id: str
    code: str  # raw MediaPipe calls after PREAMBLE (graph `g` on PASSTHROUGH: "in" -> "out")
    may_hang: bool = False  # the probes saw a segfault; on this machine the child can also hang in close()
    #: children run: a misuse whose outcome is a race is tried more than once and must be fatal in at least one
    runs: int = 1


MISUSES = [
    Misuse("add-to-unknown-stream", "g.start_run()\ng.add_packet_to_input_stream('nope', mp.packet_creator."
                                    "create_int(1), 0)\ng.close()"),
    Misuse("close-unknown-input-stream", "g.start_run()\ng.close_input_stream('nope')\ng.close()"),
    # a race: 16 of 16 children hung here, and one CI run saw a child come through alive; two must not both
    Misuse("start-run-twice", "g.start_run()\ng.start_run()\ng.close()", may_hang=True, runs=2),
    Misuse("observe-after-start", "g.start_run()\ng.observe_output_stream('out', lambda s, p: None)\ng.close()"),
    Misuse("observer-raises", "def cb(stream, packet):\n    raise ValueError('boom')\n"
                              "g.observe_output_stream('out', cb)\ng.start_run()\n"
                              "g.add_packet_to_input_stream('in', mp.packet_creator.create_int(1), 0)\n"
                              "g.wait_until_idle()\ng.close()"),
    Misuse("observer-wrong-arity", "g.observe_output_stream('out', lambda packet: None)\ng.start_run()\n"
                                   "g.add_packet_to_input_stream('in', mp.packet_creator.create_int(1), 0)\n"
                                   "g.wait_until_idle()\ng.close()"),
    *[Misuse(f"int-timestamp-{name}", f"g.start_run()\ng.add_packet_to_input_stream('in', mp.packet_creator."
                                      f"create_int(1), {value})\ng.wait_until_idle()\ng.close()")
      for name, value in (("Max", ts.MAX), ("Min", ts.MIN), ("PostStream", ts.POSTSTREAM),
                          ("PreStream", ts.PRESTREAM))],
    Misuse("timestamp-object-from-Done", f"mp.Timestamp({ts.DONE})"),
    Misuse("packet-at-Done-int", f"mp.packet_creator.create_int(1).at({ts.DONE})"),
    Misuse("read-16-bit-image", "image = mp.Image(image_format=mp.ImageFormat.SRGB48, "
                                "data=np.zeros((2, 2, 3), np.uint16))\nprint(image.channels)"),
]


@pytest.fixture(scope="module")
def children() -> dict[str, list[subprocess.CompletedProcess]]:
    """Run every misuse in its own child process, as many at once as there are cores, each bounded by CHILD_TIMEOUT.

    Starting all of them at once made the first ones time out on a loaded 2-core machine while they were still
    importing mediapipe (a SIGKILL that says nothing about the misuse), so each child's clock starts with the child.
    """
    env = dict(os.environ, GLOG_minloglevel="3", PYTHONFAULTHANDLER="")

    def run(misuse: Misuse) -> subprocess.CompletedProcess:
        code = PREAMBLE + textwrap.dedent(misuse.code) + "\nprint('SURVIVED')"
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, text=True)
        try:
            out, err = child.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()  # SIGKILL: the returncode says it hung
            out, err = child.communicate()
        return subprocess.CompletedProcess(child.args, child.returncode, out, err)

    tries = [misuse for misuse in MISUSES for _ in range(misuse.runs)]
    found: dict[str, list[subprocess.CompletedProcess]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for misuse, result in zip(tries, pool.map(run, tries), strict=True):
            found.setdefault(misuse.id, []).append(result)
    return found


@pytest.mark.parametrize("misuse", MISUSES, ids=lambda m: m.id)
def test_the_raw_misuse_kills_a_child_process(misuse: Misuse, children):
    fatal = {-signal.SIGABRT, -signal.SIGSEGV} | ({-signal.SIGKILL} if misuse.may_hang else set())
    outcomes = [(result.returncode, "SURVIVED" in result.stdout) for result in children[misuse.id]]
    # fatal at least once (every time, for a misuse run once); a child that dies prints nothing after it
    assert any(code in fatal and not survived for code, survived in outcomes), (
        outcomes, children[misuse.id][-1].stderr[-2000:])


# -- the same misuses through ovms_notebook ------------------------------------------------------------------

def passthrough_graph(sink=lambda stream, packet: None) -> NativeGraph:
    return make_graph(parse_graph(PASSTHROUGH), sink)  # type: ignore[return-value]


def test_unknown_input_stream_is_refused_by_the_graph_wrapper():
    graph = passthrough_graph()
    graph.start({})
    with pytest.raises(OvmsStatus) as caught:
        graph.push({"nope": mp.packet_creator.create_int(1)}, 0)
    assert caught.value.text == "Unexpected input - nope is unexpected"
    with pytest.raises(ValueError, match="'nope' is not an input stream of this graph"):
        graph.close_input_stream("nope")
    assert graph.close() is None


def test_a_second_start_is_refused_and_the_graph_still_closes():
    graph = passthrough_graph()
    graph.start({})
    with pytest.raises(RuntimeError, match="graph can be started once, it is running"):
        graph.start({})
    assert graph.close() is None


def test_observers_are_installed_before_start_and_cannot_be_added_later():
    # NativeGraph observes every graph output in its constructor; it offers no way to observe afterwards.
    assert not any("observe" in name for name in vars(NativeGraph) if not name.startswith("_"))
    seen: list[int] = []
    graph = passthrough_graph(lambda stream, packet: seen.append(packet.timestamp.value))
    graph.start({})
    graph.push({"in": mp.packet_creator.create_int(1)}, 4)
    graph.wait_until_idle()
    assert graph.close() is None and seen == [4]


@pytest.mark.parametrize("sink", [
    pytest.param(lambda stream, packet: 1 / 0, id="raises"),
    pytest.param(lambda packet: None, id="wrong-arity"),
])
def test_a_failing_packet_sink_is_logged_and_never_reaches_mediapipe(sink, caplog):
    graph = passthrough_graph(sink)
    graph.start({})
    with caplog.at_level(logging.ERROR, logger="ovms_notebook.engine.native"):
        graph.push({"in": mp.packet_creator.create_int(1)}, 0)
        graph.wait_until_idle()
        assert graph.close() is None
    assert [r.getMessage() for r in caplog.records] == ["output observer for 'out' failed"]


@pytest.mark.parametrize("value", [ts.MAX, ts.MIN, ts.POSTSTREAM, ts.PRESTREAM])
def test_special_timestamps_reach_mediapipe_only_as_timestamp_objects(value):
    assert isinstance(native_timestamp(value), mp.Timestamp)


@pytest.mark.parametrize("value", [ts.DONE, ts.ONE_OVER_POSTSTREAM, ts.UNSET, ts.UNSTARTED])
def test_timestamps_mediapipe_cannot_take_are_refused_before_any_timestamp_is_made(value):
    with pytest.raises(ValueError, match="can't be the timestamp of a packet in a stream"):
        native_timestamp(value)


def test_a_16_bit_image_packet_is_refused_instead_of_read():
    packet = mp.packet_creator.create_image(np.zeros((2, 2, 3), np.uint16), image_format=mp.ImageFormat.SRGB48)
    with pytest.raises(OvmsStatus) as caught:
        encode_output("out", packet)
    assert caught.value.text.startswith("Unknown error - Failed to get packetout with exception: mediapipe::Image "
                                        "format 0 cannot be read by mediapipe 0.10.21")


# -- and through a live server ---------------------------------------------------------------------------------

IMAGES = """
input_stream: "MP_IMAGE:in"
output_stream: "out"
node { calculator: "PassThroughCalculator" input_stream: "in" output_stream: "out" }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import ovms_notebook
    from tests.conftest import write_graphs

    config = write_graphs(tmp_path_factory.mktemp("guard"), {"pt": PASSTHROUGH, "img": IMAGES})
    with ovms_notebook.serve(config) as server:
        yield server


@pytest.mark.parametrize(("label", "message", "answer"), [
    ("unknown stream", request("pt", {"nope": np.float32([1])}), "Unexpected input - nope is unexpected"),
    ("int Max() timestamp", request("pt", {"in": np.float32([1])}, timestamp=ts.MAX), ts.MAX),
    ("int Min() timestamp", request("pt", {"in": np.float32([1])}, timestamp=ts.MIN), ts.MIN),
    ("PostStream timestamp", request("pt", {"in": np.float32([1])}, timestamp=ts.POSTSTREAM),
     "Malformed packet timestamp - Timestamp::PostStream()"),
    ("PreStream timestamp", request("pt", {"in": np.float32([1])}, timestamp=ts.PRESTREAM),
     "Malformed packet timestamp - Timestamp::PreStream()"),
    ("Done timestamp", request("pt", {"in": np.float32([1])}, timestamp=ts.DONE),
     "Malformed packet timestamp - Timestamp::Done()"),
    ("16-bit image", request("img", {"in": np.zeros((2, 2, 3), np.uint16)}),
     "Inputs inside buffer does not match expected format. - Expected 8-bit (UINT8, INT8) or FP32 pixels for input "
     "stream tagged MP_IMAGE; Actual: UINT16 with 3 channels, which mediapipe 0.10.21 cannot hold in a "
     "mediapipe::Image (use an IMAGE stream for 16-bit frames); input name: in"),
])
def test_the_misuse_as_a_request_gets_an_answer_and_the_process_lives(server, label, message, answer):
    with grpc.insecure_channel(server.address) as channel:
        talk = Conversation(channel)
        talk.send(message)
        response = talk.receive()
        if isinstance(answer, str):
            assert response.error_message == answer + "; partial deserialization of first request"
        else:
            assert response.infer_response.parameters["OVMS_MP_TIMESTAMP"].int64_param == answer
        ending = talk.end()
        assert (ending.code, ending.responses) == (grpc.StatusCode.OK, [])
        # A native abort would have ended this whole test run; the server also still serves.
        talk = Conversation(channel)
        talk.send(request("pt", {"in": np.float32([2])}, timestamp=5))
        assert talk.receive().infer_response.parameters["OVMS_MP_TIMESTAMP"].int64_param == 5
        assert talk.end().code == grpc.StatusCode.OK
