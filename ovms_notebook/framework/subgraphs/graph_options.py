"""A subgraph's `graph_options` and its nodes' `option_value` lines, resolved as MediaPipe expands it.

MediaPipe's subgraphs take options: the subgraph declares `graph_options`
(a message type, usually empty), the node naming the subgraph gives
`node_options` of that type, and an inner node's `option_value: "a:b"` copies
field `b` of those options (the subgraph's graph_options merged with the outer
node's) into field `a` of the inner node's own options
(framework/tool/options_util.cc, `CopyLiteralOptions`, run at every level of
expansion). A path is `options/field`, `field`, or `options`/`OPTIONS` for the
whole message; fields the outer options leave unset are left alone.
`face_detection.pbtxt`, for one, gets its tensor size, anchors and scales
this way from `face_detection_short_range.pbtxt`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import message as protobuf_message

from ovms_notebook.errors import GraphLoadError

__all__ = ["apply_option_values", "subgraph_options"]


def _message_class(type_url: str) -> Any:
    from google.protobuf import symbol_database

    from ovms_notebook.framework.protos import import_wheel_protos

    import_wheel_protos()
    name = type_url.rpartition("/")[2].strip()
    try:
        return symbol_database.Default().GetSymbol(name)
    except KeyError:
        raise GraphLoadError(f"options type {name} is not known to the mediapipe wheel") from None


def subgraph_options(sub: Any, parent: Any) -> protobuf_message.Message | None:
    """The subgraph's options: its `graph_options` message merged with the outer node's options of that type."""
    if not len(sub.graph_options):
        return None
    packed = sub.graph_options[0]
    options = _message_class(packed.type_url)()
    packed.Unpack(options)
    extension = getattr(type(options), "ext", None)
    if extension is not None and parent.HasField("options") and parent.options.HasExtension(extension):
        options.MergeFrom(parent.options.Extensions[extension])
    for given in parent.node_options:
        if given.Is(options.DESCRIPTOR):
            given.Unpack(over := type(options)())
            options.MergeFrom(over)
    return options


def _path(text: str) -> list[str]:
    parts = [part for part in text.strip().split("/") if part]
    if parts and parts[0].lower() == "options":
        parts = parts[1:]
    if any(part.startswith("[") for part in parts):
        raise GraphLoadError(f"option_value path {text!r}: extension paths are not supported here")
    return parts


def _node_options(node: Any) -> tuple[protobuf_message.Message, Any] | None:
    """(a copy of the node's options message, where it came from: an extension handle or a node_options index)."""
    if node.HasField("options"):
        for field, value in node.options.ListFields():
            if field.is_extension:
                copy = type(value)()
                copy.CopyFrom(value)
                return copy, field
    for index, packed in enumerate(node.node_options):
        options = _message_class(packed.type_url)()
        packed.Unpack(options)
        return options, index
    return None


def _copy(source: protobuf_message.Message, source_path: list[str], target: protobuf_message.Message,
          target_path: list[str], spec: str) -> None:
    for name in source_path[:-1]:
        if not source.HasField(name):
            return
        source = getattr(source, name)
    for name in target_path[:-1]:
        target = getattr(target, name)
    if not source_path:
        if target_path:
            raise GraphLoadError(f"option_value {spec!r}: a whole options message goes to a whole message only")
        if source.DESCRIPTOR.full_name == target.DESCRIPTOR.full_name:
            target.MergeFrom(source)
        return
    name, into = source_path[-1], target_path[-1] if target_path else None
    field = source.DESCRIPTOR.fields_by_name.get(name)
    if field is None or into is None or into not in target.DESCRIPTOR.fields_by_name:
        raise GraphLoadError(f"option_value {spec!r} names a field the options do not have")
    if field.label == field.LABEL_REPEATED:
        values = list(getattr(source, name))
        if values:
            target.ClearField(into)
            getattr(target, into).extend(values)
    elif source.HasField(name):
        if field.message_type is not None:
            getattr(target, into).CopyFrom(getattr(source, name))
        else:
            setattr(target, into, getattr(source, name))


def apply_option_values(sub: Any, parent: Any) -> None:
    """Resolve every `option_value` of `sub`'s nodes (a subgraph config, changed in place) against the options
    `parent` (the outer node naming the subgraph) gives, then drop those lines, as MediaPipe does."""
    options = subgraph_options(sub, parent)
    for node in sub.node:
        if not len(node.option_value):
            continue
        found = _node_options(node) if options is not None else None
        if found is not None:
            target, origin = found
            for spec in node.option_value:
                node_path, _, graph_path = spec.partition(":")
                _copy(options, _path(graph_path), target, _path(node_path), spec)
            if isinstance(origin, int):
                node.node_options[origin].Pack(target)
            else:
                node.options.Extensions[origin].CopyFrom(target)
        del node.option_value[:]
