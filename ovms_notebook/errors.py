"""The exception hierarchy of ovms_notebook: one root, narrow subclasses."""

from __future__ import annotations


class OvmsNotebookError(Exception):
    """Root of every error raised on purpose by ovms_notebook."""


class ConfigError(OvmsNotebookError):
    """A config.json or graph folder that cannot be read as OVMS would read it."""


class GraphLoadError(OvmsNotebookError):
    """A graph definition that failed validation; the reason says why."""


class ServerError(OvmsNotebookError):
    """The server could not start, bind or stop as asked."""


class ClientError(OvmsNotebookError):
    """A client call failed; carries the gRPC code and message when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(f"[{code}] {message}" if code else message)
