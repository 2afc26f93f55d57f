"""Subgraphs the mediapipe wheel lacks, expanded on the Python side before a graph is split.

MediaPipe expands a node whose `calculator` names a registered subgraph into the
subgraph's own nodes (`ExpandSubgraphs` in the C++ framework). The 0.10.21
wheel registers only the subgraphs it was built with; OVMS's demo graphs name
others (`HolisticTrackingToRenderData`, and inside it `HandWristForPose`; the
iris demo's `IrisLandmarkLeftAndRightCpu`, `IrisLandmarkCpu`, `IrisLandmarkLandmarksToRoi`
and `IrisRendererCpu`), and so do MediaPipe's own example graphs (the renderers
`FaceRendererCpu`, `HandRendererSubgraph`, `PoseRendererCpu` with its
`PoseLandmarksToRenderData`, the iris depth graph's `IrisAndDepthRendererCpu`).
Their pbtxt files, copied unchanged from google-ai-edge/mediapipe v0.10.21,
live next to this module; `expand_subgraphs` inlines them the way MediaPipe
does: the subgraph's `TAG:index` streams and side packets are wired to the
names the outer node gives them, every internal name gets a per-instance
prefix (`holistictrackingtorenderdata__render_scale`), inputs the outer node
leaves unconnected are dropped, `graph_options`/`option_value` are resolved
(graph_options.py), and nested subgraphs are expanded in turn. Some subgraphs
the wheel does have (the face ones, `FORK_SUBGRAPHS`) are expanded too, but
only when the graph's config.json serves the model entries OVMS's fork infers
them on: then their inference runs on those entries (fork.py). A graph folder may bring its own subgraph pbtxt files
(`folder_subgraphs`): they expand the same way, and win over ours. The
expanded nodes are then stock calculators (native) or Python calculators
(ovms_notebook.calculators.render, render_shapes, iris, tflite, recolor, labels, tensors,
detections, tensor_plumbing, hand_tensors), and
`split_graph` cuts between them as for any graph.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.ovms_fork import FORK_INFERENCE, TENSOR_SUBGRAPHS
from ovms_notebook.framework.protos import GraphConfig
from ovms_notebook.framework.subgraphs.folder import folder_subgraphs
from ovms_notebook.framework.subgraphs.fork import fork_inference, python_twins, twin_padding_readers
from ovms_notebook.framework.subgraphs.graph_options import apply_option_values
from ovms_notebook.framework.tags import split_tag_index_name

__all__ = [
    "FORK_SUBGRAPHS",
    "SUBGRAPHS",
    "expand_subgraphs",
    "folder_subgraphs",
    "instance_nodes",
    "subgraph_config",
    "twin_padding_readers",
]

#: Subgraph type -> its pbtxt file here (google-ai-edge/mediapipe v0.10.21, commit cad7f3ab).
SUBGRAPHS: dict[str, str] = {
    "HolisticTrackingToRenderData": "holistic_tracking_to_render_data.pbtxt",  # mediapipe/graphs/holistic_tracking/
    "HandWristForPose": "hand_wrist_for_pose.pbtxt",  # mediapipe/modules/holistic_landmark/
    # OVMS's iris tracking demo (demos/mediapipe/iris_tracking):
    "IrisLandmarkLeftAndRightCpu": "iris_landmark_left_and_right_cpu.pbtxt",  # mediapipe/modules/iris_landmark/
    "IrisLandmarkCpu": "iris_landmark_cpu.pbtxt",  # mediapipe/modules/iris_landmark/
    "IrisLandmarkLandmarksToRoi": "iris_landmark_landmarks_to_roi.pbtxt",  # mediapipe/modules/iris_landmark/
    "IrisRendererCpu": "iris_renderer_cpu.pbtxt",  # mediapipe/graphs/iris_tracking/subgraphs/
    "IrisAndDepthRendererCpu": "iris_and_depth_renderer_cpu.pbtxt",  # mediapipe/graphs/iris_tracking/subgraphs/
    # MediaPipe's own example graphs (ovms_notebook/examples/mediapipe):
    "FaceRendererCpu": "face_renderer_cpu.pbtxt",  # mediapipe/graphs/face_mesh/subgraphs/
    "HandRendererSubgraph": "hand_renderer_cpu.pbtxt",  # mediapipe/graphs/hand_tracking/subgraphs/
    "PoseRendererCpu": "pose_renderer_cpu.pbtxt",  # mediapipe/graphs/pose_tracking/subgraphs/
    "PoseLandmarksToRenderData": "pose_landmarks_to_render_data.pbtxt",  # mediapipe/graphs/pose_tracking/subgraphs/
}

#: Subgraphs the wheel has natively, expanded here only when the graph's config.json serves the model entries
#: OVMS's fork infers them on (`expand_subgraphs(model_entries=True)`): their inference then runs on OpenVINO
#: on the Python side, with the tensor calculators around it (`PYTHON_TWINS`). Same source and commit as above.
FORK_SUBGRAPHS: dict[str, str] = {
    "FaceDetectionShortRangeCpu": "face_detection_short_range_cpu.pbtxt",  # mediapipe/modules/face_detection/
    "FaceDetectionShortRange": "face_detection_short_range.pbtxt",  # mediapipe/modules/face_detection/
    "FaceDetection": "face_detection.pbtxt",  # mediapipe/modules/face_detection/
    "FaceLandmarkFrontCpu": "face_landmark_front_cpu.pbtxt",  # mediapipe/modules/face_landmark/
    "FaceLandmarkCpu": "face_landmark_cpu.pbtxt",  # mediapipe/modules/face_landmark/
    "TensorsToFaceLandmarks": "tensors_to_face_landmarks.pbtxt",  # mediapipe/modules/face_landmark/
    # OVMS's holistic demo: its face part
    "HolisticLandmarkCpu": "holistic_landmark_cpu.pbtxt",  # mediapipe/modules/holistic_landmark/
    "FaceLandmarksFromPoseCpu": "face_landmarks_from_pose_cpu.pbtxt",  # mediapipe/modules/holistic_landmark/
    "FaceDetectionShortRangeByRoiCpu": "face_detection_short_range_by_roi_cpu.pbtxt",  # modules/face_detection/
    # its hands: the hand landmarks and the recrop on their entries (HandTracking & co. stay the wheel's, native)
    "HandLandmarksLeftAndRightCpu": "hand_landmarks_left_and_right_cpu.pbtxt",  # mediapipe/modules/holistic_landmark/
    "HandLandmarksFromPoseCpu": "hand_landmarks_from_pose_cpu.pbtxt",  # mediapipe/modules/holistic_landmark/
    "HandRecropByRoiCpu": "hand_recrop_by_roi_cpu.pbtxt",  # mediapipe/modules/holistic_landmark/
    "HandLandmarkCpu": "hand_landmark_cpu.pbtxt",  # mediapipe/modules/hand_landmark/
    # pose detection and pose landmarks (with their segmentation mask) on their entries
    "PoseLandmarkCpu": "pose_landmark_cpu.pbtxt",  # mediapipe/modules/pose_landmark/
    "PoseDetectionCpu": "pose_detection_cpu.pbtxt",  # mediapipe/modules/pose_detection/
    "PoseLandmarkByRoiCpu": "pose_landmark_by_roi_cpu.pbtxt",  # mediapipe/modules/pose_landmark/
    "TensorsToPoseLandmarksAndSegmentation": "tensors_to_pose_landmarks_and_segmentation.pbtxt",  # same folder
    "PoseLandmarksAndSegmentationInverseProjection":  # same folder
        "pose_landmarks_and_segmentation_inverse_projection.pbtxt",
}

_MAX_DEPTH = 8


@functools.cache
def _text(type_name: str) -> str:
    return resources.files(__name__).joinpath({**FORK_SUBGRAPHS, **SUBGRAPHS}[type_name]).read_text()


def subgraph_config(type_name: str, extra: Mapping[str, str] | None = None) -> object:
    """A fresh parsed CalculatorGraphConfig of the subgraph `type_name`: from `extra` (a graph folder's own
    subgraphs, type -> pbtxt text) first, else ours (KeyError if it is neither)."""
    from ovms_notebook.framework.protos import parse_graph_config

    if extra and type_name in extra:
        return parse_graph_config(extra[type_name])
    return parse_graph_config(_text(type_name))


def _split(entry: str) -> tuple[str, int, str]:
    """`TAG:index:name` -> (tag, index, name), as MediaPipe's ParseTagIndexName."""
    try:
        tag, index, name = split_tag_index_name(entry)
    except ValueError as error:
        raise GraphLoadError(f"stream or side packet {entry!r} is not TAG:index:name: {error}") from None
    return tag, index or 0, name


