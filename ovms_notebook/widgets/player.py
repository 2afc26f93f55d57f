"""Play frames into a console's stream at a chosen rate, with Play/Pause and progress.

    player = FramePlayer(console, lambda: pan_zoom(astronaut(), 100, (480, 640)), fps=15)
    player.play(); player.wait(30)

A source is a list of arrays, an iterable or generator (played once), a callable returning a fresh
iterator (replayable: Play after the end starts over), or a video file path (read with OpenCV). Frames
go out on one daemon thread, "ovms-widget-player", through `console.send`, so they show in the
console's log, live outputs and timeline like any request. At most `max_in_flight` requests wait for
an answer at a time, so a fast source never floods a slow graph; a frame the graph answers with
nothing (face_detection without a face) holds the next one back `stall` seconds at most. At fps=0
the player also waits until the request sent two before has been answered and drawn by the live
view (`_VIEW_STALL` s at most), so what the graph answers is shown rather than flooded past.
"""

from __future__ import annotations

import collections.abc
import html
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np

from ovms_notebook.widgets.editors import IMAGE_KINDS
from ovms_notebook.widgets.lifecycle import Composite, close_all, replace_previous, weakly
from ovms_notebook.widgets.render import THREAD_PREFIX

__all__ = ["FramePlayer"]

_RED, _GREY = "#b91c1c", "#6b7280"
_VIEW_LAG = 2  # at fps=0, requests sent beyond the newest one answered and drawn by the live view
_VIEW_STALL = 0.1  # seconds a request without an answer holds the player back at fps=0
FrameSource = Iterable[np.ndarray] | Callable[[], Iterator[np.ndarray]] | str | Path


