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

    ``QAT_INT8`` (for a quantization-aware-trained model, exported by
    :func:`export.convert.onnx.export_integer_onnx`): every op's float inputs and outputs as QDQ
    pairs, as the training rounded every op's output — MatMul / Gemm (none kept in float),
    embeddings, LayerNorm, GELU, Softmax, the residual adds, the mask selection (its constants
    quantized on the output's scale, exactly) — with full 8-bit per-channel weights (the
    training simulated 8 bits). The form QNN / NPU toolchains take whole. Checked afterwards: a
    MatMul / Gemm with an input that is not dequantized raises (:func:`unquantized_matmuls`).

    ``STATIC_INT8``: QuantizeLinear/DequantizeLinear pairs around every MatMul and Gemm
    (attention's Q·Kᵀ and probabilities·V included), int8 weights per output channel (7-bit,
    as above) and uint8 activations whose ranges are the min/max seen on ``calibration``; see
    :func:`float_matmuls` for the ones kept in float. The attention mask, Softmax,
    LayerNorm, GELU and the embeddings stay in float.

    Args:
        fp32_path: The fp32 model.
        out_path: Where the quantized model goes (its folder is created).
        mode: The quantization mode.
        calibration: ``STATIC_INT8`` and ``QAT_INT8`` only: model inputs, one dict per text, each value
            ``[1, length]`` token ids (int32 or int64; cast to what the model declares).

    Raises:
        QuantizationError: a calibrated mode without calibration inputs, or with inputs that
            do not match the model's, or the quantizer failed, or (``QAT_INT8``) left a MatMul /
            Gemm input in float. Nothing is left behind.
    """
    if mode.calibrated and not calibration:
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
            if mode.calibrated:
                _quantize_static(fp32_path, produced, calibration or (), qat=mode is OnnxQuant.QAT_INT8)
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


def _quantize_static(
    fp32_path: Path, out_path: Path, calibration: Sequence[Mapping[str, np.ndarray]], *, qat: bool = False
) -> None:
    """Pre-processes (shape inference, basic graph optimisation) and quantizes to QDQ, in ``out_path``'s
    folder; ``qat``: every MatMul / Gemm, the embedding tables, 8-bit weights, checked afterwards."""
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
            # Every op type: ORT wraps the float tensors only (shape arithmetic stays int64).
            op_types_to_quantize=sorted({n.op_type for n in model.graph.node}) if qat else ["MatMul", "Gemm"],
            nodes_to_exclude=None if qat else float_matmuls(model),
            per_channel=True,
            # 7-bit weights, as for dynamic: with full 8-bit ones ORT's u8×s8 kernels on x86
            # without VNNI saturate int16 pair sums (tiny BERT here: max |Δ| 0.28 → 0.06,
            # mean 0.084 → 0.014). Label agreement on the real models moved by noise only.
            # A QAT model was trained for 8-bit weights, which is what an NPU runs.
            reduce_range=not qat,
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
    if qat:
        quantized = onnx.load(str(out_path))
        if quantize_selected_constants(quantized):
            onnx.save(quantized, str(out_path))
        left = unquantized_matmuls(quantized)
        if left:
            raise QuantizationError(
                f"ONNX {OnnxQuant.QAT_INT8.value} quantization of {fp32_path.name} left {len(left)} MatMul/Gemm "
                f"with a float input: {', '.join(left[:8])}{' …' if len(left) > 8 else ''}; ORT's QDQ "
                "quantizer did not take them (an op between them and a quantized tensor it cannot "
                "quantize?). Use onnx.quantize=int8-static, or report the model type"
            )


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


def unquantized_matmuls(model: Any) -> list[str]:
    """MatMul / Gemm nodes of a QDQ graph with an input (bias aside) not produced by a DequantizeLinear:
    names like ``/encoder/layer.0/…/MatMul (float input 2)``. Empty for a graph in which every
    matrix product reads int8 on both sides."""
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    left = []
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        operands = list(node.input[:2])
        floating = [i for i, t in enumerate(operands, 1) if producer.get(t) != "DequantizeLinear"]
        if floating:
            left.append(f"{node.name} (float input {' and '.join(map(str, floating))})")
    return left


def quantize_selected_constants(model: Any) -> int:
    """Quantizes the float constants a ``Where`` selects from when its output is quantized, on that
    output's scale and zero point (exact: selecting then quantizing is quantizing then selecting).

    ORT's QDQ quantizer leaves them float (the attention mask's fill value and 0), which leaves one
    float op between the token ids and the logits. Edits ``model`` in place; returns how many
    constants it quantized.
    """
    from onnx import helper, numpy_helper  # noqa: PLC0415 - as onnx

    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    done = 0
    nodes = []
    for node in model.graph.node:
        users = consumers.get(node.output[0], []) if node.op_type == "Where" else []
        if len(users) == 1 and users[0].op_type == "QuantizeLinear" and all(i in inits for i in users[0].input[1:3]):
            quant = users[0]
            scale = numpy_helper.to_array(inits[quant.input[1]])
            zero = numpy_helper.to_array(inits[quant.input[2]])
            info = np.iinfo(zero.dtype)
            for k in (1, 2):
                const = inits.get(node.input[k])
                if const is None or const.data_type != onnx_float():
                    continue
                values = numpy_helper.to_array(const)
                q = np.clip(np.round(values / scale) + zero.astype(np.int64), info.min, info.max).astype(zero.dtype)
                q_name, dq_out = f"{node.name}_input{k}_quantized", f"{node.name}_input{k}_dequantized"
                model.graph.initializer.append(numpy_helper.from_array(q, q_name))
                nodes.append(
                    helper.make_node(
                        "DequantizeLinear", [q_name, quant.input[1], quant.input[2]], [dq_out], name=f"{q_name}_DQ"
                    )
                )
                node.input[k] = dq_out
                done += 1
        nodes.append(node)
    if done:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        used = {name for node in model.graph.node for name in node.input}
        unused = [i for i in model.graph.initializer if i.name not in used]
        for init in unused:
            model.graph.initializer.remove(init)
    return done


def onnx_float() -> int:
    """ONNX's element type code for float32."""
    import onnx  # noqa: PLC0415 - as onnx

    return int(onnx.TensorProto.FLOAT)


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