def _join(tag: str, index: int, name: str) -> str:
    if not tag:
        return name
    return f"{tag}:{index}:{name}" if index else f"{tag}:{name}"


def _keyed(entries: object) -> dict[tuple[str, int], str]:
    """Outer node's `TAG:index` -> the name it connects there; untagged entries count by position."""
    keyed: dict[tuple[str, int], str] = {}
    untagged = 0
    for entry in entries:  # type: ignore[attr-defined]
        tag, index, name = _split(entry)
        if not tag:
            index, untagged = untagged, untagged + 1
        keyed[(tag, index)] = name
    return keyed


def _boundary(declared: object, outer: dict[tuple[str, int], str], what: str, type_name: str) -> dict[str, str]:
    """Subgraph-internal names of its declared streams -> the outer names the node connects to them."""
    mapping: dict[str, str] = {}
    untagged = 0
    for entry in declared:  # type: ignore[attr-defined]
        tag, index, name = _split(entry)
        if not tag:
            index, untagged = untagged, untagged + 1
        if (tag, index) in outer:
            mapping[name] = outer[(tag, index)]
    unknown = set(outer) - {k for k in _keyed(declared)}
    if unknown:
        raise GraphLoadError(f"node {type_name} connects {what} {sorted(unknown)} the subgraph does not declare")
    return mapping


