"""A cheap check that a file is an ONNX model (a ``ModelProto`` in protobuf's wire format) before
the cache calls it complete: an HTML login page, an error text or a few stray bytes are not.

Only the top level is walked (every field's tag and length must fit the file exactly, the
``ir_version`` and ``graph`` fields must be there), which takes microseconds for any size; ONNX
Runtime still checks the graph itself when it loads the model.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "weights.onnx"
    >>> _ = path.write_bytes(b"<html>log in</html>")
    >>> onnx_problem(path)
    'byte 0: field 7 has wire type 4, which ONNX does not use'
    >>> _ = path.write_bytes(bytes([0x08, 0x08, 0x3A, 0x00]))  # ir_version 8, an empty graph
    >>> onnx_problem(path) is None
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

_IR_VERSION, _GRAPH = 1, 7


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError(f"byte {position}: a number runs past the end of the file")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


def onnx_problem(path: Path) -> str | None:
    """Why ``path`` is not an ONNX model, or ``None`` when its top level is a well-formed ``ModelProto``."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            return _problem(f, size)
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"


def _problem(f: BinaryIO, size: int) -> str | None:
    seen: set[int] = set()
    position = 0
    while position < size:
        f.seek(position)
        head = f.read(32)
        try:
            key, after = _varint(head, 0)
            field, wire = key >> 3, key & 7
            if field == 0:
                return f"byte {position}: field number 0 does not exist in protobuf"
            if wire == 0:
                _, after = _varint(head, after)
            elif wire == 1:
                after += 8
            elif wire == 5:
                after += 4
            elif wire == 2:
                length, after = _varint(head, after)
                after += length
            else:
                return f"byte {position}: field {field} has wire type {wire}, which ONNX does not use"
        except ValueError as error:
            return str(error).replace("byte ", f"byte {position}+", 1)
        if (field == _IR_VERSION and wire != 0) or (field == _GRAPH and wire != 2):
            return f"byte {position}: field {field} has the wrong type for a ModelProto"
        seen.add(field)
        position += after
    if position != size:
        return f"the last field runs {position - size} bytes past the end of the file"
    missing = [name for number, name in ((_IR_VERSION, "ir_version"), (_GRAPH, "graph")) if number not in seen]
    return f"no {' and no '.join(missing)} field" if missing else None
