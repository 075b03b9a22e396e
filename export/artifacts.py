"""What the exporters produce: one :class:`Artifact` per model file."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Format(StrEnum):
    PYTORCH = "pytorch"
    ONNX = "onnx"
    TFLITE = "tflite"


@dataclass(frozen=True)
class Artifact:
    """One exported (or quantized) model file.

    Attributes:
        name: Unique name, e.g. ``student-onnx-int8-dynamic``; also the bundle folder name.
        path: The model file (for PyTorch: the ``save_pretrained`` folder).
        format: Which runtime runs it.
        precision: ``fp32`` or a quantization mode's value.
        model: Role of the PyTorch model it came from (``teacher`` / ``student``).
        source: Name of the fp32 artifact it must match (PyTorch model for fp32 exports,
            the fp32 export for quantized ones); empty for the PyTorch models themselves.
        fixed_length: The sequence length a TFLite model requires; None for dynamic axes.
        opset: ONNX opset, when ONNX.
        notes: What the quantizer decided and why (e.g. the op groups a full-integer model
            keeps in float, with their measured sensitivity); printed in the report.
    """

    name: str
    path: Path
    format: Format
    precision: str
    model: str
    source: str
    fixed_length: int | None = None
    opset: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def quantized(self) -> bool:
        return self.precision != "fp32"
