"""Fixable shapes of a graph, each found before the graph runs and told with the line to write.

A graph taken from MediaPipe's examples often loads and then fails on its
first request for reasons its text already shows: an image input without the
`IMAGE:` tag (the first frame ends the stream with "The Packet stores
"string", but "::mediapipe::ImageFrame" was requested"), an `int` side packet
that no request parameter can carry (parameters are int64, bool or string, as
in OVMS), an output OVMS cannot serialize (an untagged ImageFrame, protos such
as detections), a model file the mediapipe wheel does not ship.

`shape_findings` reads the types MediaPipe's own graph validation
(`ValidatedGraphConfig`) requires on every graph-level stream and side packet
and turns each such mismatch into a `Finding` whose `fix` is the pbtxt to
write. The wire error a client gets stays OVMS's text; these findings are what
`check` and the server panel say beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from ovms_notebook.codec.proto_inputs import side_packet_types, stream_types
from ovms_notebook.codec.protos import message_name
from ovms_notebook.codec.streams import StreamKind, parse_stream
from ovms_notebook.framework.tags import split_tag_index_name
from ovms_notebook.portability.findings import Finding

#: C++ types a request parameter becomes as a side packet (int64_param, bool_param, string_param), as in OVMS.
PARAMETER_TYPES = frozenset({"int64_t", "long", "long long", "bool", "std::string", "::std::string", "string"})
#: ConstantSidePacketCalculatorOptions.ConstantSidePacket field for a side packet's C++ type, with a sample value.
_CONSTANT_FIELDS = {
    "int": ("int_value", "1"),
    "float": ("float_value", "0.5"),
    "double": ("double_value", "0.5"),
    "unsigned long": ("uint64_value", "1"),
    "uint64_t": ("uint64_value", "1"),
}
# How to draw a proto output onto the frame so OVMS can send it as an image: (calculator, its input tag).
_RENDERERS = {
    ("mediapipe.Detection", True): ("DetectionsToRenderDataCalculator", "DETECTIONS"),
    ("mediapipe.Detection", False): ("DetectionsToRenderDataCalculator", "DETECTION"),
    ("mediapipe.NormalizedLandmarkList", False): ("LandmarksToRenderDataCalculator", "NORM_LANDMARKS"),
    ("mediapipe.NormalizedRect", False): ("RectToRenderDataCalculator", "NORM_RECT"),
}
_MODEL_PATH = re.compile(r'model_path:\s*"([^"]+)"')
_POSE_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}
#: The wheel's subgraphs that pick a pose landmark model by their MODEL_COMPLEXITY side packet (default 1).
_COMPLEXITY_SUBGRAPHS = frozenset({"PoseLandmarkCpu", "PoseLandmarkByRoiCpu", "HolisticLandmarkCpu"})
#: The face subgraphs whose side packet (by tag) switches face landmarks to the attention model, which OVMS's
#: MediaPipe fork does not run: its FaceLandmarkCpu infers on the `face_landmark` entry, without attention.
_ATTENTION_TAGS = {"FaceLandmarkFrontCpu": "WITH_ATTENTION", "FaceLandmarkCpu": "WITH_ATTENTION",
                   "FaceLandmarksFromPoseCpu": "REFINE_LANDMARKS", "HolisticLandmarkCpu": "REFINE_FACE_LANDMARKS"}


def native_part(config: object) -> object | None:
    """The part of `config` MediaPipe itself runs (all of it when no node runs on the Python side); None when no
    node is native. Package subgraphs must already be expanded."""
    from ovms_notebook.engine.graphconfig import python_registry
    from ovms_notebook.engine.split import split_graph

    split = split_graph(config, python_registry())
    return config if split.python is None else split.native


def graph_shape_findings(
    config: object, base_path: Path | None = None, own: Mapping[str, str] | None = None
) -> list[Finding]:
    """Fixable shapes of a parsed (not yet expanded) graph, each with the pbtxt to write; `own` are the graph
    folder's own subgraphs."""
    from ovms_notebook.errors import GraphLoadError
    from ovms_notebook.framework.subgraphs import expand_subgraphs

    try:
        expanded = expand_subgraphs(config, own)
    except GraphLoadError:
        return []  # a subgraph node wired wrongly: the graph's own load error says how
    return shape_findings(expanded, base_path)


