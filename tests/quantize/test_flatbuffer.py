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


@pytest.mark.slow
def test_compact_shares_repeated_tables_and_changes_no_output(tmp_path: Path) -> None:
    # Three length buckets = three subgraphs, each with its own copy of every weight's per-channel
    # quantization table; compact writes each once. Same tables per tensor, same logits bit for bit.
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    from export.convert.tflite import convert_tflite
    from quantize.flatbuffer import compact

    fp32 = convert_tflite(tiny_model("bert"), tmp_path / "fp32.tflite", lengths=(8, 16, 32))
    quantized = quantize_tflite(fp32, tmp_path / "int8.tflite", TfliteQuant.DYNAMIC_INT8)
    from ai_edge_quantizer import quantizer as aeq

    from quantize.tflite import _recipe

    plain = inline_buffers(
        aeq.Quantizer(bytearray(fp32.read_bytes()), _recipe(TfliteQuant.DYNAMIC_INT8)).quantize().quantized_model
    )
    shipped = quantized.read_bytes()
    assert compact(plain) == shipped, "quantize_tflite should write the compacted model"
    saved = len(plain) - len(shipped)
    assert saved > 0, f"compact saved {saved} bytes on a 3-bucket int8 model ({len(plain)} bytes)"

    def tables(model: bytes) -> list[tuple]:
        obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
        listed = lambda v: None if v is None else np.asarray(v).tolist()  # noqa: E731
        return [
            (g, t.name, t.quantization and (listed(t.quantization.scale), listed(t.quantization.zeroPoint)))
            for g, sg in enumerate(obj.subgraphs)
            for t in sg.tensors
        ]

    assert tables(shipped) == tables(plain), "compact changed a tensor's name or quantization table"
    rng = np.random.default_rng(0)
    for key in ("len_8", "len_16", "len_32"):
        length = int(key[4:])
        ids = rng.integers(1, 90, (1, length)).astype(np.int32)
        outs = []
        for model in (plain, shipped):
            runner = Interpreter(model_content=model, num_threads=1).get_signature_runner(key)
            feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
            outs.append(next(iter(runner(**{n: feeds[n] for n in runner.get_input_details()}).values())))
        assert_close(outs[1], outs[0], atol=0, what=f"compact vs plain, {key}")
