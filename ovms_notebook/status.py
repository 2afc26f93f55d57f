"""OVMS status codes: their client-visible texts and gRPC codes.

OVMS reports every failure as a `Status(code, details)` whose text is the
code's base message, followed by `" - " + details` when details are given.
Whether that text travels in-band on a stream or as the final gRPC status is
the servicer's business; this module only knows the table (OVMS's `src/status.cpp` and
`src/grpc_utils.cpp`).
Codes OVMS does not map become gRPC UNKNOWN with the literal "Unknown error".
"""

from __future__ import annotations

import enum

import grpc

from ovms_notebook.errors import UNKNOWN_ERROR_TEXT
from ovms_notebook.errors import OvmsStatus as OvmsStatus  # re-export: its home was here


class StatusCode(enum.Enum):
    """An OVMS status code: (base message, gRPC code or None when unmapped)."""

    MEDIAPIPE_DEFINITION_NAME_MISSING = (
        "Mediapipe graph definition with requested name is not found",
        grpc.StatusCode.NOT_FOUND,
    )
    MEDIAPIPE_DEFINITION_NOT_LOADED_ANYMORE = ("Mediapipe is retired", grpc.StatusCode.NOT_FOUND)
    MEDIAPIPE_DEFINITION_NOT_LOADED_YET = ("Mediapipe is not loaded yet", grpc.StatusCode.UNAVAILABLE)
    MODEL_NAME_MISSING = ("Model with requested name is not found", grpc.StatusCode.NOT_FOUND)
    MODEL_VERSION_MISSING = ("Model with requested version is not found", grpc.StatusCode.NOT_FOUND)
    MODEL_VERSION_NOT_LOADED_YET = ("Model with requested version is not loaded yet", grpc.StatusCode.UNAVAILABLE)
    MODEL_VERSION_NOT_LOADED_ANYMORE = (
        "Model with requested version is retired",
        grpc.StatusCode.NOT_FOUND,
    )
    MODEL_VERSION_INVALID_FORMAT = ("invalid model version format in request", grpc.StatusCode.INVALID_ARGUMENT)
    MEDIAPIPE_GRAPH_INITIALIZATION_ERROR = (
        "Failed to initialize mediapipe graph",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    MEDIAPIPE_GRAPH_START_ERROR = ("Failed to start mediapipe graph", grpc.StatusCode.FAILED_PRECONDITION)
    MEDIAPIPE_GRAPH_ADD_OUTPUT_STREAM_ERROR = (
        "Failed to add mediapipe graph output stream",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    MEDIAPIPE_GRAPH_ADD_PACKET_INPUT_STREAM = (
        "Failed to add packet to mediapipe graph input stream",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    MEDIAPIPE_GRAPH_CLOSE_INPUT_STREAM_ERROR = (
        "Failed to close mediapipe graph input stream",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    MEDIAPIPE_EXECUTION_ERROR = ("Mediapipe execution failed. MP status", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_NO_OF_INPUTS = ("Invalid number of inputs", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_MISSING_INPUT = ("Missing input with specific name", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_UNEXPECTED_INPUT = ("Unexpected input", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_NO_OF_SHAPE_DIMENSIONS = ("Invalid number of shape dimensions", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_SHAPE = ("Invalid input shape", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_BATCH_SIZE = ("Invalid input batch size", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_PRECISION = ("Invalid input precision", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_VALUE_COUNT = ("Invalid number of values in tensor proto container", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_CONTENT_SIZE = ("Invalid content size of tensor proto", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_INPUT_FORMAT = ("Inputs inside buffer does not match expected format.", grpc.StatusCode.INVALID_ARGUMENT)
    INVALID_MESSAGE_STRUCTURE = (
        "Passing buffers both in ModelInferRequest::InferInputTensor::contents and in "
        "ModelInferRequest::raw_input_contents is not allowed",
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    INTERNAL_ERROR = ("Internal server error", grpc.StatusCode.INTERNAL)
    OV_INTERNAL_INFERENCE_ERROR = ("Internal inference error", grpc.StatusCode.INTERNAL)
    MEDIAPIPE_PRECONDITION_FAILED = ("Mediapipe graph precondition failed", None)
    MEDIAPIPE_INVALID_TIMESTAMP = ("Malformed packet timestamp", None)
    MEDIAPIPE_UNINITIALIZED_STREAM_CLOSURE = ("Client disconnected during reading first streaming request", None)
    MEDIAPIPE_INCORRECT_SERVABLE_NAME = ("Subsequent request with incorrect servable name", None)
    MEDIAPIPE_INCORRECT_SERVABLE_VERSION = ("Subsequent request with incorrect servable version", None)
    NOT_IMPLEMENTED = ("Functionality not implemented", None)
    UNKNOWN_ERROR = (UNKNOWN_ERROR_TEXT, None)

    @property
    def message(self) -> str:
        """The base message OVMS prints for this code."""
        return self.value[0]

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The gRPC code a final status with this code carries."""
        return self.value[1] or grpc.StatusCode.UNKNOWN

