"""The outbox between a stream's graph and its writer: `put` never blocks (MediaPipe callbacks call it), the
bound (count or bytes) holds the reader back, `close()` drops what waits and wakes everyone."""

from __future__ import annotations

import threading

import pytest

from ovms_notebook.serving.outbox import Outbox


def test_put_never_blocks_past_the_bound_and_the_reader_waits_for_room():
    outbox: Outbox[int] = Outbox(max_items=3, max_bytes=1000)
    for number in range(5):  # past the bound: still accepted
        outbox.put(number, size=10)
    assert (len(outbox), outbox.bytes, outbox.peak_items) == (5, 50, 5)
    assert outbox.wait_for_room(timeout=0.05) is False  # 5 >= 3: no room
    room = threading.Event()
    waiter = threading.Thread(target=lambda: outbox.wait_for_room() and room.set())
    waiter.start()
    assert [outbox.get(), outbox.get()] == [0, 1]
    assert not room.wait(0.2)  # 3 left: still at the bound
    assert outbox.get() == 2
    waiter.join(10)
    assert room.is_set() and len(outbox) == 2


def test_the_byte_bound_holds_the_reader_back_too():
    outbox: Outbox[str] = Outbox(max_items=100, max_bytes=1 << 20)
    outbox.put("frame", size=1 << 20)
    assert outbox.wait_for_room(timeout=0.05) is False
    assert outbox.get() == "frame"
    assert outbox.wait_for_room(timeout=0.05) is True and outbox.bytes == 0


def test_close_drops_what_waits_and_wakes_the_writer_and_the_reader():
    outbox: Outbox[int] = Outbox(max_items=1)
    outbox.put(1)
    outbox.put(2)
    got: list = []
    writer = threading.Thread(target=lambda: got.append(outbox.get()))
    assert outbox.close() == 2
    writer.start()
    writer.join(10)
    assert got == [None] and outbox.get() is None
    assert outbox.wait_for_room() is False
    outbox.put(3)  # a late callback: dropped, never blocks
    assert len(outbox) == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_a_bound_is_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"max_pending_outputs must be an integer of at least 1, got "):
        Outbox(max_items=bad)
