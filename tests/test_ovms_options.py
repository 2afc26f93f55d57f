"""OVMS graph files parse once our options protos are imported (both option forms)."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from ovms_notebook.calculators.proto import ovms_calculators_pb2 as ovms
from ovms_notebook.framework.protos import import_wheel_protos

PYTHON_NODE = """
input_stream: "OVMS_PY_TENSOR:input"
output_stream: "OVMS_PY_TENSOR:output"
node {
  name: "pythonNode"
  calculator: "PythonExecutorCalculator"
  input_side_packet: "PYTHON_NODE_RESOURCES:py"
  input_stream: "LOOPBACK:loopback"
  input_stream: "INPUT:input"
  input_stream_info: { tag_index: 'LOOPBACK:0', back_edge: true }
  input_stream_handler {
    input_stream_handler: "SyncSetInputStreamHandler",
    options {
      [mediapipe.SyncSetInputStreamHandlerOptions.ext] { sync_set { tag_index: "LOOPBACK:0" } }
    }
  }
  output_stream: "LOOPBACK:loopback"
  output_stream: "OUTPUT:output"
  node_options: { [type.googleapis.com/mediapipe.PythonExecutorCalculatorOptions]: { handler_path: "model.py" } }
}
"""

OPENVINO = """
input_stream: "in"
output_stream: "out"
node {
  calculator: "OpenVINOModelServerSessionCalculator"
  output_side_packet: "SESSION:session"
  node_options: { [type.googleapis.com/mediapipe.OpenVINOModelServerSessionCalculatorOptions]: {
    servable_name: "resnet" servable_version: "1" } }
}
node {
  calculator: "OpenVINOInferenceCalculator"
  input_side_packet: "SESSION:session"
  input_stream: "B:in"
  output_stream: "A:out"
  options { [mediapipe.OpenVINOInferenceCalculatorOptions.ext] {
    tag_to_input_tensor_names { key: "B" value: "0" } tag_to_output_tensor_names { key: "A" value: "1463" } } }
}
"""


def parse(text: str):
    import_wheel_protos()
    from mediapipe.framework import calculator_pb2

    return text_format.Parse(text, calculator_pb2.CalculatorGraphConfig())


def test_python_executor_options_parse_in_the_any_form_with_sync_set_handler():
    config = parse(PYTHON_NODE)
    options = ovms.PythonExecutorCalculatorOptions()
    assert config.node[0].node_options[0].Unpack(options)
    assert options.handler_path == "model.py"
    handler = config.node[0].input_stream_handler
    assert handler.input_stream_handler == "SyncSetInputStreamHandler"


def test_openvino_options_parse_in_both_forms():
    config = parse(OPENVINO)
    session = ovms.OpenVINOModelServerSessionCalculatorOptions()
    assert config.node[0].node_options[0].Unpack(session)
    assert (session.servable_name, session.servable_version) == ("resnet", "1")
    inference = config.node[1].options.Extensions[ovms.OpenVINOInferenceCalculatorOptions.ext]
    assert dict(inference.tag_to_input_tensor_names) == {"B": "0"}
    assert dict(inference.tag_to_output_tensor_names) == {"A": "1463"}


def test_extension_numbers_are_ovms_ones():
    assert ovms.PythonExecutorCalculatorOptions.ext.number == 113473748
    assert ovms.OpenVINOInferenceCalculatorOptions.ext.number == 113473743
    assert ovms.OpenVINOModelServerSessionCalculatorOptions.ext.number == 113473744
    assert ovms.PyTensorOvTensorConverterCalculatorOptions.ext.number == 113473749


def test_missing_required_field_fails_loudly():
    from google.protobuf.message import EncodeError

    with pytest.raises((text_format.ParseError, EncodeError), match="handler_path"):
        config = parse(PYTHON_NODE.replace('handler_path: "model.py"', ""))
        config.node[0].node_options[0].Unpack(ovms.PythonExecutorCalculatorOptions())
