"""ONNX Runtime quantization of an fp32 ``.onnx`` file: dynamic int8, and static int8 (QDQ)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quantize.errors import QuantizationError
from quantize.modes import OnnxQuant

log = logging.getLogger(__name__)

#: Element-wise ops a walk back from a MatMul input passes through to find the nonlinearity.
_ELEMENTWISE = frozenset({"Mul", "Add", "Sub", "Div", "Pow", "Sqrt", "Identity", "Cast"})
#: Nonlinearities whose outputs are too heavy-tailed for a calibrated per-tensor int8 range.
_NONLINEAR = frozenset({"Erf", "Tanh", "Relu", "Sigmoid", "Gelu", "FastGelu", "BiasGelu", "QuickGelu"})
#: How far back (in nodes) from a MatMul input the nonlinearity may sit: GELU is x·½·(1+erf(x/√2)).
_NONLINEAR_DEPTH = 4


def quantize_onnx(
    fp32_path: Path,
    out_path: Path,
    mode: OnnxQuant,
    calibration: Sequence[Mapping[str, np.ndarray]] | None = None,
) -> Path:
    """Quantizes an fp32 ONNX model into ``out_path`` (written atomically, mode 0644).

    ``DYNAMIC_INT8``: int8 weights, per output channel (per-tensor loses accuracy on
    MiniLM-sized models), signed int8 weights with reduced (7-bit) range, and activations
    quantized at run time. Embedding tables (Gather) are stored in int8 too, which
    makes a MiniLM-sized student 3x smaller (54 → 18 MB). Only MatMul / Gemm nodes that
    multiply by a weight are quantized: ORT would otherwise also quantize the activation × activation MatMuls of
    attention (Q·Kᵀ and probabilities·V), whose per-tensor uint8 rounding flips labels
    (seen on tiny BERTs here; onnxruntime#9599 reports MiniLM near random). Softmax,
    LayerNorm and GELU stay in float.

    ``STATIC_INT8``: QuantizeLinear/DequantizeLinear pairs around every MatMul and Gemm
    (attention's Q·Kᵀ and probabilities·V included), int8 weights per output channel (7-bit,
    as above) and uint8 activations whose ranges are the min/max seen on ``calibration``; see
    :func:`float_matmuls` for the ones kept in float. The attention mask, Softmax,
    LayerNorm, GELU and the embeddings stay in float.

    Args:
        fp32_path: The fp32 model.
        out_path: Where the quantized model goes (its folder is created).
        mode: The quantization mode.
        calibration: ``STATIC_INT8`` only: model inputs, one dict per text, each value
            ``[1, length]`` token ids (int32 or int64; cast to what the model declares).

    Raises:
        QuantizationError: ``STATIC_INT8`` without calibration inputs, or with inputs that
            do not match the model's, or the quantizer failed. Nothing is left behind.
    """
    if mode is OnnxQuant.STATIC_INT8 and not calibration:
        raise QuantizationError(
            f"ONNX {mode.value} quantization of {fp32_path.name} needs calibration inputs (model inputs of "
            "a few hundred training texts); pass calibration=..., or use onnx.quantize=int8-dynamic"
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Every intermediate file (pre-processed model, ORT's "-inferred" copies, the output)
    # lives in this folder, which is removed whatever happens; beside out_path so that
    # the final rename is atomic.
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quant-") as tmp:
        produced = Path(tmp) / "quantized.onnx"
        try:
            if mode is OnnxQuant.STATIC_INT8:
                _quantize_static(fp32_path, produced, calibration or ())
            else:
                _quantize_dynamic(fp32_path, produced)
        except QuantizationError:
            raise
        except Exception as e:  # ORT raises many types; re-raised as QuantizationError
            raise QuantizationError(
                f"ONNX {mode.value} quantization of {fp32_path.name} failed: {type(e).__name__}: {e}"
            ) from e
        os.chmod(produced, 0o644)  # bundles are meant to be shared
        os.replace(produced, out_path)
    return out_path


def _quantize_dynamic(fp32_path: Path, out_path: Path) -> None:
    import onnx  # noqa: PLC0415 - loaded when quantizing: importing quantize/ stays light
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415 - as onnx

    quantize_dynamic(
        fp32_path,
        out_path,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"],
        nodes_to_quantize=weight_nodes(onnx.load(str(fp32_path))),
        per_channel=True,
        # 7-bit weights: ORT's u8×s8 kernels on x86 without VNNI (and some with it) can
        # saturate int16 pair sums; on a tiny BERT here max |Δ| went 0.10 → 0.019 with it.
        reduce_range=True,
        weight_type=QuantType.QInt8,
        # Fused contrib ops (Attention, SkipLayerNormalization) defeat shape inference.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _quantize_static(fp32_path: Path, out_path: Path, calibration: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Pre-processes (shape inference, basic graph optimisation) and quantizes to QDQ, in ``out_path``'s folder."""
    import onnx  # noqa: PLC0415 - loaded when quantizing: importing quantize/ stays light
    from onnxruntime.quantization import (  # noqa: PLC0415 - as onnx
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    work = out_path.parent
    source = work / "preprocessed.onnx"
    try:
        quant_pre_process(str(fp32_path), str(source), auto_merge=True)
    except Exception as e:  # noqa: BLE001 - shape inference fails in many ways
        log.warning(
            "ONNX quantization pre-processing of %s failed (%s: %s); quantizing the model as exported",
            fp32_path.name,
            type(e).__name__,
            str(e).strip().splitlines()[0][:200] if str(e).strip() else "",
        )
        source = work / "exported.onnx"
        # A copy: ORT writes a "-inferred" file beside its input, which must land in ``work``.
        shutil.copyfile(fp32_path, source)
    model = onnx.load(str(source))
    reader = _CalibrationReader(calibration, _input_dtypes(model), fp32_path.name)
    try:
        quantize_static(
            source,
            out_path,
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Gemm"],
            nodes_to_exclude=float_matmuls(model),
            per_channel=True,
            # 7-bit weights, as for dynamic: with full 8-bit ones ORT's u8×s8 kernels on x86
            # without VNNI saturate int16 pair sums (tiny BERT here: max |Δ| 0.28 → 0.06,
            # mean 0.084 → 0.014). Label agreement on the real models moved by noise only.
            reduce_range=True,
            # uint8 activations: as accurate as int8 here, and ORT's x86 kernels for u8×s8
            # ran ~3x faster than for s8×s8 (which were 2x slower than fp32).
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # MinMax: Percentile (99.99) clips the outlier channels of BERT's hidden states
            # and lost 8-10 points of label agreement on MiniLM / DistilBERT, Entropy 0.1-1.3.
            # (Not CalibMaxIntermediateOutputs: ORT 1.32 drops every full chunk of outputs
            # without merging its ranges. MinMax keeps only per-tensor min/max per text anyway.)
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        reader.close()


def float_matmuls(model: Any) -> list[str]:
    """MatMul / Gemm nodes that read the output of a nonlinearity (GELU, ReLU, tanh), kept in float.

    These are each block's FFN down-projection and the classification head. GELU outputs
    are heavy-tailed: the per-tensor int8 range that covers their peaks leaves too little
    resolution for the rest (a 3-layer DistilBERT student agreed with fp32 on 96.9 % of
    labels with them in int8, 99.3 % without; the first block's alone accounts for most).
    Found by graph structure, not by name, so it holds for every architecture.
    """
    producer = {out: node for node in model.graph.node for out in node.output}

    def after_nonlinearity(tensor: str, depth: int) -> bool:
        node = producer.get(tensor)
        if node is None or depth == 0:
            return False
        if node.op_type in _NONLINEAR:
            return True
        return node.op_type in _ELEMENTWISE and any(after_nonlinearity(i, depth - 1) for i in node.input)

    return [
        node.name
        for node in model.graph.node
        if node.op_type in ("MatMul", "Gemm") and after_nonlinearity(node.input[0], _NONLINEAR_DEPTH)
    ]


def weight_nodes(model: Any) -> list[str]:
    """Names of the nodes that read a weight: MatMul / Gemm with an initializer input, and
    Gather from an initializer table (the embeddings)."""
    weights = {init.name for init in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if (node.op_type in ("MatMul", "Gemm") and any(i in weights for i in node.input))
        or (node.op_type == "Gather" and node.input[0] in weights)
    ]


def _input_dtypes(model: Any) -> dict[str, type[np.integer]]:
    """Graph input name → the numpy integer type it declares (int64 for Hugging Face exports)."""
    import onnx  # noqa: PLC0415 - loaded when quantizing: importing quantize/ stays light

    initializers = {i.name for i in model.graph.initializer}
    return {
        i.name: np.int32 if i.type.tensor_type.elem_type == onnx.TensorProto.INT32 else np.int64
        for i in model.graph.input
        if i.name not in initializers
    }


class _CalibrationReader:
    """The calibration inputs, cast to the model's dtypes, with a progress bar on stderr (when it is a terminal).

    ORT's ``CalibrationDataReader`` is any object with ``get_next``; this one is not derived
    from it so that importing this module does not import onnxruntime.
    """

    def __init__(
        self, inputs: Sequence[Mapping[str, np.ndarray]], dtypes: Mapping[str, type[np.integer]], name: str
    ) -> None:
        from tqdm.auto import tqdm  # noqa: PLC0415 - tqdm comes with the export extra, not onnxruntime

        missing = set(dtypes) - set(inputs[0])
        if missing:
            raise QuantizationError(
                f"calibration inputs for {name} lack {sorted(missing)}; the model takes {sorted(dtypes)} "
                "(encode the texts with the model's own tokenizer and input names)"
            )
        self._inputs = inputs
        self._dtypes = dtypes
        self._next = 0
        self._bar = tqdm(
            total=len(inputs), desc=f"calibrating {name}", unit="text", file=sys.stderr, disable=not sys.stderr.isatty()
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._inputs):
            return None
        row = self._inputs[self._next]
        self._next += 1
        self._bar.update(1)
        return {k: np.asarray(row[k], dtype=t) for k, t in self._dtypes.items()}

    def rewind(self) -> None:
        self._next = 0
        self._bar.reset()

    def close(self) -> None:
        self._bar.close()

    def __iter__(self) -> _CalibrationReader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        row = self.get_next()
        if row is None:
            raise StopIteration
        return row
