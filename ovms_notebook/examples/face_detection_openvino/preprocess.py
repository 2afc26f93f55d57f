"""Face detection pre-processing as MediaPipe's ImageToTensorCalculator does it on CPU.

The whole image, letterboxed (aspect ratio kept, zero border) to 128x128 with
OpenCV's bilinear warp on the uint8 pixels, then scaled to [-1, 1]: the input
of face_detection_short_range. An OVMS Python node handler: runs unchanged on
OpenVINO Model Server and in ovms_notebook.
"""

import cv2
import numpy as np

from pyovms import Tensor

SIZE = 128


def letterbox_roi(width: int, height: int) -> tuple[float, float]:
    """The ROI (width, height) around the image centre that has the tensor's aspect ratio (MediaPipe's PadRoi)."""
    if height / width < 1.0:  # wider than tall: pad top and bottom
        return float(width), float(width)
    return float(height), float(height)


def to_tensor(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB -> float32 1x128x128x3 in [-1, 1], pixel for pixel as ImageToTensorCalculator."""
    height, width = image.shape[:2]
    roi_width, roi_height = letterbox_roi(width, height)
    box = cv2.boxPoints(((width / 2.0, height / 2.0), (roi_width, roi_height), 0.0))
    corners = np.array([[0, SIZE], [0, 0], [SIZE, 0], [SIZE, SIZE]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(box.astype(np.float32), corners)
    warped = cv2.warpPerspective(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0, 0.0))
    tensor = warped.astype(np.float32) * np.float32(2.0 / 255.0) + np.float32(-1.0)
    return tensor[np.newaxis]


class OvmsPythonModel:
    def execute(self, inputs: list) -> list:
        image = np.asarray(inputs[0])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a UINT8 image of shape [height, width, 3], got {image.dtype} {image.shape}")
        return [Tensor("input_tensor", np.ascontiguousarray(to_tensor(image)))]
