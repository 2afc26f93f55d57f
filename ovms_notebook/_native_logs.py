"""Native libraries' informational log lines, kept out of a notebook's output.

MediaPipe, TFLite and absl write straight to file descriptor 2 from C++:
`INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`, absl's
`WARNING: All log messages before absl::InitializeLog() is called are written to STDERR`,
`I0000 ... graph_profiler.cc:...] trace_log_path: ...`, `W0000 ...
inference_feedback_manager.cc:...] Feedback manager requires ...`. In a Jupyter
kernel that descriptor is the kernel's stderr pipe, so each line becomes a pink
stderr block that reads like an error. None of them can be switched off from
outside: the wheel's absl logging has no runtime setting (glog's
GLOG_minloglevel does not reach it) and TFLite's logger has none either.

So, inside a kernel only, fd 2 is replaced by a pipe whose reader (one daemon
thread for the process, `ovms-native-logs`) forwards every line to the
original fd 2 except the informational ones listed here: absl/glog INFO lines,
TFLite's `INFO:` lines, absl's pre-InitializeLog notice and known harmless
warnings. Every other line (warnings, errors, fatal messages, Python tracebacks
written to fd 2) passes unchanged. Outside a kernel (a terminal, the CLI,
pytest) nothing is replaced: a native abort's last words must not wait in a
pipe. `verbose_native_logs(True)` lets the informational lines through again.
`capture_native_logs()` takes the other lines written while it is open into a
list instead of the notebook's stderr, for a cell that explains them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import select
import sys
import threading
from collections.abc import Iterator

THREAD_NAME = "ovms-native-logs"
_MARKER = b"ovms-native-logs-marker-"

# absl / glog line prefix: severity letter, MMDD (absl before InitializeLog prints 0000), time, thread id, file:line]
_ABSL = rb"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\] "
INFORMATIONAL = re.compile(
    rb"|".join(
        [
            rb"I\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./+-]+:\d+\] ",  # absl/glog INFO
            rb"INFO: ",  # TFLite's own logger at INFO ("Created TensorFlow Lite XNNPACK delegate for CPU.")
            rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
            # Warnings that describe a normal run of the wheel's own graphs, not a problem of the user's.
            _ABSL + rb"Feedback manager requires a model with a single signature inference",
            _ABSL + rb"Using NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI",
            _ABSL + rb"OpenGL error checking is disabled",
            _ABSL + rb"Sets FaceBlendshapesGraph acceleration to xnnpack by default",
            # A FlowLimiterCalculator's FINISHED back edge fed by Python nodes arrives in the native part of a
            # split graph as an input stream, which MediaPipe notes "was not necessary to mark as a back edge".
            _ABSL + rb'Input Stream "[^"]*" for node with sorted index \d+ name \w+ is marked as a back edge, but its '
            rb"output stream is already available",
        ]
    )
)

_lock = threading.Lock()
_verbose = False
_installed: tuple[int, threading.Thread] | None = None  # (the original fd 2, the reader)
_capture: NativeLogCapture | None = None  # where lines go instead of fd 2 while capture_native_logs() is open
_marker_seen = threading.Condition(_lock)
_markers: set[bytes] = set()  # markers written by a closing capture that the reader has not reached yet


class NativeLogCapture:
    """The native log lines (warnings and errors; informational ones only when verbose) a `with` block caught."""

    MAX_LINES = 1000  # a bound: past it the oldest lines are dropped and counted

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0

    def _add(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8", "replace"))
        if len(self.lines) > self.MAX_LINES:
            del self.lines[0]
            self.dropped += 1

    def __repr__(self) -> str:
        return f"<NativeLogCapture: {len(self.lines)} lines>"


@contextlib.contextmanager
def capture_native_logs(timeout: float = 2.0) -> Iterator[NativeLogCapture]:
    """Collect the native log lines written while the block runs, instead of showing them as stderr.

    For a notebook cell that expects a native warning and explains it: the
    lines are in `.lines` after the block. When the block ends, everything
    written to fd 2 before that moment has been read (a marker line goes through
    the pipe; up to `timeout` seconds). Outside a kernel nothing is filtered, so
    nothing is captured and `.lines` stays empty.
    """
    global _capture
    capture = NativeLogCapture()
    with _lock:
        active = _installed is not None
        if active:
            _capture = capture
    try:
        yield capture
    finally:
        if active:
            marker = _MARKER + b"%d" % id(capture)
            with _lock:
                _markers.add(marker)
            _write(2, marker + b"\n")
            with _marker_seen:
                _marker_seen.wait_for(lambda: marker not in _markers, timeout)
                _markers.discard(marker)
                _capture = None


def verbose_native_logs(on: bool = True) -> None:
    """Let MediaPipe's, TFLite's and absl's informational log lines reach the notebook (`on=False`: hide them).

    By default a kernel shows only their warnings and errors. Outside a kernel
    nothing is hidden, so this changes nothing there.
    """
    global _verbose
    _verbose = bool(on)


def is_informational(line: bytes) -> bool:
    """Whether `line` (without its newline) is one of the native libraries' informational lines."""
    return INFORMATIONAL.match(line) is not None


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel whose stderr goes to the notebook (ipykernel's stream)."""
    return type(sys.stderr).__module__.startswith("ipykernel.")


def install() -> bool:
    """Filter fd 2 in a kernel (once per process); False when not in a kernel or already done."""
    global _installed
    with _lock:
        if _installed is not None or not in_kernel():
            return False
        original = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        thread = threading.Thread(target=_pump, args=(read_fd, original), name=THREAD_NAME, daemon=True)
        thread.start()
        _installed = (original, thread)
    atexit.register(uninstall)
    return True


def uninstall(timeout: float = 2.0) -> None:
    """Put the original fd 2 back; the reader forwards what is left in the pipe and ends."""
    global _installed
    with _lock:
        if _installed is None:
            return
        original, thread = _installed
        _installed = None
        os.dup2(original, 2)  # closes the pipe's last write end: the reader drains it and sees EOF
    thread.join(timeout)
    with contextlib.suppress(OSError):
        os.close(original)


def _pump(read_fd: int, out_fd: int) -> None:
    pending = b""
    try:
        while True:
            # A partial line (a prompt, a progress bar) goes out after 0.2 s without more bytes.
            ready, _, _ = select.select([read_fd], [], [], 0.2 if pending else None)
            if not ready:
                _write(out_fd, pending)
                pending = b""
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            _write(out_fd, b"".join(line + b"\n" for line in _route(lines)))
        _write(out_fd, pending)
    finally:
        os.close(read_fd)


def _route(lines: list[bytes]) -> list[bytes]:
    """The lines to forward to fd 2; the rest are dropped, or taken by an open capture."""
    shown = [line for line in lines if _verbose or not is_informational(line)]
    markers = {line for line in shown if line.startswith(_MARKER)}
    with _lock:
        if markers:
            _markers.difference_update(markers)
            _marker_seen.notify_all()
            shown = [line for line in shown if line not in markers]
        if _capture is None:
            return shown
        for line in shown:
            _capture._add(line)
    return []


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data) :]
        except OSError:
            return