def shape_findings(config: object, base_path: Path | None = None) -> list[Finding]:
    """Every fixable shape of `config` (subgraphs already expanded), each with the pbtxt to write.

    Type findings need a graph MediaPipe accepts; for one it rejects (an
    unknown calculator) only the model files are looked at, and the reason it
    was rejected is the load error the graph reports itself.
    """
    found = model_findings(config, base_path)
    native = native_part(config)
    if native is None:
        return found
    try:
        streams, sides = stream_types(native), side_packet_types(native)
    except Exception:  # MediaPipe rejects the graph: its load error says why; no types to compare
        return found
    found += _input_findings(config, streams)
    found += _side_packet_findings(config, sides)
    found += _output_findings(config, streams)
    return found


def _input_findings(config: object, types: dict[str, str]) -> list[Finding]:
    found = []
    for text in config.input_stream:  # type: ignore[attr-defined]
        spec = parse_stream(text)
        required = types.get(spec.name)
        if required is None or spec.kind is not StreamKind.UNKNOWN:
            continue
        if "::mediapipe::ImageFrame" in required:
            found.append(
                Finding(
                    "error",
                    "untagged-image-input",
                    f"input_stream {text!r}",
                    f"the graph reads an image ({required}) there, but an untagged input carries a tensor: the first "
                    'frame ends the stream with "Packet type mismatch ... The Packet stores "string", but ... was '
                    "requested\". Tag it IMAGE: (OVMS's image tag)",
                    fix=f'input_stream: "IMAGE:{spec.name}"',
                )
            )
        elif "::mediapipe::Image" in required:
            found.append(
                Finding(
                    "error",
                    "untagged-image-input",
                    f"input_stream {text!r}",
                    f"the graph reads a {required} there; OVMS's IMAGE: makes an ImageFrame, so only ovms_notebook's "
                    "MP_IMAGE: can feed it (or put an ImageFrame-to-Image node such as ToImageCalculator after IMAGE:)",
                    fix=f'input_stream: "MP_IMAGE:{spec.name}"',
                )
            )
        elif (message_name(required) or ("", False))[1]:
            found.append(
                Finding(
                    "error",
                    "untagged-proto-input",
                    f"input_stream {text!r}",
                    f"the graph reads a {required} there: a vector of messages, which no input tag can carry "
                    "(mediapipe 0.10.21 cannot create one from Python, and OVMS has no way to feed a proto). Feed "
                    "one message with PROTO: and build the vector inside the graph",
                )
            )
        elif message_name(required) is not None:
            found.append(
                Finding(
                    "error",
                    "untagged-proto-input",
                    f"input_stream {text!r}",
                    f"the graph reads a {required} there, but an untagged input carries a tensor. ovms_notebook's "
                    "PROTO: tag takes the message serialized in a BYTES tensor (OVMS has no way to feed a proto)",
                    fix=f'input_stream: "PROTO:{spec.name}"',
                )
            )
    return found


def _side_packet_findings(config: object, types: dict[str, str]) -> list[Finding]:
    found = []
    for text in config.input_side_packet:  # type: ignore[attr-defined]
        name = parse_stream(text).name
        required = types.get(name)
        if required is None or required in PARAMETER_TYPES:
            continue
        field, sample = _CONSTANT_FIELDS.get(required, ("", ""))
        if field:
            fix = (
                f'# delete: input_side_packet: "{text}"\n'
                "node {\n"
                '  calculator: "ConstantSidePacketCalculator"\n'
                f'  output_side_packet: "PACKET:{name}"\n'
                "  options: {\n"
                "    [mediapipe.ConstantSidePacketCalculatorOptions.ext]: {\n"
                f"      packet {{ {field}: {sample} }}\n"
                "    }\n"
                "  }\n"
                "}"
            )
            how = "make it inside the graph with a ConstantSidePacketCalculator node (pick the value)"
        else:
            fix, how = "", "no request parameter or constant node can make it: produce it with a node inside the graph"
        found.append(
            Finding(
                "error",
                "side-packet-type",
                f"input_side_packet {text!r}",
                f"the graph needs a C++ {required} there; a request parameter becomes int64_t, bool or std::string "
                "(OVMS does the same), so a request that sets it cannot start the graph, and one that leaves it "
                f"out starts it only where the nodes take it as optional: {how}",
                fix=fix,
            )
        )
    return found


