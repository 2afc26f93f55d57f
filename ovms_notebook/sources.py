"""Frame sources for tests, widgets and notebooks: real photos, synthetic camera
moves, test patterns and video files, with no download.

Every function returns RGB ``uint8`` arrays of shape (H, W, 3), C-contiguous,
which is what an ``IMAGE:`` input of a graph takes as a KServe ``UINT8``
tensor. Sizes are always given as ``(height, width)``, like numpy shapes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "ASTRONAUT_FACE",
    "astronaut",
    "pan_zoom",
    "test_pattern",
    "video_file_frames",
    "write_video",
]

#: Centre of the face in :func:`astronaut`, as (y, x) fractions of the image;
#: pass it as ``focus`` to :func:`pan_zoom` to keep the face in every frame.
ASTRONAUT_FACE: tuple[float, float] = (0.26, 0.44)

# Middle of the upper third: where portraits (the astronaut included) put the face.
_DEFAULT_FOCUS = (1.0 / 3.0, 0.5)

PatternKind = Literal["gradient", "checker", "bars"]

# Colour bars in the classic SMPTE order: white, yellow, cyan, green, magenta, red, blue (75 %).
_BARS = np.array(
    [[191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0], [191, 0, 191], [191, 0, 0], [0, 0, 191]],
    dtype=np.uint8,
)

# Writers that work in opencv-python's bundled FFmpeg (avc1/H.264 has no encoder there).
_FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".avi": "MJPG"}


def astronaut() -> np.ndarray:
    """Return scikit-image's astronaut photo (512x512 RGB uint8): a real face, shipped offline."""
    from skimage import data  # imported lazily: scikit-image is a test/notebook extra

    return np.ascontiguousarray(data.astronaut(), dtype=np.uint8)


