"""`std::vector<Message>` packets made from a Python list of protobuf messages.

The mediapipe wheel's Python API cannot build a packet holding a vector of
protos (`create_proto_vector` raises NotImplementedError), yet native nodes
such as `ClipDetectionVectorSizeCalculator` and graph outputs of OVMS's demos
carry `std::vector<mediapipe::Detection>`. The wheel's own loop calculators
build one: a two-node native graph, `BeginLoopStringCalculator` over N
placeholder strings for the `BATCH_END` timestamp (a packet type Python
cannot make either) and the `EndLoop<Type>Calculator` of the message type
collecting the N messages, gives the vector packet. About 0.5 ms per list.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import mediapipe as mp
from google.protobuf import message as protobuf_message

__all__ = ["END_LOOP_CALCULATORS", "proto_vector_packet"]

#: Message full name -> the wheel's EndLoop calculator collecting it into a std::vector.
END_LOOP_CALCULATORS = {
    "mediapipe.Detection": "EndLoopDetectionCalculator",
    "mediapipe.NormalizedRect": "EndLoopNormalizedRectCalculator",
    "mediapipe.NormalizedLandmarkList": "EndLoopNormalizedLandmarkListVectorCalculator",
    "mediapipe.ClassificationList": "EndLoopClassificationListCalculator",
}


@functools.cache
def _config(calculator: str) -> object:
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2

    text = (
        'input_stream: "count" input_stream: "item" output_stream: "out" '
        'node { calculator: "BeginLoopStringCalculator" input_stream: "ITERABLE:count" '
        'output_stream: "ITEM:unused" output_stream: "BATCH_END:end" } '
        f'node {{ calculator: "{calculator}" input_stream: "ITEM:item" input_stream: "BATCH_END:end" '
        'output_stream: "ITERABLE:out" }'
    )
    return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())


def proto_vector_packet(messages: Sequence[protobuf_message.Message]) -> mp.Packet:
    """A `std::vector<T>` packet of `messages` (one type T of `END_LOOP_CALCULATORS`, at least one message);
    TypeError otherwise."""
    names = {message.DESCRIPTOR.full_name for message in messages}
    if len(names) != 1:
        raise TypeError(f"a vector packet needs messages of one type, got {sorted(names) or 'none'}")
    (name,) = names
    if name not in END_LOOP_CALCULATORS:
        raise TypeError(f"no native vector packet of {name} here; known: {', '.join(END_LOOP_CALCULATORS)}")
    graph = mp.CalculatorGraph(graph_config=_config(END_LOOP_CALCULATORS[name]))
    found: list[mp.Packet] = []
    graph.observe_output_stream("out", lambda _name, packet: found.append(packet))
    graph.start_run()
    graph.add_packet_to_input_stream("count", mp.packet_creator.create_string_vector([""] * len(messages)).at(0))
    for index, message in enumerate(messages):
        graph.add_packet_to_input_stream("item", mp.packet_creator.create_proto(message).at(index))
    graph.close()
    return found[0]
