"""Frame sources give well-formed, deterministic RGB frames, and the pan/zoom
video's scene cut really removes the face (checked with the wheel's face detector)."""

from __future__ import annotations

import os
from pathlib import Path

import mediapipe as mp
import numpy as np
import pytest
from mediapipe.python import packet_creator, packet_getter

from ovms_notebook import sources
from ovms_notebook.sources import ASTRONAUT_FACE, astronaut, pan_zoom, test_pattern, video_file_frames, write_video

FACE_DETECTION = """
input_stream: "IMAGE:image"
output_stream: "detections"
node {
  calculator: "FaceDetectionShortRangeCpu"
  input_stream: "IMAGE:image"
  output_stream: "DETECTIONS:detections"
}
"""


def faces_per_frame(frames: list[np.ndarray]) -> list[int]:
    """Run FaceDetectionShortRangeCpu over frames (timestamps 0..n-1); 0 where it emits nothing."""
    mp.resource_util.set_resource_dir(os.path.dirname(os.path.dirname(mp.__file__)))
    graph = mp.CalculatorGraph(graph_config=FACE_DETECTION)
    packets: dict[int, mp.Packet] = {}
    graph.observe_output_stream("detections", lambda _, packet: packets.__setitem__(packet.timestamp.value, packet))
    graph.start_run()
    for timestamp, frame in enumerate(frames):
        image = packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=frame)
        graph.add_packet_to_input_stream("image", image, timestamp)
    graph.close()
    return [len(packet_getter.get_proto_list(packets[t])) if t in packets else 0 for t in range(len(frames))]


def assert_rgb(frame: np.ndarray, shape: tuple[int, int]) -> None:
    assert frame.dtype == np.uint8
    assert frame.shape == (*shape, 3)
    assert frame.flags.c_contiguous


def test_astronaut_is_the_512_pixel_rgb_photo() -> None:
    image = astronaut()
    assert_rgb(image, (512, 512))
    assert image.std() > 40  # a photo, not a flat image


@pytest.mark.parametrize("size", [(320, 320), (240, 320), (320, 240), (17, 31)])
def test_pan_zoom_yields_n_frames_of_the_requested_size(size: tuple[int, int]) -> None:
    frames = list(pan_zoom(astronaut(), 12, size))
    assert len(frames) == 12
    for frame in frames:
        assert_rgb(frame, size)


def test_pan_zoom_is_deterministic_and_moves() -> None:
    first = list(pan_zoom(astronaut(), 20, cut=(5, 8)))
    second = list(pan_zoom(astronaut(), 20, cut=(5, 8)))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # The camera moves between consecutive frames, except inside the cut (one fixed view).
    moving = [not np.array_equal(first[i], first[i + 1]) for i in range(19)]
    assert moving == [i not in (5, 6) for i in range(19)]


def test_pan_zoom_starts_at_the_first_zoom_and_stays_inside_the_photo() -> None:
    image = astronaut()
    frame = next(pan_zoom(image, 10, (512, 512), zoom=(1.0, 2.0)))
    np.testing.assert_array_equal(frame, image)  # zoom 1 on a square photo shows all of it


def test_pan_zoom_rejects_bad_arguments() -> None:
    image = astronaut()
    with pytest.raises(ValueError, match="n_frames"):
        list(pan_zoom(image, -1))
    with pytest.raises(ValueError, match="zoom"):
        list(pan_zoom(image, 3, zoom=(0.5, 1.0)))
    with pytest.raises(ValueError, match="cut"):
        list(pan_zoom(image, 3, cut=(3, 1)))
    with pytest.raises(ValueError, match="uint8"):
        list(pan_zoom(image.astype(np.float32), 3))


@pytest.mark.parametrize("focus", [None, ASTRONAUT_FACE])
@pytest.mark.parametrize("size", [(320, 320), (240, 320), (320, 240)])
def test_pan_zoom_cut_frames_have_no_face_and_all_others_have_one(
    size: tuple[int, int], focus: tuple[float, float] | None
) -> None:
    frames = list(pan_zoom(astronaut(), 60, size, cut=(40, 45), focus=focus))
    assert faces_per_frame(frames) == [0 if 40 <= i < 45 else 1 for i in range(60)]


def test_test_pattern_kinds_have_their_documented_pixels() -> None:
    gradient = test_pattern("gradient", (100, 200))
    checker = test_pattern("checker", (80, 80))
    bars = test_pattern("bars", (10, 70))
    for image, shape in [(gradient, (100, 200)), (checker, (80, 80)), (bars, (10, 70))]:
        assert_rgb(image, shape)
    assert tuple(gradient[0, 0]) == (0, 0, 255)
    assert tuple(gradient[-1, -1]) == (255, 255, 0)
    assert len(np.unique(gradient.reshape(-1, 3), axis=0)) > 1000
    assert tuple(checker[0, 0]) == (0, 0, 0)
    assert tuple(checker[0, 10]) == (255, 255, 255)  # 8 squares of 10 px across 80 px
    assert tuple(checker[10, 10]) == (0, 0, 0)
    assert [tuple(bars[0, x]) for x in range(5, 70, 10)] == [tuple(c) for c in sources._BARS]


def test_test_pattern_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="'noise'"):
        test_pattern("noise", (10, 10))  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_video_write_then_read_round_trips_every_frame(tmp_path: Path, suffix: str) -> None:
    frames = list(pan_zoom(astronaut(), 24, (240, 320)))
    path = tmp_path / f"clip{suffix}"
    assert write_video(path, frames, fps=24) == 24
    decoded = list(video_file_frames(path))
    assert len(decoded) == 24
    for original, back in zip(frames, decoded, strict=True):
        assert_rgb(back, (240, 320))
        # Lossy codecs: measured 2.5-4 grey levels on average; a BGR swap would be off by ~17.
        assert np.abs(original.astype(int) - back.astype(int)).mean() < 6.0
    assert len(list(video_file_frames(path, max_frames=5))) == 5


def test_video_round_trip_keeps_channel_order(tmp_path: Path) -> None:
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    path = tmp_path / "red.avi"
    write_video(path, [red] * 3)
    for frame in video_file_frames(path):
        assert frame[..., 0].mean() > 180
        assert frame[..., 2].mean() < 20


def test_video_helpers_reject_bad_input(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(video_file_frames(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match=r"\.mp4 or \.avi"):
        write_video(tmp_path / "clip.mkv", [astronaut()])
    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "empty.avi", [])
    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "mixed.avi", [astronaut(), test_pattern("bars", (10, 10))])