def pan_zoom(
    image: np.ndarray,
    n_frames: int,
    size: tuple[int, int] = (320, 320),
    *,
    zoom: tuple[float, float] = (1.0, 1.6),
    cut: tuple[int, int] | None = None,
    focus: tuple[float, float] | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` frames of a synthetic camera that pans and zooms over ``image``.

    The camera zooms smoothly from ``zoom[0]`` to ``zoom[1]`` and back while it
    sways sideways and up and down around ``focus`` ((y, x) fractions of the
    image; by default the middle of the upper third, where a portrait puts the
    face), always staying inside the photo. A real
    photo moving like a video exercises tracking graphs the way a still frame
    cannot. ``cut=(start, stop)`` replaces frames ``start..stop-1`` with a
    fixed view of the image corner farthest from ``focus`` at ``zoom[1]``: a
    scene cut where the subject leaves and comes back. The output is fully
    deterministic.

    Args:
        image: RGB uint8 array (H, W, 3), e.g. :func:`astronaut`.
        n_frames: number of frames to yield (>= 0).
        size: (height, width) of every frame.
        zoom: (start, peak) magnification; 1.0 is the largest view of the
            output's aspect ratio that fits in the image.
        cut: optional half-open frame range [start, stop) showing the far corner.
        focus: (y, x) fractions of the image that the camera moves around;
            ``None`` means (1/3, 1/2).
    """
    src = _check_rgb(image, "image")
    height, width = _check_size(size)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if not (zoom[0] >= 1.0 and zoom[1] >= 1.0):
        raise ValueError(f"zoom factors must be >= 1.0, got {zoom}")
    if cut is not None and not (0 <= cut[0] <= cut[1]):
        raise ValueError(f"cut must be (start, stop) with 0 <= start <= stop, got {cut}")
    fy, fx = focus if focus is not None else _DEFAULT_FOCUS
    if not (0.0 <= fy <= 1.0 and 0.0 <= fx <= 1.0):
        raise ValueError(f"focus must be (y, x) fractions in [0, 1], got {focus}")

    img_h, img_w = src.shape[:2]
    aspect = width / height
    # Largest window with the output's aspect ratio that fits in the image (zoom 1).
    base_h = min(img_h, img_w / aspect)
    focus_y, focus_x = fy * img_h, fx * img_w
    # The cut shows the corner farthest from the focus (bottom-right on ties).
    far_y = 0.0 if focus_y > img_h / 2 else float(img_h)
    far_x = 0.0 if focus_x > img_w / 2 else float(img_w)

    for index in range(n_frames):
        if cut is not None and cut[0] <= index < cut[1]:
            yield _view(src, far_y, far_x, base_h / zoom[1], aspect, height, width)
            continue
        phase = index / (n_frames - 1) if n_frames > 1 else 0.0
        z = zoom[0] + (zoom[1] - zoom[0]) * (1.0 - math.cos(2.0 * math.pi * phase)) / 2.0
        crop_h = base_h / z
        crop_w = crop_h * aspect
        # Sway by up to 30 % of the free room sideways and 20 % of it vertically.
        centre_x = focus_x + 0.3 * (img_w - crop_w) * math.sin(2.0 * math.pi * phase)
        centre_y = focus_y + 0.2 * (img_h - crop_h) * math.sin(4.0 * math.pi * phase)
        yield _view(src, centre_y, centre_x, crop_h, aspect, height, width)


def test_pattern(kind: PatternKind, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """Return a synthetic RGB uint8 test image of ``size`` (height, width).

    ``"gradient"``: red rises left to right, green top to bottom, blue is the
    opposite diagonal (every pixel differs, so flips and crops show).
    ``"checker"``: black and white squares, 8 across the shorter side.
    ``"bars"``: seven vertical SMPTE colour bars.
    """
    height, width = _check_size(size)
    if kind == "gradient":
        xs = np.linspace(0.0, 255.0, width)[None, :]
        ys = np.linspace(0.0, 255.0, height)[:, None]
        red = np.broadcast_to(xs, (height, width))
        green = np.broadcast_to(ys, (height, width))
        blue = 255.0 - (red + green) / 2.0
        return np.ascontiguousarray(np.rint(np.stack([red, green, blue], axis=-1)).astype(np.uint8))
    if kind == "checker":
        square = max(1, min(height, width) // 8)
        rows = (np.arange(height) // square)[:, None]
        cols = (np.arange(width) // square)[None, :]
        cells = ((rows + cols) % 2 * 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(cells[:, :, None], 3, axis=2))
    if kind == "bars":
        bar = (np.arange(width) * len(_BARS)) // width
        return np.ascontiguousarray(np.broadcast_to(_BARS[bar][None, :, :], (height, width, 3)))
    raise ValueError(f"kind must be 'gradient', 'checker' or 'bars', got {kind!r}")


test_pattern.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def video_file_frames(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video file as RGB uint8 arrays, at most ``max_frames``.

    OpenCV decodes to BGR; frames are converted so they can go straight into
    an ``IMAGE:`` input. Raises ``FileNotFoundError`` for a missing file and
    ``OSError`` when OpenCV cannot open it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise OSError(f"OpenCV cannot open {path} as a video")
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            count += 1
    finally:
        capture.release()


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0) -> int:
    """Write RGB uint8 frames to ``path`` and return how many were written.

    The container follows the suffix: ``.mp4`` uses the ``mp4v`` codec,
    ``.avi`` uses ``MJPG``; both are lossy (a few grey levels on a photo) and
    both encoders ship in opencv-python's FFmpeg, H.264 (``avc1``) does not. Every frame must
    have the size of the first. Lets tests and notebooks make a real video
    file without downloading one.
    """
    path = Path(path)
    fourcc = _FOURCC_BY_SUFFIX.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(f"video path must end in .mp4 or .avi, got {path.name!r}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    writer: cv2.VideoWriter | None = None
    shape: tuple[int, ...] | None = None
    count = 0
    try:
        for frame in frames:
            rgb = _check_rgb(frame, f"frame {count}")
            if writer is None:
                shape = rgb.shape
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (shape[1], shape[0]))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {path} with fourcc {fourcc!r}")
            elif rgb.shape != shape:
                raise ValueError(f"frame {count} has shape {rgb.shape}, expected {shape} like the first frame")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError("write_video needs at least one frame")
    return count


def _view(
    src: np.ndarray, centre_y: float, centre_x: float, crop_h: float, aspect: float, height: int, width: int
) -> np.ndarray:
    """Resample the window of height ``crop_h`` around (centre_y, centre_x), kept inside ``src``."""
    img_h, img_w = src.shape[:2]
    crop_w = crop_h * aspect
    top = min(max(centre_y - crop_h / 2.0, 0.0), img_h - crop_h)
    left = min(max(centre_x - crop_w / 2.0, 0.0), img_w - crop_w)
    scale = height / crop_h
    # Maps source pixel coordinates to output pixel coordinates (sub-pixel, so motion is smooth).
    matrix = np.array([[scale, 0.0, -left * scale], [0.0, scale, -top * scale]], dtype=np.float64)
    frame = cv2.warpAffine(src, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(frame)


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    """Return ``image`` as a contiguous array after checking it is RGB uint8 (H, W, 3)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{what} must be an RGB uint8 array of shape (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    """Return ``size`` as two positive ints (height, width)."""
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be (height, width) with both > 0, got {size}")
    return height, width
