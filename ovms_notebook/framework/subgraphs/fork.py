"""OVMS's fork rewrite of a subgraph expanded here: its inference on a model entry, the tensor nodes in Python.

`fork_inference` replaces each `TfLiteInferenceCalculator` / `InferenceCalculator`
by a session on the model entry and the fork's `OpenVINOInferenceCalculator`
(the nodes that only fed the replaced node side packets, such as
`FaceLandmarksModelLoader`, go too, as the fork comments them out);
`python_twins` renames the calculators around it to their Python twins
(`PYTHON_TWINS`; `LandmarkLetterboxRemovalCalculator` only where its padding
comes from a Python twin, which `twin_padding_readers` decides once the whole
graph is expanded), folds `SsdAnchorsCalculator` into the node reading its
anchors and resolves a `SwitchContainer` into the contained node its options
select (with a check, when a side packet may pick another channel, that fails
such a run as its nodes open).
"""

from __future__ import annotations

from ovms_notebook.errors import GraphLoadError
from ovms_notebook.framework.ovms_fork import PYTHON_TWINS, ForkInference, inference_node_text, session_node_text
from ovms_notebook.framework.tags import split_tag_index_name

__all__ = ["fork_inference", "python_twins", "twin_padding_readers"]


#: Twins only where the LETTERBOX_PADDING they read is made on the Python side (a native `std::array<float, 4>`
#: packet cannot cross): elsewhere the stock calculator stays.
_TWIN_IF_PADDING_MADE = frozenset({"LandmarkLetterboxRemovalCalculator"})


def _name(entry: str) -> str:
    return split_tag_index_name(entry)[2]


def fork_inference(nodes: list[object], fork: ForkInference, prefix: str) -> list[object]:
    """`nodes` with each TfLiteInferenceCalculator or InferenceCalculator replaced, as in OVMS's fork, by a session
    on the model entry and an OpenVINOInferenceCalculator from and to the same tensor streams; nodes that only
    made side packets for the replaced node (its MODEL, OP_RESOLVER) are left out, as the fork leaves them."""
    from ovms_notebook.framework.protos import parse_graph_config

    inference = ("TfLiteInferenceCalculator", "InferenceCalculator")
    fed = {_name(e) for n in nodes if n.calculator in inference for e in n.input_side_packet}  # type: ignore[attr-defined]
    read = {_name(e) for n in nodes if n.calculator not in inference for e in n.input_side_packet}  # type: ignore[attr-defined]
    only_fed = fed - read
    replaced: list[object] = []
    for inner in nodes:
        made = {_name(entry) for entry in inner.output_side_packet}  # type: ignore[attr-defined]
        if made and made <= only_fed and not len(inner.output_stream):  # type: ignore[attr-defined]
            continue
        if inner.calculator not in inference:  # type: ignore[attr-defined]
            replaced.append(inner)
            continue
        (source,), (target,) = ([_name(entry) for entry in getattr(inner, field)]
                                for field in ("input_stream", "output_stream"))
        tag = "TFLITE_TENSORS" if inner.calculator == "TfLiteInferenceCalculator" else "TENSORS"  # type: ignore[attr-defined]
        session = f"{prefix}__session"
        pair = parse_graph_config(session_node_text(fork.servable, session) + " " + inference_node_text(
            fork, session, source, target, inner.name, tag))  # type: ignore[attr-defined]
        replaced.extend(pair.node)
    return replaced


def python_twins(nodes: list[object]) -> list[object]:
    """`nodes` with the tensor calculators around a Python-side inference renamed to their Python twins, and each
    `SsdAnchorsCalculator` folded into the node reading its anchors: its options join that node's, and the
    ANCHORS side packet goes: the anchors are worked out once where they are read, with no node of their own."""
    from google.protobuf import any_pb2
    from mediapipe.calculators.tflite import ssd_anchors_calculator_pb2

    anchors: dict[str, object] = {}
    kept: list[object] = []
    for inner in (resolved for node in nodes for resolved in _resolve_switch(node)):
        if inner.calculator == "SsdAnchorsCalculator":  # type: ignore[attr-defined]
            options = ssd_anchors_calculator_pb2.SsdAnchorsCalculatorOptions()
            options.MergeFrom(inner.options.Extensions[options.ext])  # type: ignore[attr-defined]
            for entry in inner.node_options:  # type: ignore[attr-defined]
                if entry.Is(options.DESCRIPTOR):
                    entry.Unpack(extra := type(options)())
                    options.MergeFrom(extra)
            (side,) = [_name(entry) for entry in inner.output_side_packet]  # type: ignore[attr-defined]
            anchors[side] = options
            continue
        kept.append(inner)
    for inner in kept:
        if inner.calculator not in _TWIN_IF_PADDING_MADE:  # type: ignore[attr-defined]
            inner.calculator = PYTHON_TWINS.get(inner.calculator, inner.calculator)  # type: ignore[attr-defined]
        sides = list(inner.input_side_packet)  # type: ignore[attr-defined]
        folded = [entry for entry in sides if _name(entry) in anchors]
        for entry in folded:
            packed = any_pb2.Any()
            packed.Pack(anchors[_name(entry)])
            inner.node_options.append(packed)  # type: ignore[attr-defined]
        del inner.input_side_packet[:]  # type: ignore[attr-defined]
        inner.input_side_packet.extend(entry for entry in sides if entry not in folded)  # type: ignore[attr-defined]
    return kept