def _output_findings(config: object, types: dict[str, str]) -> list[Finding]:
    found = []
    images = [parse_stream(t).name for t in config.input_stream if parse_stream(t).kind is StreamKind.IMAGE]  # type: ignore[attr-defined]
    frame = images[0] if images else "input_video"
    for text in config.output_stream:  # type: ignore[attr-defined]
        spec = parse_stream(text)
        produced = types.get(spec.name)
        if produced is None or spec.kind is not StreamKind.UNKNOWN:
            continue
        subject = f"output_stream {text!r}"
        if produced in ("::mediapipe::ImageFrame", "mediapipe::ImageFrame"):
            found.append(
                Finding(
                    "error",
                    "unserializable-output",
                    subject,
                    "an untagged output is an ov::Tensor on OVMS, but this one is an ImageFrame: OVMS fails on the "
                    "first frame (ovms_notebook sends it as an image either way). Tag it IMAGE:",
                    fix=f'output_stream: "IMAGE:{spec.name}"',
                )
            )
            continue
        proto = message_name(produced)
        if proto is None:
            continue
        renderer = _RENDERERS.get(proto)
        fix = ""
        if renderer is not None:
            calculator, tag = renderer
            drawn = f"{spec.name}_drawn"  # one image per output: several of these fixes can go in together
            fix = (
                f'# replace: output_stream: "{text}"\n'
                f'output_stream: "IMAGE:{drawn}"\n'
                f'node {{ calculator: "{calculator}" input_stream: "{tag}:{spec.name}" '
                f'output_stream: "RENDER_DATA:{spec.name}_render" }}\n'
                f'node {{ calculator: "AnnotationOverlayCalculator" input_stream: "IMAGE:{frame}" '
                f'input_stream: "{spec.name}_render" output_stream: "IMAGE:{drawn}" }}'
            )
        found.append(
            Finding(
                "error",
                "unserializable-output",
                subject,
                f"it carries {produced}; OVMS serializes only tensors and images (ov::Tensor, IMAGE:, TENSOR:, "
                "OVMS_PY_TENSOR:) and fails on a proto, which ovms_notebook sends as BYTES with its proto_type. "
                + (
                    "To see it on OVMS, draw it on the frame"
                    + ("" if images else " (input_video: the graph's image input)")
                    if fix
                    else "A PythonExecutorCalculator can turn it into a tensor for OVMS"
                ),
                fix=fix,
            )
        )
    return found


_advice_cache: dict[tuple[object, ...], list[Finding]] = {}
_ADVICE_CACHE_MAX = 64


def graph_advice(graph_path: Path, base_path: Path | None = None) -> list[Finding]:
    """The fixable shapes of the graph file at `graph_path` (cached per file text, see `text_advice`), with the
    graph folder's own subgraphs expanded; [] when it cannot be read or does not parse.

    What the server panel shows beside a graph's status, loaded or not.
    """
    from ovms_notebook.framework.subgraphs import folder_subgraphs

    try:
        own = folder_subgraphs(base_path, graph_path) if base_path is not None else {}
        text = graph_path.read_text()
    except Exception:  # unreadable: the graph's load error already says so
        return []
    return text_advice(text, base_path, own)


def text_advice(text: str, base_path: Path | None = None, own: Mapping[str, str] | None = None) -> list[Finding]:
    """The fixable shapes of pbtxt `text` (a graph version being served), cached per text; [] when it does not
    parse."""
    from ovms_notebook.framework.protos import parse_graph_config

    key = (text, str(base_path), tuple(sorted((own or {}).items())))
    try:
        if key not in _advice_cache:
            if len(_advice_cache) >= _ADVICE_CACHE_MAX:
                _advice_cache.clear()
            _advice_cache[key] = graph_shape_findings(parse_graph_config(text), base_path, own)
        return list(_advice_cache[key])
    except Exception:  # unparsable: the graph's load error already says so
        return []


def node_text(node: object) -> str:
    """A node as pbtxt with its `node_options` Any entries spelled out (a packed `model_path` is read too)."""
    from google.protobuf import descriptor_pool, text_format

    from ovms_notebook.framework.protos import import_wheel_protos

    import_wheel_protos()
    return text_format.MessageToString(node, descriptor_pool=descriptor_pool.Default())


