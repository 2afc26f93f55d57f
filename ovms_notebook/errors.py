"""Every exception class ovms_notebook raises on purpose: one root, `OvmsNotebookError`, and narrow subclasses.

The classes live here so that a caller finds them in one place and can catch the whole family with one
`except OvmsNotebookError`. The modules that raise them re-export them under their former names
(`ovms_notebook.status.OvmsStatus`, `ovms_notebook.portability.handler.NotExportable`, ...), so old imports keep
working. This module imports nothing from the package: every layer may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import grpc

__all__ = [
    "CalculatorStatus",
    "ClientError",
    "ConfigError",
    "GraphConfigError",
    "GraphLoadError",
    "GraphRenderError",
    "InferenceError",
    "NotExportable",
    "OvmsNotebookError",
    "OvmsStatus",
    "PythonGraphArgumentError",
    "PythonGraphError",
    "PythonNodeError",
    "ServerError",
    "SessionLoadError",
]


class OvmsNotebookError(Exception):
    """Root of every error raised on purpose by ovms_notebook."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: one line, `ConfigError: <message>`, without the package's frames.

        The message already says what was expected and what came; frames inside
        the package would only bury it. Outside IPython the traceback is Python's
        usual one.
        """
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


# -- configuration and loading ---------------------------------------------------------------------------------------


class ConfigError(OvmsNotebookError):
    """A config.json or graph folder that cannot be read as OVMS would read it."""


class GraphLoadError(OvmsNotebookError):
    """A graph definition that failed validation; the reason says why."""


#: The first line of every graph-config validation failure, as MediaPipe's ValidatedGraphConfig prints it.
GRAPH_CONFIG_PREFIX = "ValidatedGraphConfig Initialization failed.\n"


class GraphConfigError(OvmsNotebookError, ValueError):
    """A graph config that cannot run on Python nodes: unknown calculator or tag, stream wiring, cycle."""

    def __init__(self, message: str) -> None:
        super().__init__(GRAPH_CONFIG_PREFIX + message)


class PythonNodeError(OvmsNotebookError, ValueError):
    """A Python node OVMS would refuse at graph load; `status` is the OVMS status code name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


#: The text OVMS gives a final status whose code has no gRPC mapping.
UNKNOWN_ERROR_TEXT = "Unknown error"


class _Code(Protocol):
    """What OvmsStatus reads of its code: `ovms_notebook.status.StatusCode` (not imported: this module is a leaf)."""

    @property
    def value(self) -> tuple[str, Any]: ...
    @property
    def message(self) -> str: ...
    @property
    def grpc_code(self) -> grpc.StatusCode: ...


# -- serving ---------------------------------------------------------------------------------------------------------


class ServerError(OvmsNotebookError):
    """The server could not start, bind or stop as asked."""


class OvmsStatus(OvmsNotebookError):
    """A failure with an OVMS status code (`ovms_notebook.status.StatusCode`), carried until the servicer reports it.

    `str()` is OVMS's `Status::string()`: the base message, then " - details".
    """

    def __init__(self, code: _Code, details: str = "") -> None:
        self.code = code
        self.details = details
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """The message OVMS would show for this status (in-band form)."""
        return f"{self.code.message} - {self.details}" if self.details else self.code.message

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The gRPC status code of this failure as a final status."""
        return self.code.grpc_code

    @property
    def grpc_details(self) -> str:
        """The final-status message: the text, or "Unknown error" for unmapped codes."""
        return self.text if self.code.value[1] is not None else UNKNOWN_ERROR_TEXT

    def in_band(self, context: str) -> str:
        """The text of an in-band stream error: `<status>; <context>`."""
        return f"{self.text}; {context}"


# -- running graphs and calculators ----------------------------------------------------------------------------------


class PythonGraphError(OvmsNotebookError, RuntimeError):
    """A Python graph failed or was misused; `code` is the absl status code name, the message MediaPipe's."""

    def __init__(self, message: str, code: str = "INTERNAL") -> None:
        super().__init__(message)
        self.code = code


class PythonGraphArgumentError(PythonGraphError, ValueError):
    """A PythonGraphError with INVALID_ARGUMENT status (the wheel raises ValueError for those)."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message, code)


class CalculatorStatus(OvmsNotebookError, RuntimeError):
    """A calculator failure with an absl code and MediaPipe's exact message (raised only outside a graph run)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


#: The text OVMS's OpenVINOModelServerSessionCalculator fails Open() with when its servable does not load.
SESSION_LOAD_FAILED = "OpenVINOModelServerSessionCalculator failed to load the model"


class SessionLoadError(OvmsNotebookError):
    """The session's servable cannot be loaded: OVMS's text, then why; `code` is the absl status of OVMS's Open()."""

    code = "FAILED_PRECONDITION"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{SESSION_LOAD_FAILED} ({reason})")
        self.reason = reason


class InferenceError(OvmsNotebookError):
    """An OpenVINOInferenceCalculator input, output or inference that does not fit the model."""

    code = "INVALID_ARGUMENT"


# -- client, export, drawing -----------------------------------------------------------------------------------------


class ClientError(OvmsNotebookError):
    """A client call failed; carries the gRPC code and message when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(f"[{code}] {message}" if code else message)


class NotExportable(OvmsNotebookError):
    """A Python calculator that cannot become an OVMS Python handler; `reasons` says every why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class GraphRenderError(OvmsNotebookError):
    """The `dot` binary failed or timed out while drawing a graph."""
