"""TFLite flatbuffer layout: every weight inside the flatbuffer.

ai-edge-quantizer writes a model whose buffers hold over 256 KiB (any real BERT student) with the
weights *after* the flatbuffer, each buffer naming an ``offset`` into the file. Desktop LiteRT
reads that layout (tested down to ai-edge-litert 1.4.0), but Android LiteRT 1.4.x has public
reports of "Input tensor N lacks data" on such files, and tools that read the flatbuffer alone
(older interpreters, Netron builds, TFLite Micro) do not follow the offsets. :func:`inline_buffers`
rewrites a model with every buffer's bytes back inside the flatbuffer (a model under 2 GB, as
every model the kit makes is, always fits), so every TFLite bundle has the classic layout.
"""

from __future__ import annotations

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
    if len(model) > _FLATBUFFER_LIMIT:
        raise ConversionError(
            f"a {len(model) / 2**30:.1f} GiB TFLite model cannot hold its weights inside the flatbuffer"
        )
    data = np.frombuffer(bytes(model), dtype=np.uint8)
    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
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
    inlined = bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
    if offset_buffers(inlined):
        raise ConversionError("inlining the TFLite buffers left a buffer outside the flatbuffer")
    return inlined
