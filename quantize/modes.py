"""Quantization modes, as enums so configs never carry magic strings."""

from __future__ import annotations

from enum import StrEnum


class OnnxQuant(StrEnum):
    """ONNX Runtime quantization modes."""

    DYNAMIC_INT8 = "int8-dynamic"
    """int8 weights (per-channel), activations quantized at run time."""


class TfliteQuant(StrEnum):
    """TFLite precisions produced from the fp32 flatbuffer."""

    FP32 = "fp32"
    FP16 = "fp16"
    """float16 weights, float compute (smaller file; no faster on x86)."""
    DYNAMIC_INT8 = "int8-dynamic"
    """int8 weights, dynamic-range int8 activations."""
