"""Quantization modes, as enums so configs never carry magic strings."""

from __future__ import annotations

from enum import StrEnum


class OnnxQuant(StrEnum):
    """ONNX Runtime quantization modes."""

    DYNAMIC_INT8 = "int8-dynamic"
    """int8 weights (per-channel), activations quantized at run time."""
    STATIC_INT8 = "int8-static"
    """int8 weights and activations as QuantizeLinear/DequantizeLinear (QDQ) pairs, activation
    ranges from a calibration set: the form NPU/DSP toolchains take. Often slower than fp32 on x86."""
    QAT_INT8 = "int8-qat"
    """QDQ int8 of the quantization-aware-trained student (the ``[qat]`` stage, shared with TFLite
    ``int8-qat``): every MatMul / Gemm and both of its inputs quantized (attention's and the FFN
    down-projections included, none kept in float), the embedding tables int8; LayerNorm, GELU and
    Softmax stay float, as ORT's QDQ quantizer leaves them."""

    @property
    def calibrated(self) -> bool:
        """Whether the mode needs activation ranges from calibration inputs."""
        return self is not OnnxQuant.DYNAMIC_INT8


class TfliteQuant(StrEnum):
    """TFLite precisions produced from the fp32 flatbuffer."""

    FP32 = "fp32"
    FP16 = "fp16"
    """float16 weights, float compute (smaller file; no faster on x86)."""
    DYNAMIC_INT8 = "int8-dynamic"
    """int8 weights, dynamic-range int8 activations."""
    WEIGHT_ONLY_INT8 = "int8-weight-only"
    """int8 weights dequantized to float at load/run time; float compute."""
    FULL_INT8 = "int8-full"
    """Full-integer: int8 weights and int8 activations from a calibration set (what Edge TPU,
    Hexagon and NNAPI need); token-id inputs stay int32, logits come out as float32. Ops the
    sensitivity analysis finds too sensitive stay in float (listed in the report)."""
    FULL_INT8_IO = "int8-full-int8-io"
    """As ``FULL_INT8``, but the logits output is int8 too (scale and zero point in the model;
    the runtime dequantizes)."""
    INT16X8 = "16x8"
    """int8 weights, int16 activations (calibrated): close to float accuracy, integer kernels."""
    QAT_INT8 = "int8-qat"
    """Integer-only int8: the student fine-tuned under simulated int8 (quantization-aware training,
    the ``[qat]`` stage), exported with integer embedding lookups and attention mask, every op
    quantized (none kept in float); checked to have no float op between the token ids and the
    logits, which come out as float32."""

    @property
    def calibrated(self) -> bool:
        """Whether the mode's sensitivity search needs activation ranges from calibration data."""
        return self in (TfliteQuant.FULL_INT8, TfliteQuant.FULL_INT8_IO, TfliteQuant.INT16X8)


class GateAction(StrEnum):
    """What the accuracy gate does with a quantized artifact that drops more than ``max_drop``."""

    FAIL = "fail"
    """The run fails (exit 1); the artifact's bundle is not shipped."""
    SKIP = "skip"
    """The artifact is left out of the output; the report says so; the run passes."""
