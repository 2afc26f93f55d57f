"""MediaPipe's stream and side packet names, `TAG:index:name` and `TAG:index`: the one parser in the package.

The rules and error texts are MediaPipe's (framework/tool/validate_name.cc, `ParseTagIndexName` and
`ParseTagIndex`, as the mediapipe 0.10.21 wheel prints them): a tag is `[A-Z_][A-Z0-9_]*`, a name
`[a-z_][a-z0-9_]*`, an index `0|[1-9][0-9]*` (no leading zeros) of at most 10000. Every module that reads
a pbtxt entry (codec's graph streams, the Python engine's tag maps, back edges, subgraph expansion, the
graph drawing) goes through here, so one spelling is accepted or refused everywhere alike.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "MAX_INDEX",
    "TAG_INDEX_NAME_PATTERN",
    "TAG_INDEX_PATTERN",
    "TagIndexName",
    "is_tag",
    "parse_tag_index",
    "parse_tag_index_name",
    "split_tag_index_name",
]

_TAG: Final = "[A-Z_][A-Z0-9_]*"
_NAME: Final = "[a-z_][a-z0-9_]*"
_NUMBER: Final = "(0|[1-9][0-9]*)"
#: MediaPipe's `internal::kMaxCollectionItemId`: the largest index a collection may use.
MAX_INDEX: Final = 10000
#: The grammars as MediaPipe's error messages print them.
TAG_INDEX_NAME_PATTERN: Final = f"({_TAG}:({_NUMBER}:)?)?{_NAME}"
TAG_INDEX_PATTERN: Final = f"({_TAG})?(:{_NUMBER})?"

_TAG_RE = re.compile(_TAG)
_NAME_RE = re.compile(_NAME)
_NUMBER_RE = re.compile(_NUMBER)


#: One `TAG:index:name` entry as written: (tag, index, name), index None when the text gives none ("x", "TAG:x").
TagIndexName = tuple[str, int | None, str]


def _index(text: str) -> int | None:
    if not _NUMBER_RE.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_INDEX else None


def is_tag(text: str) -> bool:
    """True when `text` is a valid MediaPipe tag (`[A-Z_][A-Z0-9_]*`)."""
    return _TAG_RE.fullmatch(text) is not None


def split_tag_index_name(text: str) -> TagIndexName:
    """`"name"`, `"TAG:name"` or `"TAG:index:name"` split as written; ValueError (MediaPipe's text) otherwise."""
    parts = text.split(":")
    tag, index, name = "", None, parts[-1]
    valid = len(parts) <= 3 and _NAME_RE.fullmatch(name) is not None
    if valid and len(parts) >= 2:
        tag = parts[0]
        valid = _TAG_RE.fullmatch(tag) is not None
    if valid and len(parts) == 3:
        index = _index(parts[1])
        valid = index is not None
    if not valid:
        raise ValueError(
            f'TAG:index:name is invalid, "{text}" does not match "{TAG_INDEX_NAME_PATTERN}" '
            '(examples: "TAG:name" "VIDEO:2:name_b", "longer_name").'
        )
    return tag, index, name


def parse_tag_index_name(text: str) -> tuple[str, int, str]:
    """MediaPipe's `ParseTagIndexName`: (tag, index, name); a bare name has tag "" and index -1 (its position
    among the untagged entries decides it), "TAG:name" has index 0."""
    tag, index, name = split_tag_index_name(text)
    if not tag:
        return "", -1, name
    return tag, index or 0, name


def parse_tag_index(text: str) -> tuple[str, int]:
    """MediaPipe's `ParseTagIndex`: "TAG", "TAG:2", ":1" or "" (untagged 0) as (tag, index); ValueError
    (MediaPipe's text) otherwise."""
    parts = text.split(":")
    tag = parts[0]
    valid = len(parts) <= 2 and (not tag or _TAG_RE.fullmatch(tag) is not None)
    index: int | None = 0
    if valid and len(parts) == 2:
        index = _index(parts[1])
        valid = index is not None
    if not valid or index is None:
        raise ValueError(
            f'TAG:index is invalid, "{text}" does not match "{TAG_INDEX_PATTERN}" (examples: "TAG" "VIDEO:2").'
        )
    return tag, index
