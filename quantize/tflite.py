"""Post-training quantization of an fp32 TFLite flatbuffer with ai-edge-quantizer.

The model is converted once, in fp32; every other precision is derived from that
flatbuffer, so conversion problems and quantization problems stay separate.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ai_edge_quantizer import quantizer as aeq
from ai_edge_quantizer import recipe, recipe_manager
from ai_edge_quantizer.algorithm_manager import AlgorithmName
from ai_edge_quantizer.qtyping import TFLOperationName
from tqdm.auto import tqdm

from quantize import full_integer
from quantize.errors import ConversionError
from quantize.flatbuffer import compact
from quantize.full_integer import Inputs, SensitivityResult
from quantize.modes import TfliteQuant

__all__ = [
    "TfliteQuant",
    "TfliteQuantizationError",
    "calibrate_tflite",
    "quantize_tflite",
    "quantize_tflite_calibrated",
]


class TfliteQuantizationError(ConversionError):
    """ai-edge-quantizer failed on an fp32 TFLite flatbuffer."""


def _recipe(mode: TfliteQuant) -> Any:
    if mode is TfliteQuant.DYNAMIC_INT8:
        # Symmetric per-channel int8 weights; activations are quantized at run time.
        return recipe.dynamic_wi8_afp32()
    if mode is TfliteQuant.WEIGHT_ONLY_INT8:
        # int8 per-channel weights, dequantized for float kernels: size of int8, accuracy of fp32.
        return recipe.weight_only_wi8_afp32()
    # FP16: weight-only "float casting" of FULLY_CONNECTED / EMBEDDING_LOOKUP weights.
    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(
        regex=".*",
        operation_name=TFLOperationName.ALL_SUPPORTED,
        num_bits=16,
        algorithm_key=AlgorithmName.FLOAT_CASTING,
    )
    return manager.get_quantization_recipe()


def write_atomic(data: bytes, out_path: Path) -> Path:
    """Writes ``data`` to ``out_path`` via a temp file in the same directory.

    ``os.replace`` is atomic on one filesystem, so readers see either the old
    file or the complete new one, and a crash leaves no partial ``out_path``.

    Returns:
        ``out_path``.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; bundles are meant to be shared
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


def quantize_tflite(fp32_path: Path, out_path: Path, mode: TfliteQuant) -> Path:
    """Writes a quantized copy of an fp32 TFLite model.

    Input/output names, shapes and dtypes are unchanged, so a runtime binds the
    quantized model exactly like the fp32 one.

    Args:
        fp32_path: The fp32 ``.tflite`` produced by the converter.
        out_path: Where to write the quantized model. Written atomically: on any
            failure nothing is left at ``out_path``.
        mode: ``DYNAMIC_INT8`` (int8 per-channel weights, activations quantized
            at run time), ``WEIGHT_ONLY_INT8`` (int8 weights, float compute) or ``FP16``
            (float16 weights, float compute).

    Returns:
        ``out_path``.

    Raises:
        ValueError: ``mode`` is ``FP32`` or not a ``TfliteQuant``.
        TfliteQuantizationError: The fp32 file cannot be read or the quantizer failed.
    """
    if not isinstance(mode, TfliteQuant) or mode is TfliteQuant.FP32 or mode.calibrated:
        allowed = [m.value for m in TfliteQuant if m is not TfliteQuant.FP32 and not m.calibrated]
        raise ValueError(
            f"quantize_tflite mode must be one of {allowed}, got {mode!r} "
            "(calibrated modes go through quantize_tflite_calibrated)"
        )
    fp32_path = Path(fp32_path)
    out_path = Path(out_path)
    try:
        float_model = fp32_path.read_bytes()
    except OSError as e:
        raise TfliteQuantizationError(f"cannot read fp32 TFLite model {fp32_path}: {e}") from e
    try:
        qt = aeq.Quantizer(bytearray(float_model), _recipe(mode))
        # Both default to writing to stdout/stderr; library code stays silent.
        result = qt.quantize(enable_progress_bar=False, enable_progress_report=False)
    except Exception as e:  # the quantizer raises many unrelated types
        raise TfliteQuantizationError(
            f"ai-edge-quantizer failed to quantize {fp32_path} to {mode.value}: "
            f"{type(e).__name__}: {e}. Check the fp32 model runs, or try another mode."
        ) from e
    if result.quantized_model is None:
        raise TfliteQuantizationError(f"ai-edge-quantizer returned no model for {fp32_path}")
    # Weights inside the flatbuffer, whatever the quantizer chose, repeated tables once (see quantize.flatbuffer).
    return write_atomic(compact(result.quantized_model), out_path)