def _rename(entries: object, names: dict[str, str], prefix: str) -> list[str]:
    renamed = []
    for entry in entries:  # type: ignore[attr-defined]
        tag, index, name = _split(entry)
        renamed.append(_join(tag, index, names.get(name, f"{prefix}__{name}")))
    return renamed


def _ignored(declared: object, outer: dict[tuple[str, int], str]) -> set[str]:
    """Subgraph-internal names of the declared streams the outer node does not connect."""
    ignored = set()
    untagged = 0
    for entry in declared:  # type: ignore[attr-defined]
        tag, index, name = _split(entry)
        if not tag:
            index, untagged = untagged, untagged + 1
        if (tag, index) not in outer:
            ignored.add(name)
    return ignored


def _instance(node: object, taken: set[str], extra: Mapping[str, str] | None = None,
              model_entries: bool = False) -> list[object]:
    """The nodes `node` (an outer node naming a subgraph of ours or of `extra`) stands for, wired to its streams."""
    type_name = node.calculator  # type: ignore[attr-defined]
    sub = subgraph_config(type_name, extra)
    given = node.HasField("options") or len(node.node_options)  # type: ignore[attr-defined]
    if given and not len(sub.graph_options):  # type: ignore[attr-defined]
        raise GraphLoadError(f"node {type_name}: options on a subgraph node whose subgraph declares no graph_options")
    apply_option_values(sub, node)
    base = node.name or type_name.lower()  # type: ignore[attr-defined]
    prefix, n = base, 1
    while prefix in taken:
        prefix, n = f"{base}_{n}", n + 1
    taken.add(prefix)
    streams = {
        **_boundary(sub.input_stream, _keyed(node.input_stream), "input streams", type_name),  # type: ignore[attr-defined]
        **_boundary(sub.output_stream, _keyed(node.output_stream), "output streams", type_name),  # type: ignore[attr-defined]
    }
    sides = {
        **_boundary(sub.input_side_packet, _keyed(node.input_side_packet), "input side packets", type_name),  # type: ignore[attr-defined]
        **_boundary(sub.output_side_packet, _keyed(node.output_side_packet), "output side packets", type_name),  # type: ignore[attr-defined]
    }
    # inputs the subgraph declares and the outer node leaves unconnected: dropped from the inner nodes, as
    # MediaPipe's RemoveIgnoredStreams does (FaceDetection's ROI, for one, is optional this way)
    ignored = {
        "input_stream": _ignored(sub.input_stream, _keyed(node.input_stream)),  # type: ignore[attr-defined]
        "input_side_packet": _ignored(sub.input_side_packet, _keyed(node.input_side_packet)),  # type: ignore[attr-defined]
    }
    nodes = []
    for inner in sub.node:  # type: ignore[attr-defined]
        for field, names in (
            ("input_stream", streams),
            ("output_stream", streams),
            ("input_side_packet", sides),
            ("output_side_packet", sides),
        ):
            kept = [entry for entry in getattr(inner, field) if _split(entry)[2] not in ignored.get(field, ())]
            renamed = _rename(kept, names, prefix)
            del getattr(inner, field)[:]
            getattr(inner, field).extend(renamed)
        if inner.name:
            inner.name = f"{prefix}__{inner.name}"
        nodes.append(inner)
    if model_entries and not (extra and type_name in extra):
        if type_name in FORK_INFERENCE:
            return python_twins(fork_inference(nodes, FORK_INFERENCE[type_name], prefix))
        if type_name in TENSOR_SUBGRAPHS:
            return python_twins(nodes)
    return nodes


