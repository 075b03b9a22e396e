"""The integer-only check counts float ops from the graph: one float op in an otherwise int8
graph is flagged and named; conversions at the edges and QDQ-wrapped ONNX ops are not."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import onnx
import pytest
from ai_edge_litert import schema_py_generated as schema
from onnx import TensorProto, helper

from quantize.integer_only import float_ops, onnx_float_ops, tflite_float_ops

INT8, FLOAT = schema.TensorType.INT8, schema.TensorType.FLOAT32
OP = schema.BuiltinOperator


def _tflite(ops: list[tuple[int, list[int], list[int]]], types: list[int], signature: bool = True) -> bytes:
    """A one-subgraph flatbuffer: tensors ``t0..`` of ``types``, ``ops`` as (builtin, inputs, outputs)."""
    model = schema.ModelT()
    model.version = 3
    codes = sorted({code for code, _, _ in ops})
    model.operatorCodes = []
    for code in codes:
        oc = schema.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = 1
        model.operatorCodes.append(oc)
    graph = schema.SubGraphT()
    graph.tensors = []
    for i, kind in enumerate(types):
        t = schema.TensorT()
        t.name = f"t{i}".encode()
        t.type = kind
        t.shape = [1, 4]
        t.buffer = 0
        graph.tensors.append(t)
    graph.operators = []
    for code, inputs, outputs in ops:
        op = schema.OperatorT()
        op.opcodeIndex = codes.index(code)
        op.inputs, op.outputs = inputs, outputs
        graph.operators.append(op)
    graph.inputs, graph.outputs = [0], [len(types) - 1]
    model.subgraphs = [graph]
    model.buffers = [schema.BufferT()]
    if signature:
        sig = schema.SignatureDefT()
        sig.signatureKey = b"len_16"
        sig.subgraphIndex = 0
        sig.inputs, sig.outputs = [], []
        model.signatureDefs = [sig]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_tflite_int8_graph_with_float_edges_is_integer_only() -> None:
    # float in → QUANTIZE → ADD (int8) → LOGISTIC (int8) → DEQUANTIZE → float logits
    model = _tflite(
        [(OP.QUANTIZE, [0], [1]), (OP.ADD, [1, 1], [2]), (OP.LOGISTIC, [2], [3]), (OP.DEQUANTIZE, [3], [4])],
        [FLOAT, INT8, INT8, INT8, FLOAT],
    )
    found = tflite_float_ops(model)
    assert found.integer_only, f"expected integer-only, got {found.describe()}"
    assert found.ops == 4
    assert found.describe() == "integer-only"


def test_tflite_one_float_op_is_flagged_and_named() -> None:
    # the same graph with the activation dequantized before LOGISTIC: one float op in the middle
    model = _tflite(
        [
            (OP.QUANTIZE, [0], [1]),
            (OP.ADD, [1, 1], [2]),
            (OP.DEQUANTIZE, [2], [3]),
            (OP.LOGISTIC, [3], [4]),
        ],
        [FLOAT, INT8, INT8, FLOAT, FLOAT],
    )
    found = tflite_float_ops(model)
    assert found.count == 1 and dict(found.float_ops) == {"LOGISTIC": 1}, (
        f"one float op (LOGISTIC) expected, got {found.describe()}"
    )
    assert found.describe() == "mixed: 1 of 4 ops float (LOGISTIC ×1)"


def test_tflite_without_signatures_counts_the_main_graph() -> None:
    model = _tflite([(OP.ADD, [0, 0], [1])], [FLOAT, FLOAT], signature=False)
    assert tflite_float_ops(model).float_ops == {"ADD": 1}


def _onnx(nodes: list, inputs: list, outputs: list, initializers: list = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _qdq_matmul(tail: list) -> onnx.ModelProto:
    """x (float) → Q → DQ → MatMul(DQ(w)) → Q → DQ → [tail] → y: a QDQ int8 MatMul."""
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    zero = helper.make_tensor("z", TensorProto.INT8, [], [0])
    weight = helper.make_tensor("w", TensorProto.INT8, [4, 4], [1] * 16)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "s", "z"], ["mq"]),
        helper.make_node("DequantizeLinear", ["mq", "s", "z"], ["md"]),
        *tail,
    ]
    out = tail[-1].output[0] if tail else "md"
    return _onnx(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 4])],
        [scale, zero, weight],
    )


def test_onnx_qdq_wrapped_matmul_is_integer_only() -> None:
    found = onnx_float_ops(_qdq_matmul([]))
    assert found.integer_only, f"a QDQ-wrapped MatMul is an int8 MatMul; got {found.describe()}"


def test_onnx_one_float_op_is_flagged_and_named() -> None:
    found = onnx_float_ops(_qdq_matmul([helper.make_node("Sigmoid", ["md"], ["y"])]))
    assert dict(found.float_ops) == {"Sigmoid": 1}, f"one float op (Sigmoid) expected, got {found.describe()}"


def test_onnx_dynamic_int8_matmul_is_mixed() -> None:
    """ORT's dynamic int8: the MatMul is integer, rescaling its int32 result to float is not."""
    scale = helper.make_tensor("ws", TensorProto.FLOAT, [], [0.1])
    weight = helper.make_tensor("w", TensorProto.INT8, [4, 4], [1] * 16)
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
        helper.make_node("MatMulInteger", ["xq", "w", "xz"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xs", "ws"], ["sc"]),
        helper.make_node("Mul", ["accf", "sc"], ["y"]),
    ]
    model = _onnx(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [scale, weight],
    )
    found = onnx_float_ops(model)
    assert dict(found.float_ops) == {"Cast": 1, "Mul": 2}, found.describe()


def test_float_ops_reads_files_and_refuses_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_qdq_matmul([helper.make_node("Relu", ["md"], ["y"])]), str(path))
    assert float_ops(path).float_ops == {"Relu": 1}
    with pytest.raises(ValueError, match=r"not a \.tflite or \.onnx model"):
        float_ops(tmp_path / "model.bin")
