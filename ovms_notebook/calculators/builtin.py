"""The one place that registers the calculator library: `register_builtin(registry)`.

Every built-in calculator is named here, by class: adding one means importing its module below and
listing the class. The package top installs this function as the default registry's loader
(`Registry.set_loader`), so it runs the first time a graph looks a calculator up; a module that fails
to import fails that lookup with its own ImportError instead of hiding the calculator.
"""

from __future__ import annotations

from ovms_notebook.calculators import (
    detections,
    hand_tensors,
    image_files,
    iris,
    labels,
    openvino,
    ovms_python,
    pose_tensors,
    recolor,
    render,
    render_shapes,
    switch,
    tensor_plumbing,
    tensors,
    tflite,
    tracking,
)
from ovms_notebook.engine.python.api import Calculator, Registry

#: Built-in calculators registered under their class name (MediaPipe's name for the C++ calculator).
BY_CLASS_NAME: tuple[type[Calculator], ...] = (
    # MediaPipe's tracking and rendering calculators the mediapipe wheel lacks
    tracking.DetectionTrackerCalculator,
    render.LandmarksToRenderDataCalculator,
    render.RectToRenderScaleCalculator,
    render.SetLandmarkVisibilityCalculator,
    render.ConcatenateNormalizedLandmarkListCalculator,
    render.ConcatenateLandmarkListCalculator,
    render_shapes.DetectionsToRenderDataCalculator,
    render_shapes.RectToRenderDataCalculator,
    render_shapes.FaceLandmarksToRenderDataCalculator,
    iris.UpdateFaceLandmarksCalculator,
    iris.IrisToRenderDataCalculator,
    iris.IrisToDepthCalculator,
    image_files.ImageFilePropertiesCalculator,
    image_files.OpenCvEncodedImageToImageFrameCalculator,
    recolor.RecolorCalculator,
    labels.LabelsToRenderDataCalculator,
    # TFLite inference and its tensor plumbing
    tflite.ImageCroppingCalculator,
    tflite.TfLiteConverterCalculator,
    tflite.TfLiteInferenceCalculator,
    tflite.SplitTfLiteTensorVectorCalculator,
    tflite.TfLiteTensorsToLandmarksCalculator,
    # the tensor calculators around an inference on OpenVINO (OVMS's fork), under names of their own
    tensors.PythonImageToTensorCalculator,
    tensors.PythonTensorsToDetectionsCalculator,
    detections.PythonNonMaxSuppressionCalculator,
    detections.PythonDetectionProjectionCalculator,
    detections.PythonDetectionLetterboxRemovalCalculator,
    tensor_plumbing.PythonSplitTensorVectorCalculator,
    tensor_plumbing.PythonTensorsToFloatsCalculator,
    tensor_plumbing.PythonThresholdingCalculator,
    tensor_plumbing.PythonGateCalculator,
    tensor_plumbing.PythonTensorsToLandmarksCalculator,
    hand_tensors.PythonTensorsToClassificationCalculator,
    hand_tensors.PythonLandmarkLetterboxRemovalCalculator,
    pose_tensors.PythonRefineLandmarksFromHeatmapCalculator,
    pose_tensors.PythonTensorsToSegmentationCalculator,
    pose_tensors.PythonInverseMatrixCalculator,
    pose_tensors.PythonWarpAffineCalculator,
    switch.PythonSwitchChannelCheck,
)


def register_builtin(registry: Registry) -> Registry:
    """Register every built-in calculator in `registry`: OVMS's (PythonExecutor, OpenVINO) and the library's."""
    ovms_python.register_ovms_calculators(registry)
    openvino.register_openvino_calculators(registry)
    for cls in BY_CLASS_NAME:
        registry.register(cls)
    return registry
