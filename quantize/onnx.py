"""ONNX Runtime quantization of an fp32 ``.onnx`` file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from export.errors import QuantizationError
from quantize.modes import OnnxQuant


def quantize_onnx(fp32_path: Path, out_path: Path, mode: OnnxQuant) -> Path:
    """Quantizes an fp32 ONNX model into ``out_path`` (written atomically).

    ``DYNAMIC_INT8``: int8 weights, per output channel (per-tensor loses accuracy on
    MiniLM-sized models), signed int8 weights without reduced range, and activations
    quantized at run time. MatMul and Gemm are quantized; attention softmax, LayerNorm
    and GELU stay in float.

    Raises:
        QuantizationError: the quantizer failed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    if mode is not OnnxQuant.DYNAMIC_INT8:  # pragma: no cover - enum has one member today
        raise QuantizationError(f"ONNX quantization mode {mode.value!r} is not implemented")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".quant-", suffix=".onnx")
    os.close(fd)
    try:
        quantize_dynamic(
            fp32_path,
            tmp,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
        )
        os.replace(tmp, out_path)
    except Exception as e:  # noqa: BLE001 - ORT raises many types
        raise QuantizationError(f"ONNX {mode.value} quantization of {fp32_path.name} failed: {e}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_path
