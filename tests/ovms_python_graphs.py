"""OVMS's Python-node test graphs and handler scripts (src/test/streaming_test.cpp and its scripts).

The handlers behave as OVMS's test scripts do; graphs name them under `scripts/`. Shared by the
graph-level tests (tests/test_ovms_python_nodes.py) and the server-level ones with tritonclient.
"""

from __future__ import annotations

from pathlib import Path

INCREMENT = '''
import struct
from pyovms import Tensor


class OvmsPythonModel:
    def execute(self, inputs: list):
        outputs = []
        for tensor in inputs:
            value = struct.unpack("f", bytes(tensor))[0] + 1.0
            outputs.append(Tensor(tensor.name.replace("input", "output"), struct.pack("f", value)))
        return outputs
'''

INCREMENT_GENERATOR = '''
import struct
from pyovms import Tensor


class OvmsPythonModel:
    def initialize(self, kwargs: dict):
        self.kwargs = kwargs

    def execute(self, inputs: list):
        values = {}
        for _ in range(3):
            outputs = []
            for tensor in inputs:
                value = values.get(tensor.name, struct.unpack("f", bytes(tensor))[0]) + 1.0
                values[tensor.name] = value
                outputs.append(Tensor(tensor.name.replace("input", "output"), struct.pack("f", value)))
            yield outputs
'''

RETURN_NONE = '''
class OvmsPythonModel:
    def execute(self, inputs):
        return None
'''

RETURN_NON_TENSOR = '''
class OvmsPythonModel:
    def execute(self, inputs):
        return [3]
'''

RECORDING = '''
from pyovms import Tensor


class OvmsPythonModel:
    initialized = []
    finalized = []
    executed = []

    def initialize(self, kwargs):
        type(self).initialized.append(kwargs)

    def execute(self, inputs):
        type(self).executed.append(id(self))
        return [Tensor("output", bytes(inputs[0]), shape=inputs[0].shape, datatype=inputs[0].datatype)]

    def finalize(self):
        type(self).finalized.append(id(self))
        raise RuntimeError("finalize errors are logged and ignored")
'''

ECHO = '''
from pyovms import Tensor


class OvmsPythonModel:
    def execute(self, inputs):
        return [Tensor("output", t, shape=t.shape, datatype=t.datatype) for t in inputs]
'''

MANY = '''
import struct
from pyovms import Tensor


class OvmsPythonModel:
    def execute(self, inputs):
        for i in range(10):
            yield [Tensor("output", struct.pack("f", float(i)))]
'''

PYTHON_NODE = """
input_stream: "OVMS_PY_TENSOR:input"
output_stream: "OVMS_PY_TENSOR:output"
node {
    calculator: "PythonExecutorCalculator"
    name: "pythonNode"
    input_side_packet: "PYTHON_NODE_RESOURCES:py"
    input_stream: "INPUT:input"
    output_stream: "OUTPUT:output"
    node_options: {
        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: {
            handler_path: "scripts/%s"
        }
    }
}
"""

WITH_CONVERTERS = """
input_stream: "OVTENSOR:in"
output_stream: "OVTENSOR:out"
node {
    name: "pythonNode1"
    calculator: "PyTensorOvTensorConverterCalculator"
    input_stream: "OVTENSOR:in"
    output_stream: "OVMS_PY_TENSOR:input"
    node_options: {
        [type.googleapis.com / mediapipe.PyTensorOvTensorConverterCalculatorOptions]: {
            tag_to_output_tensor_names {
            key: "OVMS_PY_TENSOR"
            value: "input"
            }
        }
    }
}
node {
    calculator: "PythonExecutorCalculator"
    name: "pythonNode2"
    input_side_packet: "PYTHON_NODE_RESOURCES:py"
    input_stream: "INPUT:input"
    output_stream: "OUTPUT:output"
    node_options: {
        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: {
            handler_path: "scripts/symmetric_scalar_increment.py"
        }
    }
}
node {
    name: "pythonNode3"
    calculator: "PyTensorOvTensorConverterCalculator"
    input_stream: "OVMS_PY_TENSOR:output"
    output_stream: "OVTENSOR:out"
}
"""