def twin_padding_readers(nodes: list[object]) -> None:
    """Rename, in place, each `LandmarkLetterboxRemovalCalculator` of the expanded graph `nodes` whose
    LETTERBOX_PADDING a Python twin makes to its own twin; the others (IrisLandmarkCpu's padding comes from the
    native ImageTransformationCalculator) stay native. Run over the whole graph once every subgraph is expanded:
    the padding may come from an enclosing subgraph (PoseLandmarkByRoiCpu's, for its inverse projection)."""
    twins = set(PYTHON_TWINS.values())
    made = {_name(entry) for inner in nodes if inner.calculator in twins  # type: ignore[attr-defined]
            for entry in inner.output_stream}  # type: ignore[attr-defined]
    for inner in nodes:
        if inner.calculator in _TWIN_IF_PADDING_MADE and any(  # type: ignore[attr-defined]
                split_tag_index_name(entry)[0] == "LETTERBOX_PADDING" and _name(entry) in made
                for entry in inner.input_stream):  # type: ignore[attr-defined]
            inner.calculator = PYTHON_TWINS[inner.calculator]  # type: ignore[attr-defined]


def _resolve_switch(node: object) -> list[object]:
    """A `SwitchContainer` as the contained node its options select (`select`, else `enable`: channel 1, else 0),
    wired to the container's streams, so that tensor nodes inside become Python twins; other nodes as they are.

    ENABLE / SELECT side packets that may pick another channel at run time get a `PythonSwitchChannelCheck`
    beside it (ovms_notebook.calculators.switch), which fails the run when they do: OVMS's fork infers
    on a model with the options' channel's outputs only. GraphLoadError when an input stream picks the channel
    (it may change packet by packet)."""
    if node.calculator != "SwitchContainer":  # type: ignore[attr-defined]
        return [node]
    from google.protobuf import any_pb2
    from mediapipe.framework import calculator_pb2
    from mediapipe.framework.tool.switch_container_pb2 import SwitchContainerOptions

    from ovms_notebook.framework.options import node_options

    named = node.name or "(unnamed)"  # type: ignore[attr-defined]
    picking = ("ENABLE", "SELECT")
    streams = [entry for entry in node.input_stream if split_tag_index_name(entry)[0] in picking]  # type: ignore[attr-defined]
    if streams:
        raise GraphLoadError(
            f"SwitchContainer {named}: its channel is picked by the input stream {', '.join(streams)}, packet by "
            "packet, which the Python-side tensor nodes of a subgraph on a model entry cannot follow; leave it "
            "unconnected"
        )
    options = node_options(node, SwitchContainerOptions)
    channel = options.select if options.HasField("select") else int(options.enable)
    if not 0 <= channel < len(options.contained_node):
        raise GraphLoadError(f"SwitchContainer selects channel {channel} of {len(options.contained_node)}")
    chosen = calculator_pb2.CalculatorGraphConfig.Node()
    chosen.CopyFrom(options.contained_node[channel])
    chosen.name = node.name  # type: ignore[attr-defined]
    sides = list(node.input_side_packet)  # type: ignore[attr-defined]
    pickers = [entry for entry in sides if split_tag_index_name(entry)[0] in picking]
    for field in ("input_stream", "output_stream", "output_side_packet"):
        getattr(chosen, field).extend(getattr(node, field))
    chosen.input_side_packet.extend(entry for entry in sides if entry not in pickers)
    if not pickers:
        return [chosen]
    check = calculator_pb2.CalculatorGraphConfig.Node(calculator="PythonSwitchChannelCheck")
    check.input_side_packet.extend(pickers)
    packed = any_pb2.Any()
    packed.Pack(options)
    check.node_options.append(packed)
    return [chosen, check]
