"""Every TFLite file the kit writes keeps its weights inside the flatbuffer (quantize/flatbuffer.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantize.errors import ConversionError
from quantize.flatbuffer import inline_buffers, offset_buffers
from quantize.tflite import TfliteQuant, quantize_tflite
from tests.builders import assert_close, force_external_buffers, tflite_logits, tiny_model


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.convert.tflite import convert_tflite

    return convert_tflite(tiny_model("bert"), tmp_path_factory.mktemp("fb") / "fp32.tflite", lengths=16)


@pytest.fixture
def external_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    force_external_buffers(monkeypatch)


@pytest.mark.slow
@pytest.mark.usefixtures("external_buffers")
def test_quantized_files_hold_their_weights_inside_the_flatbuffer(fp32: Path, tmp_path: Path) -> None:
    from ai_edge_quantizer import quantizer as aeq

    from quantize.tflite import _recipe

    raw = bytes(
        aeq.Quantizer(bytearray(fp32.read_bytes()), _recipe(TfliteQuant.DYNAMIC_INT8)).quantize().quantized_model
    )
    assert offset_buffers(raw) > 0, "the patched quantizer should have written external buffers"
    (tmp_path / "raw.tflite").write_bytes(raw)
    ours = quantize_tflite(fp32, tmp_path / "int8.tflite", TfliteQuant.DYNAMIC_INT8)
    model = ours.read_bytes()
    assert offset_buffers(model) == 0, f"{offset_buffers(model)} buffers still outside the flatbuffer"
    assert_close(tflite_logits(ours), tflite_logits(tmp_path / "raw.tflite"), atol=0, what="inlined vs external")


def test_inlining_a_classic_file_changes_nothing_and_bad_offsets_are_refused(fp32: Path) -> None:
    model = fp32.read_bytes()
    assert offset_buffers(model) == 0 and inline_buffers(model) == model
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    big = max(range(len(obj.buffers)), key=lambda i: 0 if obj.buffers[i].data is None else len(obj.buffers[i].data))
    obj.buffers[big].data, obj.buffers[big].offset, obj.buffers[big].size = None, len(model) * 4, 64
    broken = bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
    with pytest.raises(ConversionError, match=rf"TFLite buffer {big} points at bytes \d+\.\.\d+ of a \d+-byte file"):
        inline_buffers(broken)
