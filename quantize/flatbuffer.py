"""TFLite flatbuffer layout: every weight inside the flatbuffer.

ai-edge-quantizer writes a model whose buffers hold over 256 KiB (any real BERT student) with the
weights *after* the flatbuffer, each buffer naming an ``offset`` into the file. Desktop LiteRT
reads that layout (tested down to ai-edge-litert 1.4.0), but Android LiteRT 1.4.x has public
reports of "Input tensor N lacks data" on such files, and tools that read the flatbuffer alone
(older interpreters, Netron builds, TFLite Micro) do not follow the offsets. :func:`inline_buffers`
rewrites a model with every buffer's bytes back inside the flatbuffer (a model under 2 GB, as
every model the kit makes is, always fits), so every TFLite bundle has the classic layout.

:func:`compact` also writes each repeated table once. A model with several length buckets holds
one subgraph per bucket; the weights are shared buffers, but each subgraph's tensors carry their
own copy of the per-channel quantization parameters (for a BERT student mostly the word-embedding
table's per-row scales and int64 zero points: ~0.5 MB) and of the tensor names (~0.14 MB). Flatbuffers
may point many tensors at one table or string, so :func:`compact` does: the same model, ~0.63 MB
less per extra bucket (measured on the SST-2 student).
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils

from quantize.errors import ConversionError

_FLATBUFFER_LIMIT = 2**31 - 1  # flatbuffers use 32-bit offsets


def offset_buffers(model: bytes | bytearray) -> int:
    """How many buffers of a ``.tflite`` keep their bytes outside the flatbuffer (``offset > 1``)."""
    root = schema.Model.GetRootAs(model, 0)
    return sum(1 for i in range(root.BuffersLength()) if root.Buffers(i).Offset() > 1)


def inline_buffers(model: bytes | bytearray) -> bytes:
    """``model`` with every buffer's bytes inside the flatbuffer; unchanged (same bytes) when
    they already are.

    Raises:
        ConversionError: an offset points outside the file, or the inlined model would exceed
            the flatbuffer's 2 GB limit.
    """
    if offset_buffers(model) == 0:
        return bytes(model)
    return _repack(model, share=False)


def compact(model: bytes | bytearray) -> bytes:
    """``model`` with every buffer inside the flatbuffer (as :func:`inline_buffers`) and every
    repeated quantization table and string written once, shared by the tensors that carry it.

    Raises:
        ConversionError: as :func:`inline_buffers`.
    """
    return _repack(model, share=True)


def _repack(model: bytes | bytearray, *, share: bool) -> bytes:
    """Rewrites ``model`` with every buffer inside the flatbuffer; ``share``: repeated tables and
    strings written once."""
    if len(model) > _FLATBUFFER_LIMIT and offset_buffers(model):
        raise ConversionError(
            f"a {len(model) / 2**30:.1f} GiB TFLite model cannot hold its weights inside the flatbuffer"
        )
    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    _inline(obj, model)
    if share:
        tables: dict[bytes, _Shared] = {}
        for subgraph in obj.subgraphs or ():
            for tensor in subgraph.tensors or ():
                key = _quantization_key(tensor.quantization)
                if key is not None:
                    tensor.quantization = tables.setdefault(key, _Shared(tensor.quantization))
    builder = _SharedStringBuilder(1024) if share else flatbuffers.Builder(1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    packed = bytes(builder.Output())
    if offset_buffers(packed):
        raise ConversionError("inlining the TFLite buffers left a buffer outside the flatbuffer")
    return packed


class _Shared:
    """A table packed once per builder: every later ``Pack`` returns the first offset."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._offset: int | None = None

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 - the flatbuffers object API's name
        if self._offset is None:
            self._offset = self._table.Pack(builder)
        return self._offset


class _SharedStringBuilder(flatbuffers.Builder):  # type: ignore[misc]  # flatbuffers ships no stubs
    """A builder that writes each distinct string once (the generated ``Pack`` calls ``CreateString``)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self._strings: dict[bytes, int] = {}

    def CreateString(self, s: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> int:  # noqa: N802
        key = s if isinstance(s, bytes) else s.encode(encoding, errors)
        offset = self._strings.get(key)
        if offset is None:
            offset = self._strings[key] = super().CreateString(s, encoding, errors)
        return offset


def _quantization_key(q: Any) -> bytes | None:
    """The content of a quantization table as bytes, or None for none / one with details (left as is)."""
    if q is None or q.details is not None:
        return None
    parts = [int(q.quantizedDimension).to_bytes(4, "little", signed=True)]
    for values, dtype in ((q.min, np.float32), (q.max, np.float32), (q.scale, np.float32), (q.zeroPoint, np.int64)):
        array = b"" if values is None else np.asarray(values, dtype=dtype).tobytes()
        parts += [b"-" if values is None else len(array).to_bytes(8, "little"), array]
    return b"".join(parts)


def _inline(obj: Any, model: bytes | bytearray) -> None:
    """Moves every buffer's bytes that lie outside the flatbuffer into it (on the object model)."""
    data = np.frombuffer(bytes(model), dtype=np.uint8)
    for index, buffer in enumerate(obj.buffers):
        if buffer.offset > 1:
            end = buffer.offset + buffer.size
            if end > len(data):
                raise ConversionError(
                    f"TFLite buffer {index} points at bytes {buffer.offset}..{end} of a {len(data)}-byte file"
                )
            buffer.data = data[buffer.offset : end].copy()
            buffer.offset = 0
            buffer.size = 0
