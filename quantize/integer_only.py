"""Is a graph integer-only? Counted from the graph itself, not from the mode it was made with.

Integer-only accelerators (Edge TPU, Hexagon / QNN HTP, Ethos-U, most NNAPI int8 drivers)
reject a graph with float ops between its inputs and outputs, or hand it back to the CPU. A
"full-integer" mode that keeps some op groups in float (the sensitivity search of
:mod:`quantize.full_integer`) is therefore *mixed*, and the report must say so.

The rule, for both formats: an op is a **float op** when it reads or writes a floating-point
tensor (float32, float16, bfloat16, float64), except

- constants, and ONNX ``Shape`` / ``Size`` (they read no values);
- the conversions themselves (TFLite ``QUANTIZE`` / ``DEQUANTIZE``; ONNX ``QuantizeLinear``,
  ``DequantizeLinear``, ``DynamicQuantizeLinear``): they are where float meets integer, and
  whatever float op sits on their other side is counted there;
- in ONNX, an op whose every float input comes from a ``DequantizeLinear`` and whose every
  float output goes only to ``QuantizeLinear`` ops: in the QDQ format that is how an int8 op is
  written (a QDQ backend runs the group as one integer kernel).

So a TFLite ``int8-full`` model that dequantizes its logits at the very end is integer-only,
while a dynamic-range model (float activations into int8-weight ``FULLY_CONNECTED``) or one
that dequantizes its weights for a float op is not. For a TFLite model with several signatures
(length buckets), each signature's graph is counted and the worst is reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_TFLITE_CONVERSIONS = frozenset({"QUANTIZE", "DEQUANTIZE"})
_ONNX_CONVERSIONS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
_ONNX_NOT_COMPUTE = frozenset({"Constant", "Shape", "Size"})
"""Data (a constant is typed by its consumer) and ops that read only a tensor's shape."""


@dataclass(frozen=True)
class FloatOps:
    """The float ops of one graph.

    Attributes:
        ops: How many ops the graph has (the worst signature's, for TFLite; for ONNX without
            constants and shape reads).
        float_ops: Op type → how many ops of that type read or write a float tensor.
    """

    ops: int
    float_ops: Mapping[str, int]

    @property
    def count(self) -> int:
        return sum(self.float_ops.values())

    @property
    def integer_only(self) -> bool:
        return self.count == 0

    def describe(self, limit: int = 6) -> str:
        """``integer-only``, or ``mixed: 146 float ops (FULLY_CONNECTED ×14, ADD ×17, …)`` — most frequent first."""
        if self.integer_only:
            return "integer-only"
        ranked = sorted(self.float_ops.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{name} ×{n}" for name, n in ranked[:limit])
        more = f", … {len(ranked) - limit} more types" if len(ranked) > limit else ""
        return f"mixed: {self.count} of {self.ops} ops float ({shown}{more})"


def tflite_float_ops(flatbuffer: bytes) -> FloatOps:
    """The float ops of a TFLite model: every signature's graph counted, the worst one returned."""
    from ai_edge_litert import schema_py_generated as schema  # noqa: PLC0415 - heavy, loaded on use

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    floating = {
        schema.TensorType.FLOAT32,
        schema.TensorType.FLOAT16,
        schema.TensorType.FLOAT64,
        schema.TensorType.BFLOAT16,
    }
    entry = sorted({s.subgraphIndex for s in model.signatureDefs or ()}) or [0]
    worst: FloatOps | None = None
    for index in entry:
        graph = model.subgraphs[index]
        found: Counter[str] = Counter()
        for op in graph.operators or ():
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = names.get(builtin, f"op{builtin}")
            if builtin == schema.BuiltinOperator.CUSTOM and code.customCode:
                name = f"CUSTOM({code.customCode.decode()})"
            if name in _TFLITE_CONVERSIONS:
                continue
            tensors = [t for t in (*_ids(op.inputs), *_ids(op.outputs)) if t >= 0]
            if any(graph.tensors[t].type in floating for t in tensors):
                found[name] += 1
        result = FloatOps(len(graph.operators or ()), dict(found))
        if worst is None or (result.count, result.ops) > (worst.count, worst.ops):
            worst = result
    assert worst is not None
    return worst


def _ids(values: Iterable[int] | None) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def onnx_float_ops(model: object) -> FloatOps:
    """The float ops of an ONNX model (``onnx.ModelProto``; external weights need not be loaded).

    Tensor types come from the graph's inputs, outputs, initializers, value_info and ONNX shape
    inference; a tensor whose type stays unknown (a contrib op inference cannot type) counts as
    float only if its producer is a float op — it is treated as not float.
    """
    import onnx  # noqa: PLC0415 - heavy, loaded on use

    assert isinstance(model, onnx.ModelProto)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - inference is a help here, not a requirement
        inferred = model
    graph = inferred.graph
    floating = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
    }
    types: dict[str, int] = {}
    for info in (*graph.input, *graph.output, *graph.value_info):
        types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}

    def is_float(name: str) -> bool:
        return bool(name) and types.get(name) in floating

    found: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in _ONNX_CONVERSIONS or node.op_type in _ONNX_NOT_COMPUTE:
            continue
        float_in = [n for n in node.input if is_float(n)]
        float_out = [n for n in node.output if is_float(n)]
        if not float_in and not float_out:
            continue
        wrapped = all(
            producer.get(n) is not None and producer[n].op_type == "DequantizeLinear" for n in float_in
        ) and all(
            n not in graph_outputs and consumers.get(n) and all(c.op_type == "QuantizeLinear" for c in consumers[n])
            for n in float_out
        )
        if not wrapped:
            found[node.op_type] += 1
    return FloatOps(sum(n.op_type not in _ONNX_NOT_COMPUTE for n in graph.node), dict(found))


def float_ops(path: Path) -> FloatOps:
    """The float ops of a ``.tflite`` or ``.onnx`` file.

    Raises:
        ValueError: the file is neither.
    """
    path = Path(path)
    if path.suffix == ".tflite":
        return tflite_float_ops(path.read_bytes())
    if path.suffix == ".onnx":
        import onnx  # noqa: PLC0415 - heavy, loaded on use

        return onnx_float_ops(onnx.load(str(path), load_external_data=False))
    raise ValueError(f"{path}: not a .tflite or .onnx model; integer-only is checked for those two formats")
