"""A video for Chromium's fake camera: scikit-image's astronaut moving across the frame, as a .y4m file.

Chromium started with `--use-fake-device-for-media-stream --use-file-for-fake-video-capture=FILE.y4m`
plays FILE in a loop as its camera, so the live camera can be tested and measured without one:

    frames = moving_face_frames(60)                  # 640x480 RGB, the photo sliding left to right
    write_y4m("camera.y4m", frames, fps=30)
    frame_index(received_frame)                      # which of the frames a camera frame shows

Every frame carries its index in a strip of black and white blocks at its bottom-left corner (big
enough to survive I420 and JPEG), so whoever receives a camera frame knows which one it was and so
where the face should be.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

__all__ = ["INDEX_BITS", "frame_index", "moving_face_frames", "write_y4m"]

#: Blocks in the index strip: frame indices up to 2**INDEX_BITS - 1.
INDEX_BITS = 10
_BLOCK = (16, 24)  # height, width of one block in pixels
_MARGIN = 4


def moving_face_frames(count: int, size: tuple[int, int] = (480, 640), face_size: int = 440) -> list[np.ndarray]:
    """`count` RGB frames of `size` (height, width): the astronaut photo, `face_size` px square, sliding
    from the left edge to the right edge and back, on a grey background, with the frame index strip."""
    from ovms_notebook.sources import astronaut

    height, width = size
    if count < 1 or count >= 2**INDEX_BITS:
        raise ValueError(f"count must be from 1 to {2**INDEX_BITS - 1}, got {count}")
    if face_size > min(height, width) - _BLOCK[0] - 2 * _MARGIN:
        raise ValueError(f"face_size {face_size} does not fit a {width}x{height} frame with the index strip")
    photo = cv2.resize(astronaut(), (face_size, face_size), interpolation=cv2.INTER_AREA)
    travel = width - face_size
    top = (height - _BLOCK[0] - 2 * _MARGIN - face_size) // 2
    frames = []
    for index in range(count):
        phase = index / count
        left = round(travel * (1 - abs(1 - 2 * phase)))  # 0 -> travel -> 0 over the loop
        frame = np.full((height, width, 3), 128, np.uint8)
        frame[top : top + face_size, left : left + face_size] = photo
        _stamp(frame, index)
        frames.append(frame)
    return frames


def _stamp(frame: np.ndarray, index: int) -> None:
    block_h, block_w = _BLOCK
    y = frame.shape[0] - block_h - _MARGIN
    for bit in range(INDEX_BITS):
        x = _MARGIN + bit * block_w
        frame[y : y + block_h, x : x + block_w] = 255 if index >> bit & 1 else 0


def frame_index(frame: np.ndarray) -> int:
    """The index a `moving_face_frames` frame carries (read from the block centres; RGB or grey)."""
    block_h, block_w = _BLOCK
    y = frame.shape[0] - block_h - _MARGIN + block_h // 2
    value = 0
    for bit in range(INDEX_BITS):
        x = _MARGIN + bit * block_w + block_w // 2
        patch = frame[y - 3 : y + 4, x - 4 : x + 5]
        value |= int(patch.mean() > 128) << bit
    return value


def write_y4m(path: str | Path, frames: Iterable[np.ndarray], fps: int = 30) -> Path:
    """Write RGB uint8 frames (all one size, even sides) as a YUV4MPEG2 file with I420 planes."""
    path = Path(path)
    with path.open("wb") as out:
        size = None
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be RGB uint8 [height, width, 3], got {frame.dtype} {frame.shape}")
            if size is None:
                size = frame.shape[:2]
                if size[0] % 2 or size[1] % 2:
                    raise ValueError(f"I420 needs even sides, got {size[1]}x{size[0]}")
                out.write(f"YUV4MPEG2 W{size[1]} H{size[0]} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            elif frame.shape[:2] != size:
                raise ValueError(f"every frame must be {size[1]}x{size[0]}, got {frame.shape[1]}x{frame.shape[0]}")
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
        if size is None:
            raise ValueError("no frames to write")
    return path
