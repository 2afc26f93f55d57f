"""MediaPipe's iris depth graph (gallery iris_depth_cpu): a JPEG file in, the distance to each iris out.

The graph reads the camera's focal length from the file's EXIF data (ImageFilePropertiesCalculator, whose
result is an output side packet set mid-run), decodes the file (OpenCvEncodedImageToImageFrameCalculator),
finds the face mesh and irises, and IrisToDepthCalculator turns each iris's size in pixels into a distance:
11.8 mm * sqrt(f^2 + r^2) / diameter, with f the focal length in pixels and r the iris centre's distance from
the image centre. The test photo is scikit-image's astronaut saved as a JPEG with EXIF data written here (a
4.3 mm lens, 26 mm in 35 mm terms, as a phone's); the expected depth is computed from the irises that
MediaPipe's iris tracking graph finds in the same decoded pixels.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

import ovms_notebook
from ovms_notebook.calculators.image_files import focal_length_pixels, image_file_properties
from ovms_notebook.client import StreamClient
from ovms_notebook.sources import astronaut

GALLERY = ovms_notebook.__path__[0] + "/examples/mediapipe"


def jpeg(pixels: np.ndarray, focal_mm: float | None = 4.3, focal_35mm: int | None = 26) -> bytes:
    """`pixels` as a JPEG file whose EXIF data gives the lens (None: leave that field out)."""
    exif = Image.Exif()
    fields = exif.get_ifd(0x8769)
    if focal_mm is not None:
        fields[0x920A] = TiffImagePlugin.IFDRational(round(focal_mm * 10), 10)
    if focal_35mm is not None:
        fields[0xA405] = focal_35mm
    fields[0xA002], fields[0xA003] = pixels.shape[1], pixels.shape[0]
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


@pytest.fixture(scope="module")
def server() -> Iterator[ovms_notebook.Server]:
    server = ovms_notebook.serve(GALLERY)
    yield server
    server.stop()


def outputs(client: StreamClient) -> dict[str, object]:
    end = client.close()
    assert end.text == "OK" and not client.errors, (end.text, [e.text for e in client.errors])
    found: dict[str, object] = {}
    for entry in client.responses:
        found.update(entry.values)
    return found


def test_the_focal_length_in_pixels_follows_the_35mm_equivalent() -> None:
    # diagonal 43.27 mm * 4.3 / 26 = 7.156 mm; a square sensor is 5.060 mm wide: 512 px * 4.3 / 5.060
    assert focal_length_pixels(512, 512, 26, 4.3) == pytest.approx(435.1163318, rel=1e-9)
    assert focal_length_pixels(480, 640, 26, 4.3) == focal_length_pixels(640, 480, 26, 4.3)  # the longer side
    properties = image_file_properties(jpeg(astronaut()))
    assert (properties.image_width, properties.image_height) == (512, 512)
    assert (properties.focal_length_mm, properties.focal_length_35mm) == (pytest.approx(4.3), 26)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x89PNG\r\n\x1a\n", "Error parsing EXIF, code: 1982"),  # not a JPEG
        (None, "Error parsing EXIF, code: 1983"),  # a JPEG without EXIF data
        (jpeg(astronaut()[:64, :64], focal_mm=None), "Focal length in mm should be non-zero"),
        (jpeg(astronaut()[:64, :64], focal_35mm=None), "Focal length in 35 mm should be non-zero"),
    ],
)
def test_a_file_without_the_lens_figures_fails_as_mediapipe_says(data: bytes | None, error: str) -> None:
    if data is None:
        plain = io.BytesIO()
        Image.fromarray(astronaut()[:64, :64]).save(plain, "JPEG")
        data = plain.getvalue()
    with pytest.raises(ValueError, match=error):
        image_file_properties(data)


def test_iris_depth_is_the_distance_at_which_the_found_irises_are_11_8_mm_wide(server) -> None:
    photo = jpeg(astronaut())
    client = StreamClient(server.address, "iris_depth_cpu")
    client.send({"input_image_bytes": np.array([photo], dtype=object)})
    depth = outputs(client)
    decoded = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    assert depth["output_image"].shape == decoded.shape  # type: ignore[attr-defined]

    tracking = StreamClient(server.address, "iris_tracking_cpu")
    tracking.send({"input_video": decoded})
    mesh = outputs(tracking)["face_landmarks_with_iris"]
    iris = [(p.x * 512, p.y * 512) for p in mesh.landmark[468:478]]  # type: ignore[attr-defined]
    focal = focal_length_pixels(512, 512, 26, 4.3)

    def expected(center: int, top: int, bottom: int, left: int, right: int) -> float:
        diameter = (math.dist(iris[top], iris[bottom]) + math.dist(iris[left], iris[right])) / 2
        off_axis = math.dist(iris[center], (256, 256))
        return 11.8 * math.sqrt(focal**2 + off_axis**2) / diameter

    left, right = float(depth["left_iris_depth_mm"][0]), float(depth["right_iris_depth_mm"][0])  # type: ignore[index]
    assert left == pytest.approx(expected(0, 2, 4, 3, 1), rel=1e-4)
    assert right == pytest.approx(expected(5, 7, 9, 6, 8), rel=1e-4)
    assert 300 < left < 1500 and 300 < right < 1500  # a face that fills a fifth of a phone photo: about an arm away
    changed = np.any(depth["output_image"] != decoded, axis=-1)  # type: ignore[call-overload]
    assert changed[60:200, 160:290].mean() > 0.05  # the mesh and the irises drawn on the face


def test_a_second_photo_on_the_same_stream_fails_as_in_mediapipe_one_per_stream(server) -> None:
    client = StreamClient(server.address, "iris_depth_cpu")
    for _ in range(2):
        client.send({"input_image_bytes": np.array([jpeg(astronaut())], dtype=object)})
    end = client.close()
    assert 'Output side packet "image_file_properties" was already set.' in end.text
    assert "ALREADY_EXISTS" in end.text


def test_model_infer_runs_a_fresh_graph_per_photo(server) -> None:
    """Unary ModelInfer (tritonclient, as OVMS's clients call it) builds a graph per request: the same photo twice
    gives the same depth twice, where one stream refuses a second photo."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(server.address)
    try:
        depths = []
        for _ in range(2):
            photo = triton.InferInput("input_image_bytes", [1], "BYTES")
            photo.set_data_from_numpy(np.array([jpeg(astronaut())], dtype=object))
            answer = client.infer("iris_depth_cpu", [photo],
                                  outputs=[triton.InferRequestedOutput("left_iris_depth_mm")])
            depths.append(float(answer.as_numpy("left_iris_depth_mm")[0]))
    finally:
        client.close()
    assert depths[0] == depths[1] and 300 < depths[0] < 1500
