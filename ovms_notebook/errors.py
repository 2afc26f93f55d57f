"""The exception hierarchy of ovms_notebook: one root, narrow subclasses."""

from __future__ import annotations


class OvmsNotebookError(Exception):
    """Root of every error raised on purpose by ovms_notebook."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: one line, `ConfigError: <message>`, without the package's frames.

        The message already says what was expected and what came; frames inside
        the package would only bury it. Outside IPython the traceback is Python's
        usual one.
        """
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


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