INCOMPLETE_INPUTS = """
input_stream: "OVMS_PY_TENSOR1:input1"
input_stream: "OVMS_PY_TENSOR2:input2"
output_stream: "OVMS_PY_TENSOR1:output1"
output_stream: "OVMS_PY_TENSOR2:output2"
node {
    calculator: "PythonExecutorCalculator"
    name: "pythonNode"
    input_side_packet: "PYTHON_NODE_RESOURCES:py"
    input_stream: "INPUT1:input1"
    input_stream: "INPUT2:input2"
    input_stream_handler {
        input_stream_handler: 'ImmediateInputStreamHandler'
    }

    output_stream: "OUTPUT1:output1"
    output_stream: "OUTPUT2:output2"
    node_options: {
        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: {
            handler_path: "scripts/symmetric_scalar_increment.py"
        }
    }
}
"""

GENERATOR_ONE = """
input_stream: "OVMS_PY_TENSOR:input"
output_stream: "OVMS_PY_TENSOR:output"
node {
    calculator: "PythonExecutorCalculator"
    name: "pythonNode"
    input_side_packet: "PYTHON_NODE_RESOURCES:py"
    input_stream: "LOOPBACK:loopback"
    input_stream: "INPUT:input"
    input_stream_info: {
        tag_index: 'LOOPBACK:0',
        back_edge: true
    }
    input_stream_handler {
        input_stream_handler: "SyncSetInputStreamHandler",
        options {
            [mediapipe.SyncSetInputStreamHandlerOptions.ext] {
                sync_set {
                    tag_index: "LOOPBACK:0"
                }
            }
        }
    }
    output_stream: "LOOPBACK:loopback"
    output_stream: "OUTPUT:output"
    node_options: {
        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: {
            handler_path: "scripts/%s"
        }
    }
}
"""

GENERATOR_TWO = """
input_stream: "OVMS_PY_TENSOR1:input1"
input_stream: "OVMS_PY_TENSOR2:input2"
output_stream: "OVMS_PY_TENSOR1:output1"
output_stream: "OVMS_PY_TENSOR2:output2"
node {
    calculator: "PythonExecutorCalculator"
    name: "pythonNode"
    input_side_packet: "PYTHON_NODE_RESOURCES:py"
    input_stream: "LOOPBACK:loopback"
    input_stream: "INPUT1:input1"
    input_stream: "INPUT2:input2"
    input_stream_info: {
        tag_index: 'LOOPBACK:0',
        back_edge: true
    }
    input_stream_handler {
        input_stream_handler: "SyncSetInputStreamHandler",
        options {
            [mediapipe.SyncSetInputStreamHandlerOptions.ext] {
                sync_set {
                    tag_index: "LOOPBACK:0"
                }
            }
        }
    }
    output_stream: "LOOPBACK:loopback"
    output_stream: "OUTPUT1:output1"
    output_stream: "OUTPUT2:output2"
    node_options: {
        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: {
            handler_path: "scripts/symmetric_scalar_increment_generator.py"
        }
    }
}
"""

YIELDS_WITHOUT_LOOPBACK = """
input_stream: "OVMS_PY_TENSOR1:input1"
input_stream: "OVMS_PY_TENSOR2:input2"
output_stream: "OVMS_PY_TENSOR1:output1"
output_stream: "OVMS_PY_TENSOR2:output2"
node {
    calculator: "PythonExecutorCalculator"
    name: "pythonNode"
    input_side_packet: "PYTHON_NODE_RESOURCES:py"
    input_stream: "INPUT1:input1"
    input_stream: "INPUT2:input2"
    output_stream: "OUTPUT1:output1"
    output_stream: "OUTPUT2:output2"
    node_options: {
        [type.googleapis.com / mediapipe.PythonExecutorCalculatorOptions]: {
            handler_path: "scripts/symmetric_scalar_increment_generator.py"
        }
    }
}
"""


SCRIPTS = {
    "symmetric_scalar_increment.py": INCREMENT,
    "symmetric_scalar_increment_generator.py": INCREMENT_GENERATOR,
    "return_none_object.py": RETURN_NONE,
    "return_non_tensor_object.py": RETURN_NON_TENSOR,
    "recording.py": RECORDING,
    "echo.py": ECHO,
    "many.py": MANY,
}


def write_scripts(folder: Path) -> Path:
    """Write every handler under `folder`/scripts; returns `folder`."""
    scripts = folder / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    for name, text in SCRIPTS.items():
        (scripts / name).write_text(text)
    return folder