def calibrate_tflite(fp32_path: Path, calibration: Inputs) -> dict:
    """Activation ranges of every tensor of an fp32 model, from calibration inputs.

    One calibration serves every calibrated mode (ranges do not depend on the bit width).

    Args:
        fp32_path: The fp32 ``.tflite`` (converted with a bounded attention-mask fill).
        calibration: ``(signature key, inputs)`` per calibration text; every signature needs one.

    Raises:
        TfliteQuantizationError: a signature has no calibration data, or the calibrator failed.
    """
    try:
        return full_integer.calibrate(Path(fp32_path).read_bytes(), calibration)
    except Exception as e:  # the quantizer raises many unrelated types
        raise TfliteQuantizationError(
            f"calibrating {fp32_path} failed: {type(e).__name__}: {e}. "
            "Every signature (length bucket) needs calibration texts."
        ) from e


def quantize_tflite_calibrated(
    fp32_path: Path,
    out_path: Path,
    mode: TfliteQuant,
    ranges: dict,
    sensitivity: Inputs,
    *,
    target_agreement: float = 0.99,
    max_float_groups: int = 12,
    start_groups: Sequence[str] = (),
) -> tuple[Path, SensitivityResult]:
    """Full-integer int8 (float or int8 logits) or 16x8 quantization with a sensitivity search.

    Activations get the calibrated ``ranges``; op groups are kept in float, the most
    helpful first, until label agreement with the fp32 model on ``sensitivity`` reaches
    ``target_agreement`` (see :mod:`quantize.full_integer`).

    Args:
        fp32_path: The fp32 ``.tflite`` the ranges were calibrated on.
        out_path: Where to write the quantized model (atomically).
        mode: ``FULL_INT8``, ``FULL_INT8_IO`` or ``INT16X8``.
        ranges: From :func:`calibrate_tflite`.
        sensitivity: ``(signature key, inputs)`` per held-out text that scores the trials.
        target_agreement: Agreement with fp32 to reach.
        max_float_groups: Most op groups kept in float.
        start_groups: Groups kept in float from the outset (what ``int8-full`` found, for
            ``int8-full-int8-io``, which differs only in its output type).

    Returns:
        ``out_path`` and the search's measurements (``result.notes()`` for the report). The
        model is written even when the target is not met; the accuracy gate decides.

    Raises:
        ValueError: ``mode`` is not a calibrated mode.
        TfliteQuantizationError: the quantizer failed.
    """
    if not isinstance(mode, TfliteQuant) or not mode.calibrated:
        allowed = [m.value for m in TfliteQuant if m.calibrated]
        raise ValueError(f"quantize_tflite_calibrated mode must be one of {allowed}, got {mode!r}")
    flatbuffer = Path(fp32_path).read_bytes()
    with tqdm(desc=f"sensitivity search {mode.value}", unit="trial", leave=False) as bar:
        try:
            model, result = full_integer.search_float_groups(
                flatbuffer,
                ranges,
                mode,
                sensitivity,
                target=target_agreement,
                max_groups=max_float_groups,
                start=start_groups,
                progress=lambda n: bar.update(n - bar.n),
            )
        except Exception as e:  # the quantizer raises many unrelated types
            raise TfliteQuantizationError(
                f"ai-edge-quantizer failed to quantize {fp32_path} to {mode.value}: {type(e).__name__}: {e}"
            ) from e
    return write_atomic(compact(model), Path(out_path)), result