def instance_nodes(node: object, taken: set[str], extra: Mapping[str, str] | None = None, *,
                   model_entries: bool = False) -> tuple[str, list[object]]:
    """(the per-instance prefix, the subgraph's nodes) that one subgraph node stands for, wired to its streams and
    not expanded further: what a drawing shows as one collapsible box. `taken` collects the prefixes in use;
    `model_entries` gives the fork's subgraphs as they run on model entries (see `expand_subgraphs`)."""
    before = set(taken)
    nodes = _instance(node, taken, extra, model_entries)
    [prefix] = taken - before
    return prefix, nodes


def expand_subgraphs(config: GraphConfig, extra: Mapping[str, str] | None = None, *,
                     model_entries: bool = False) -> GraphConfig:
    """`config` with every node naming one of `SUBGRAPHS` or of `extra` (a graph folder's own subgraphs, type ->
    pbtxt text; they win over ours) replaced by that subgraph's nodes (recursively).

    `model_entries`: the graph's config.json serves the model entries OVMS's fork infers on, so
    `FORK_SUBGRAPHS` are expanded as well and the subgraphs of `FORK_INFERENCE` infer on those entries
    (OpenVINO, the tensor nodes around them as Python twins) instead of on the wheel's files.

    Returns `config` itself when no node names one of them, otherwise a new
    CalculatorGraphConfig. GraphLoadError when a node connects a stream the
    subgraph does not declare, or subgraphs nest past a sane depth.
    """
    known = set(SUBGRAPHS) | set(extra or {}) | (set(FORK_SUBGRAPHS) if model_entries else set())
    if not any(node.calculator in known for node in config.node):
        return config
    from mediapipe.framework import calculator_pb2

    expanded = calculator_pb2.CalculatorGraphConfig()
    expanded.CopyFrom(config)
    taken: set[str] = set()
    for _ in range(_MAX_DEPTH):
        if not any(node.calculator in known for node in expanded.node):
            if model_entries:
                twin_padding_readers(list(expanded.node))
            return expanded
        nodes: list[Any] = []  # CalculatorGraphConfig.Node messages
        for node in expanded.node:
            nodes.extend(_instance(node, taken, extra, model_entries) if node.calculator in known else [node])
        copies = [calculator_pb2.CalculatorGraphConfig.Node() for _ in nodes]
        for copy, node in zip(copies, nodes, strict=True):
            copy.CopyFrom(node)
        del expanded.node[:]
        expanded.node.extend(copies)
    raise GraphLoadError(f"subgraphs nest deeper than {_MAX_DEPTH} levels")
