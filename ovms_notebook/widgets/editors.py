"""One input editor per graph input stream, fitted to what the stream's tag takes.

`InputEditor(name, kind)` shows a number box for scalar tags (`FLOAT:`,
`INT:`, ...), a checkbox for `BOOL:`, a text box for `STRING:`, comma-separated
values with a datatype for vectors and tensors (`FLOATS:`, untagged, `OVTENSOR`,
...), and an image source picker with a thumbnail for `IMAGE:`/`MP_IMAGE:`.
`editor.value` is what `StreamClient.send` takes for that input.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import ipywidgets as widgets
import numpy as np
from PIL import Image

from ovms_notebook.codec.datatypes import DATATYPES, INTEGERS, datatype_of
from ovms_notebook.codec.streams import StreamKind
from ovms_notebook.widgets.lifecycle import Composite, close_all

__all__ = ["IMAGE_SOURCES", "InputEditor", "kind_from_metadata", "parse_values"]

_RED, _GREY, _AMBER = "#b91c1c", "#6b7280", "#b45309"

#: Scalar tags and the numpy type of the value the number box gives.
NUMBER_KINDS: dict[StreamKind, type[np.generic]] = {
    StreamKind.FLOAT: np.float32,
    StreamKind.DOUBLE: np.float64,
    StreamKind.INT: np.int32,
    StreamKind.INT8: np.int8,
    StreamKind.INT16: np.int16,
    StreamKind.INT32: np.int32,
    StreamKind.INT64: np.int64,
    StreamKind.UINT8: np.uint8,
    StreamKind.UINT16: np.uint16,
    StreamKind.UINT32: np.uint32,
    StreamKind.UINT64: np.uint64,
}
_ALL_DATATYPES = ("FP32", "FP64", "FP16", *INTEGERS, "BOOL", "BYTES")
#: Vector and tensor tags: the datatypes offered, the first one the default.
TEXT_KINDS: dict[StreamKind, tuple[str, ...]] = {
    StreamKind.FLOATS: ("FP32", "FP64", "FP16"),
    StreamKind.INTS: ("INT32", *(d for d in INTEGERS if d != "INT32")),
    StreamKind.BOOLS: ("BOOL",),
    StreamKind.STRINGS: ("BYTES",),
    StreamKind.MATRIX: ("FP32", "FP64"),
    **{kind: _ALL_DATATYPES for kind in (StreamKind.UNKNOWN, StreamKind.OVTENSOR, StreamKind.TENSOR,
                                          StreamKind.TFTENSOR, StreamKind.OVMS_PY_TENSOR)},
}
IMAGE_KINDS = frozenset({StreamKind.IMAGE, StreamKind.MP_IMAGE})
#: The image sources an image editor offers: (label, value).
IMAGE_SOURCES: tuple[tuple[str, str], ...] = (
    ("test pattern: gradient", "gradient"),
    ("test pattern: checker", "checker"),
    ("test pattern: colour bars", "bars"),
    ("astronaut photo", "astronaut"),
    ("file (path or upload)", "file"),
    ("array set from code", "array"),
)
_PATTERNS: dict[str, Literal["gradient", "checker", "bars"]] = {
    "gradient": "gradient", "checker": "checker", "bars": "bars"}
_TRUE, _FALSE = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}
_EXAMPLE = "e.g. 1.5, 2, 3"  # the placeholder of a values field: an example, never a value
_EMPTY_HINT = "type comma-separated values (e.g. 1.5, 2, 3), or [] for an empty tensor"


def parse_values(text: str, datatype: str = "FP32") -> np.ndarray:
    """Comma- (or space-) separated values as an array of `datatype`; `;` separates rows of a matrix.

    "1.5, 2" -> float32 [1.5, 2.]; "1, 2; 3, 4" -> shape (2, 2); BYTES keeps each comma-separated item as text.
    ValueError says which item does not fit.
    """
    if datatype not in DATATYPES:
        raise ValueError(f"datatype must be one of {', '.join(DATATYPES)}; got {datatype!r}")
    body = text.strip().strip("[]()")
    rows = body.split(";")
    parsed = [_parse_row(row, datatype) for row in rows]
    if len(parsed) == 1:
        return parsed[0]
    widths = {len(row) for row in parsed}
    if len(widths) != 1:
        raise ValueError(f"every row of a matrix needs as many values; got rows of {sorted(widths)}")
    return np.stack(parsed)


def _parse_row(row: str, datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        items = [item.strip() for item in row.split(",")] if row.strip() else []
        array = np.empty(len(items), dtype=object)
        array[:] = items
        return array
    tokens = [t for t in re.split(r"[,\s]+", row.strip().strip("[]()")) if t]
    dtype = DATATYPES[datatype]
    values: list[Any] = []
    for index, token in enumerate(tokens):
        try:
            if datatype == "BOOL":
                lowered = token.lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError
                values.append(lowered in _TRUE)
            elif datatype in INTEGERS:
                number = int(token, 0)
                info = np.iinfo(dtype)
                if not info.min <= number <= info.max:
                    raise ValueError
                values.append(number)
            else:
                values.append(float(token))
        except ValueError:
            raise ValueError(f"item {index} ({token!r}) is not a {datatype} value") from None
    return np.asarray(values, dtype=dtype)


def kind_from_metadata(tensor: Mapping[str, Any]) -> tuple[StreamKind, str | None]:
    """The editor kind and default datatype for a ModelMetadata input {"name", "datatype", "shape"}.

    A UINT8 tensor of shape [H, W, C] (C 1, 3 or 4) is an image; any other KServe datatype a vector of it;
    an unknown one (OVMS says "INVALID" for graph inputs) FP32 values.
    """
    datatype = str(tensor.get("datatype", ""))
    shape = list(tensor.get("shape", []))
    if datatype == "UINT8" and len(shape) == 3 and shape[-1] in (1, 3, 4, -1):
        return StreamKind.IMAGE, None
    if datatype in DATATYPES:
        return StreamKind.UNKNOWN, datatype
    return StreamKind.UNKNOWN, None


def _image_array(value: object) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise ValueError(f"an image must be an array of shape (H, W, 1|3|4); got shape {array.shape}")
    if array.dtype.kind == "f" or array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    raise ValueError(f"an image must be uint8 (or float32) pixels; got {array.dtype}")


def thumbnail_png(image: np.ndarray, box: tuple[int, int] = (160, 120)) -> bytes:
    """A small PNG preview of an image array (float pixels are taken as 0..1)."""
    array = image if image.dtype == np.uint8 else np.clip(image * 255, 0, 255).astype(np.uint8)
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    picture.thumbnail(box)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{'x'.join(map(str, value.shape))}]"
    return type(value).__name__


class InputEditor(Composite):
    """An editor for one graph input stream, fitted to its kind; `value` is what goes into a request.

    Number box: scalar tags (the value is a numpy scalar of the tag's C++ type). Checkbox: BOOL.
    Text: STRING. Comma-separated values with a datatype: vectors, matrices (rows split by `;`) and
    tensors, untagged included (an empty field holds no value: its grey text is only an example, and
    `[]` sends an empty tensor). Image picker: IMAGE and MP_IMAGE (test pattern, astronaut photo,
    a file by path or upload, or an array from `set_array`), with a thumbnail. `hint` (what the graph's
    file needs changed before this input can work) shows under it. `box` is what shows.
    """

    def __init__(self, name: str, kind: StreamKind | str = StreamKind.UNKNOWN, *, tag: str = "",
                 datatype: str | None = None, hint: str = "", **kwargs: Any) -> None:
        self.name = name
        self.kind = kind if isinstance(kind, StreamKind) else StreamKind(kind)
        self.tag = tag
        self.box = widgets.VBox(**kwargs)
        self._own(close_all, [self.box])
        self.status = widgets.HTML()
        self.output = widgets.Output()
        label = f"<b>{html.escape(name)}</b>"
        if tag and tag != name:
            label += f' <span style="color:{_GREY}">{html.escape(tag)}</span>'
        self.label = widgets.HTML(label, layout=widgets.Layout(min_width="6em"))
        self.include = widgets.Checkbox(value=True, description="send", indent=False,
                                        tooltip="untick to leave this input stream out of the request",
                                        layout=widgets.Layout(width="5em"))
        self.datatype: widgets.Dropdown | None = None
        self._array: np.ndarray | None = None
        self._error = ""
        self._setting = False
        self._extra: list[widgets.Widget] = []
        if hint:  # what the graph's file needs changed before a request to this input can work
            self._extra.append(widgets.HTML(f'<span style="color:{_AMBER};font-size:12px">{html.escape(hint)}</span>'))
        if self.kind in IMAGE_KINDS:
            row = self._build_image()
        elif self.kind in NUMBER_KINDS:
            integer = np.issubdtype(NUMBER_KINDS[self.kind], np.integer)
            self.input = (widgets.IntText(value=0) if integer else widgets.FloatText(value=0.0))
            row = [self.input]
        elif self.kind is StreamKind.BOOL:
            self.input = widgets.Checkbox(value=False, indent=False, description="true")
            row = [self.input]
        elif self.kind is StreamKind.STRING:
            self.input = widgets.Text(value="", placeholder="e.g. hello")
            row = [self.input]
        elif self.kind in TEXT_KINDS:
            options = TEXT_KINDS[self.kind]
            if datatype is not None and datatype not in options:
                options = (datatype, *options)
            self.input = widgets.Text(value="", placeholder=_EXAMPLE, continuous_update=True,
                                      layout=widgets.Layout(width="22em"))
            self.datatype = widgets.Dropdown(options=list(options), value=datatype or options[0],
                                             layout=widgets.Layout(width="7em"))
            self.input.observe(self._on_text, names="value")
            self.datatype.observe(self._on_text, names="value")
            row = [self.input, self.datatype]
        else:
            self.input = widgets.HTML(f'<span style="color:{_RED}">{self.kind.value} inputs cannot be built '
                                      "here (an OVMS C++ packet type)</span>")
            row = [self.input]
        self.box.children = [widgets.HBox([self.include, self.label, *row, self.status]), *self._extra, self.output]
        if self.kind in TEXT_KINDS:
            self._on_text()

    # -- the value ---------------------------------------------------------------------------------------------

    @property
    def value(self) -> object:
        """The input value (numpy array or scalar, bool, str); ValueError when the editor holds none."""
        kind = self.kind
        if kind in IMAGE_KINDS:
            if self._array is None:
                raise ValueError(f"input {self.name!r}: no image ({self._error or 'pick a source'})")
            return self._array
        if kind in NUMBER_KINDS:
            scalar_type = NUMBER_KINDS[kind]
            number = self.input.value
            if np.issubdtype(scalar_type, np.integer):
                info = np.iinfo(np.dtype(scalar_type).name)
                if not info.min <= int(number) <= info.max:
                    raise ValueError(f"input {self.name!r}: {number} does not fit {kind.value} "
                                     f"({info.min}..{info.max})")
            return scalar_type(number)
        if kind is StreamKind.BOOL:
            return bool(self.input.value)
        if kind is StreamKind.STRING:
            return str(self.input.value)
        if kind in TEXT_KINDS:
            assert self.datatype is not None
            if not str(self.input.value).strip():  # the placeholder only shows an example: nothing is typed
                raise ValueError(f"input {self.name!r} is empty: {_EMPTY_HINT}")
            try:
                return parse_values(self.input.value, self.datatype.value)
            except ValueError as error:
                raise ValueError(f"input {self.name!r}: {error}") from None
        raise ValueError(f"input {self.name!r}: {kind.value} inputs cannot be built here")

    def set_array(self, array: object) -> None:
        """Put a value in the editor from code: an image array, a vector (shown as text) or a scalar."""
        if self.kind in IMAGE_KINDS:
            image = _image_array(array)
            with self.box.hold_sync():
                self._setting = True
                try:
                    self.source.value = "array"
                finally:
                    self._setting = False
                self._show_image(image)
            return
        values = np.asarray(array)
        if self.kind in NUMBER_KINDS or self.kind is StreamKind.BOOL:
            self.input.value = values.reshape(-1)[0].item()
        elif self.kind is StreamKind.STRING:
            item = values.reshape(-1)[0]
            self.input.value = item.decode() if isinstance(item, bytes) else str(item)
        elif self.kind in TEXT_KINDS:
            assert self.datatype is not None
            rows = values.reshape(1, -1) if values.ndim <= 1 else values.reshape(values.shape[0], -1)
            text = "; ".join(", ".join(_item_text(v) for v in row) for row in rows)
            with self.box.hold_sync():
                if values.dtype.kind in "OSU":
                    self.datatype.value = "BYTES" if "BYTES" in self.datatype.options else self.datatype.value
                elif values.dtype.kind in "biuf":
                    wanted = datatype_of(values.dtype)
                    if wanted in self.datatype.options:
                        self.datatype.value = wanted
                self.input.value = text
        else:
            raise ValueError(f"input {self.name!r}: {self.kind.value} inputs cannot be built here")

    def _on_text(self, _change: object = None) -> None:
        if not str(self.input.value).strip():
            self.status.value = f'<span style="color:{_GREY}">empty: {html.escape(_EMPTY_HINT)}</span>'
            return
        try:
            parsed = self.value
        except ValueError as error:
            self.status.value = f'<span style="color:{_RED}">{html.escape(str(error))}</span>'
        else:
            self.status.value = f'<span style="color:{_GREY}">{_describe(parsed)}</span>'

    # -- images ------------------------------------------------------------------------------------------------

    def _build_image(self) -> list[widgets.Widget]:
        self.source = widgets.Dropdown(options=list(IMAGE_SOURCES), value="gradient",
                                       layout=widgets.Layout(width="14em"))
        size = {"style": {"description_width": "1.5em"}, "layout": widgets.Layout(width="8em")}
        self.height = widgets.BoundedIntText(value=240, min=1, max=4096, description="H", **size)
        self.width = widgets.BoundedIntText(value=320, min=1, max=4096, description="W", **size)
        self.path = widgets.Text(value="", placeholder="path/to/image.png", continuous_update=False,
                                 layout=widgets.Layout(width="20em"))
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
        self.thumbnail = widgets.Image(format="png", layout=widgets.Layout(max_width="160px"))
        self.input = self.source
        self._extra = [widgets.HBox([self.height, self.width, self.path, self.upload]), self.thumbnail]
        self.source.observe(self._on_source, names="value")
        for widget in (self.height, self.width, self.path, self.upload):
            widget.observe(self._on_source, names="value")
        self._on_source()
        return [self.source]

    def _on_source(self, _change: object = None) -> None:
        if self._setting:
            return
        source = self.source.value
        # H and W size only the test patterns; a photo, file or array has its own size (the status line says it)
        self.height.disabled = self.width.disabled = source not in _PATTERNS
        if source == "array":
            if self._array is None:
                self._fail("no array yet: call set_array(a) from code")
            return
        try:
            image = self._load(source)
        except Exception as error:
            self._fail(str(error))
            return
        self._show_image(image)

    def _load(self, source: str) -> np.ndarray:
        from ovms_notebook import sources

        pattern = _PATTERNS.get(source)
        if pattern is not None:
            return sources.test_pattern(pattern, (self.height.value, self.width.value))
        if source == "astronaut":
            return sources.astronaut()
        if self.upload.value:
            item = self.upload.value[-1]
            return _decode_image_bytes(bytes(item["content"]), item.get("name", "upload"))
        if self.path.value.strip():
            path = Path(self.path.value.strip()).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no image file at {path}")
            return _decode_image_bytes(path.read_bytes(), str(path))
        raise ValueError("type a path or upload an image")

    def _show_image(self, image: np.ndarray) -> None:
        self._array, self._error = image, ""
        with self.box.hold_sync():
            self.thumbnail.value = thumbnail_png(image)
            self.status.value = f'<span style="color:{_GREY}">{_describe(image)}</span>'

    def _fail(self, message: str) -> None:
        self._array, self._error = None, message
        self.status.value = f'<span style="color:{_RED}">{html.escape(message)}</span>'

    def __repr__(self) -> str:
        return f"<InputEditor {self.name!r} {self.kind.value}>"


def _decode_image_bytes(data: bytes, what: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as picture:
            return np.ascontiguousarray(np.asarray(picture.convert("RGB"), dtype=np.uint8))
    except Exception as error:
        raise ValueError(f"cannot read {what} as an image: {error}") from None


def _item_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return str(value)
