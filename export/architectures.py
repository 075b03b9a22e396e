"""The architecture table: what differs between BERT-family models, as data.

Inputs are always the subset of the model's ``forward`` arguments that it takes,
read from the model itself (:func:`model_input_names`); the table records what we
expect so that a mismatch is caught, plus per-architecture tolerances.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from export.errors import UnsupportedArchitectureError

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class Arch:
    """What the pipeline needs to know about one ``model_type``.

    Attributes:
        inputs: Model inputs, in this order, that the exported graphs take.
        onnx_atol: Max |logit Δ| allowed between PyTorch and an fp32 ONNX export.
        tflite_atol: Max |logit Δ| allowed between PyTorch and an fp32 TFLite export.
        notes: Anything a user should know about exporting this architecture.
    """

    inputs: tuple[str, ...]
    onnx_atol: float
    tflite_atol: float
    notes: str = ""


ARCHITECTURES: dict[str, Arch] = {
    "bert": Arch(inputs=TOKEN_INPUTS, onnx_atol=1e-4, tflite_atol=1e-3),
    "distilbert": Arch(
        inputs=("input_ids", "attention_mask"),
        onnx_atol=1e-4,
        tflite_atol=1e-3,
        notes="takes no token_type_ids",
    ),
    "mobilebert": Arch(
        inputs=TOKEN_INPUTS,
        onnx_atol=1e-3,
        tflite_atol=1e-3,
        # NoNorm (elementwise affine instead of LayerNorm) and 24 stacked
        # bottlenecks make activations large, so fp32 reorderings show up sooner.
        notes="uses NoNorm instead of LayerNorm; activations are large",
    ),
}


def arch_for(model_type: str) -> Arch:
    """Looks up an architecture.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in the table.
    """
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedArchitectureError(f"model_type {model_type!r} is not supported; supported: {known}") from None


def model_input_names(model: Any) -> tuple[str, ...]:
    """The token inputs a Hugging Face model's ``forward`` accepts, in canonical order."""
    params = inspect.signature(model.forward).parameters
    return tuple(name for name in TOKEN_INPUTS if name in params)