def model_findings(config: object, base_path: Path | None = None) -> list[Finding]:
    """Model files the graph's nodes name (`model_path: "..."`), or pick by a constant MODEL_COMPLEXITY, that
    neither the mediapipe wheel ships nor the graph's folder holds."""
    import mediapipe as mp

    wheel_root = Path(mp.__file__).parent.parent
    found = []
    seen: set[str] = set()
    for node in config.node:  # type: ignore[attr-defined]
        for path in _MODEL_PATH.findall(node_text(node)):
            if path in seen:
                continue
            seen.add(path)
            places = [wheel_root / path] + ([base_path / path] if base_path is not None else [])
            if Path(path).is_absolute() or any(place.is_file() for place in places):
                continue
            shipped = sorted(p.name for p in (wheel_root / path).parent.glob("*.tflite"))
            found.append(
                Finding(
                    "error",
                    "model-file-missing",
                    f"node {node.calculator} model_path {path!r}",
                    f"the mediapipe {mp.__version__} wheel does not ship it (and the graph's folder does not hold it)"
                    + (f"; the wheel has {', '.join(shipped)} there" if shipped else "")
                    + (f"; a copy at {base_path / path} would be used" if base_path is not None else ""),
                    fix=f'model_path: "{(wheel_root / path).parent.relative_to(wheel_root) / shipped[0]}"'
                    if shipped
                    else "",
                )
            )
    return found + _complexity_findings(config, wheel_root) + _attention_findings(config)


def _constants(config: object) -> dict[str, object]:
    """{side packet name: value} of the graph's `ConstantSidePacketCalculator` nodes."""
    from ovms_notebook.engine.split import constant_side_packets

    return {name: value for node in config.node  # type: ignore[attr-defined]
            for name, value in constant_side_packets(node).items()}


def _complexity_findings(config: object, wheel_root: Path) -> list[Finding]:
    """Pose subgraphs given a constant MODEL_COMPLEXITY whose model the wheel does not ship (it has only 1)."""
    constants = {name: value for name, value in _constants(config).items()
                 if isinstance(value, int) and not isinstance(value, bool)}
    found = []
    for node in config.node:  # type: ignore[attr-defined]
        if node.calculator not in _COMPLEXITY_SUBGRAPHS:
            continue
        for text in node.input_side_packet:
            tag, _, name = split_tag_index_name(text)
            if tag != "MODEL_COMPLEXITY" or name not in constants:
                continue
            value = constants[name]
            model = _POSE_MODELS.get(value)
            if model is None or (wheel_root / "mediapipe/modules/pose_landmark" / model).is_file():
                continue
            found.append(
                Finding(
                    "error",
                    "model-file-missing",
                    f"node {node.calculator} MODEL_COMPLEXITY {value} ({name!r})",
                    f"it loads mediapipe/modules/pose_landmark/{model}, which the mediapipe wheel does not ship "
                    "(it has pose_landmark_full.tflite, model complexity 1): the graph fails when it starts",
                    fix=f"packet {{ int_value: 1 }}  # in the ConstantSidePacketCalculator making {name}",
                )
            )
    return found


def _attention_findings(config: object) -> list[Finding]:
    """Face subgraphs given a constant true WITH_ATTENTION (or REFINE_*_LANDMARKS): OVMS's fork infers face
    landmarks without attention, so such a graph fails on OVMS (and here, served on its model entries)."""
    constants = _constants(config)
    found = []
    for node in config.node:  # type: ignore[attr-defined]
        wanted = _ATTENTION_TAGS.get(node.calculator)
        for text in node.input_side_packet if wanted else ():
            tag, _, name = split_tag_index_name(text)
            if tag != wanted or constants.get(name) is not True:
                continue
            found.append(
                Finding(
                    "error",
                    "ovms-fork-attention",
                    f"node {node.calculator} {tag} true ({name!r})",
                    "OVMS's MediaPipe fork infers face landmarks on the face_landmark model entry, without "
                    "attention (468 points, no irises): with attention on, the graph fails on OVMS at its first "
                    "frame, and here too once the folder serves its model entries",
                    fix=f"packet {{ bool_value: false }}  # in the ConstantSidePacketCalculator making {name}",
                )
            )
    return found