class FramePlayer(Composite):
    """Play/Pause a frame source into `console`'s current stream on input stream `input_name`.

    `input_name` defaults to the graph's first image input (else its first input). `fps` is the pace;
    0 means as fast as the stream answers and the console's live view shows the answers (so a
    tracking graph can be watched frame by frame rather than flooded past what can be drawn).
    Other inputs of the graph get their editors' values. The player shows where its frames go and, under its
    controls, the console's live view (`show_outputs=False` leaves it to the console). A second player on the
    same console replaces the first; `close()` (or closing the console) stops the player thread.
    """

    def __init__(self, console: Any, frames: FrameSource, *, input_name: str | None = None, fps: float = 15.0,
                 max_in_flight: int = 4, stall: float = 0.25, show_outputs: bool = True) -> None:
        if fps < 0:
            raise ValueError(f"fps must be >= 0 (0: as fast as the stream answers), got {fps}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.console = console
        self.input_name = input_name or _default_input(console)
        self.max_in_flight = max_in_flight
        self.stall = stall
        self._source = frames
        self._length = len(frames) if isinstance(frames, collections.abc.Sized) else None
        self._iterator: Iterator[np.ndarray] | None = None
        self.sent = 0
        self.finished = False
        self.play_button = widgets.ToggleButton(value=False, description="Play", icon="play",
                                                tooltip="play the frames into the stream / pause")
        self.progress = widgets.IntProgress(value=0, min=0, max=max(1, self._length or 1),
                                            layout=widgets.Layout(width="14em"))
        self.progress_label = widgets.HTML(self._progress_text())
        self.rate = widgets.FloatSlider(value=fps, min=0.0, max=max(60.0, fps), step=0.5, description="fps",
                                        tooltip="frames per second (0: as fast as the stream answers)")
        self.output = widgets.Output()
        graph = console.client.graph if console.client is not None else console.graph_picker.value
        self.destination = widgets.HTML(
            f'<span style="font-size:12px;color:{_GREY}">frames go to input stream <code>{html.escape(self.input_name)}'
            f"</code> of <code>{html.escape(str(graph))}</code> on the console's stream"
            + (": its live view is below" if show_outputs else "; the console shows the answers") + "</span>")
        controls = widgets.HBox([self.play_button, self.progress, self.progress_label, self.rate])
        self.box = widgets.VBox([controls, self.destination, self.output,
                                 *([console.outputs.box] if show_outputs else [])])
        self._runs: list[tuple[threading.Event, threading.Thread]] = []
        self._own(_release, self._runs, [controls, self.destination, self.output], self.box)
        self._lock = threading.Lock()
        self._answers = threading.Condition()
        self._answer_state: tuple[Any, int, set[int], int] = (None, -1, set(), 0)  # client, max ts, errors, count
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._quiet = False
        self.play_button.observe(weakly(self._on_toggle), names="value")
        console.players.add(self)
        replace_previous(("player", console.address, str(graph)), self)

    # -- control ----------------------------------------------------------------------------------------------

    def play(self) -> None:
        """Start (or resume) playing on the player thread; after the end, a replayable source starts over."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self.finished or self._iterator is None:
                if self._iterator is not None and not self._replayable():
                    self._set_status("the source has no more frames (a generator plays once)", _GREY)
                    self._toggle(False)
                    return
                self._iterator = self._open()
                self.finished, self.sent = False, 0
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name=f"{THREAD_PREFIX}player",
                                            daemon=True)
            self._runs[:] = [(s, t) for s, t in self._runs if t.is_alive()] + [(self._stop, self._thread)]
            self._thread.start()
        self._toggle(True)

    def pause(self) -> None:
        """Stop after the frame being sent; Play resumes with the next frame."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._toggle(False)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the player stops (the end, a pause or an error); True if it did within `timeout` s."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def playing(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    # -- the player thread ------------------------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        try:
            others = {name: editor.value for name, editor in self.console.editors.items()
                      if name != self.input_name and editor.include.value}
            pending: deque[tuple[int, int | None]] = deque()  # (seq, timestamp) of unanswered requests
            recent: deque[int | None] = deque(maxlen=_VIEW_LAG)  # timestamps of the last requests
            due = time.monotonic()
            assert self._iterator is not None
            while not stop.is_set():
                frame = next(self._iterator, None)
                if frame is None:
                    self.finished = True
                    break
                self._hold_back(pending, recent, stop)
                if self.rate.value == 0:
                    self._wait_for_view(recent)
                entry = self.console.send({**others, self.input_name: frame})
                pending.append((entry.seq, entry.timestamp))
                recent.append(entry.timestamp)
                self.sent += 1
                self._show_progress()
                rate = self.rate.value
                if rate > 0:
                    now = time.monotonic()
                    due = max(due + 1.0 / rate, now - 1.0 / rate)  # catch up at most one frame late
                    if due > now:
                        stop.wait(due - now)
        except Exception as error:
            self._set_status(f"stopped: {error}", _RED)
            self.output.append_stderr(traceback.format_exc())
        else:
            self._show_progress()
        finally:
            self._toggle(False)

    def _hold_back(self, pending: deque[tuple[int, int | None]], recent: deque[int | None],
                   stop: threading.Event) -> None:
        """Wait while `max_in_flight` requests are unanswered (at most `stall` s for the oldest one)."""
        client = self.console.client
        with self._answers:
            if self._answer_state[0] is not client and client is not None:
                self._answer_state = (client, -1, set(), 0)  # a new stream (New stream while playing)
                pending.clear()
                recent.clear()
                for register in (client.on_response, client.on_error):
                    register(lambda entry, client=client: self._on_answer(client, entry))
        deadline = time.monotonic() + self.stall
        with self._answers:
            while pending and not stop.is_set():
                _, latest, errors, count = self._answer_state
                while pending and _answered(pending[0], latest, errors, count, self.sent - len(pending)):
                    pending.popleft()
                remaining = deadline - time.monotonic()
                if len(pending) < self.max_in_flight or remaining <= 0 or client is None or client.ended:
                    if remaining <= 0 and pending:
                        pending.popleft()  # the graph answered nothing: stop waiting for it
                    return
                self._answers.wait(min(remaining, 0.05))

    def _wait_for_view(self, recent: deque[int | None]) -> None:
        """As fast as possible means as fast as the live view shows the answers: before sending, the
        request sent `_VIEW_LAG` requests ago must be answered and drawn. A request the graph answers
        with nothing (or not within `_VIEW_STALL` s) does not hold the player back any longer."""
        if len(recent) < _VIEW_LAG or recent[0] is None:
            return
        target = recent[0]
        deadline = time.monotonic() + _VIEW_STALL
        with self._answers:
            while self._answer_state[1] < target and (remaining := deadline - time.monotonic()) > 0:
                self._answers.wait(remaining)
            answered = self._answer_state[1] >= target
        if answered:
            self.console.outputs.wait_drawn(target, timeout=max(0.0, deadline - time.monotonic()) + _VIEW_STALL)

    def _on_answer(self, client: Any, entry: Any) -> None:
        """Client reader thread: note what has been answered; only notifies."""
        with self._answers:
            current, latest, errors, count = self._answer_state
            if current is not client:
                return
            if entry.kind == "response" and entry.timestamp is not None:
                latest = max(latest, entry.timestamp)
            elif entry.kind == "error" and entry.request_seq is not None:
                errors = {*errors, entry.request_seq}
            self._answer_state = (current, latest, errors, count + 1)
            self._answers.notify_all()

    # -- helpers ----------------------------------------------------------------------------------------------

    def _replayable(self) -> bool:
        return callable(self._source) or isinstance(self._source, str | Path | collections.abc.Sequence)

    def _open(self) -> Iterator[np.ndarray]:
        source = self._source
        if isinstance(source, str | Path):
            from ovms_notebook.sources import video_file_frames

            return video_file_frames(source)
        if callable(source):
            return iter(source())
        return iter(source)

    def _toggle(self, value: bool) -> None:
        """Set the toggle and its label: "Pause" while playing, "Play" otherwise (also after a click set it)."""
        self._quiet = True
        try:
            with self.play_button.hold_sync():
                self.play_button.value = value
                self.play_button.description = "Pause" if value else "Play"
                self.play_button.icon = "pause" if value else "play"
        finally:
            self._quiet = False

    def _on_toggle(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        try:
            if change["new"]:
                self.play()
            else:
                self.pause()
        except Exception:
            self.output.append_stderr(traceback.format_exc())

    def _progress_text(self) -> str:
        total = f" / {self._length}" if self._length is not None else ""
        state = " · done" if self.finished else ""
        return f'<span style="font-size:12px">{self.sent}{total} frames sent{state}</span>'

    def _show_progress(self) -> None:
        with self.box.hold_sync():
            if self._length is None:
                self.progress.max = max(self.progress.max, self.sent)
            self.progress.value = min(self.sent, self.progress.max)
            self.progress_label.value = self._progress_text()

    def _set_status(self, text: str, colour: str) -> None:
        self.progress_label.value = f'<span style="font-size:12px;color:{colour}">{html.escape(text)}</span>'

    def __repr__(self) -> str:
        return (f"<FramePlayer {self.input_name!r}: {self.sent} frames sent, "
                f"{'playing' if self.playing else 'done' if self.finished else 'paused'}>")


def _answered(request: tuple[int, int | None], latest: int, errors: set[int], count: int, before: int) -> bool:
    seq, timestamp = request
    if seq in errors:
        return True
    if timestamp is not None:
        return timestamp <= latest
    return count > before  # wallclock timestamps: count answers instead


def _default_input(console: Any) -> str:
    editors = console.editors
    for name, editor in editors.items():
        if editor.kind in IMAGE_KINDS:
            return name
    if editors:
        return next(iter(editors))
    raise ValueError("the console's graph has no input stream to play frames into; pass input_name")


def _release(runs: list[tuple[threading.Event, threading.Thread]], parts: list[widgets.Widget],
             box: widgets.Box) -> None:
    """The player's finalizer: stop and join its thread, close its own widgets (not the console's live view)."""
    for stop, _ in runs:
        stop.set()
    for _, thread in runs:
        if thread is not threading.current_thread():
            thread.join(timeout=10)
    close_all(parts)
    box.close()
