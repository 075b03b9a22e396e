"""Computes only the row a classifier reads in the exported graph's last layer.

A sequence classifier reads one row of the encoder's output: the first token's (``[CLS]``,
``<s>``), taken with ``hidden_states[:, 0]`` by every BERT-family head (BERT's pooler, DistilBERT's
``pre_classifier``, RoBERTa's and ELECTRA's classification heads). The exported graph still
computes every row of the last layer: its attention output projection, both feed-forward
matrices, both LayerNorms and every query row of the attention, for rows nothing reads.

:func:`first_token_only` walks back from that ``Gather(axis=1, index 0)`` through ops that treat
each row on its own (elementwise ops with broadcasting, LayerNorm and Softmax over the hidden
axis, ``MatMul`` by the row's left operand, ``Transpose`` and ``Reshape`` that keep the row axis)
and stops where a tensor has another reader: the last layer's input, which also feeds the keys
and values. There it inserts a ``Slice`` of the first row for the readers it walked through; the
keys and values still see every token. Everything after the attention's ``softmax(Q·Kᵀ)·V``
then runs on one row, and the query projection too: of a 3-layer student's weight multiply-adds
about a quarter.

The rewrite is exact in real arithmetic (each row is computed from the same numbers by the same
ops); :func:`export.convert.onnx.export_onnx` proves it by running both graphs on random inputs
of several batch sizes and lengths.
"""

from __future__ import annotations

import heapq
import logging
from pathlib import Path
from typing import Any

import numpy as np

from export.convert.onnx_shapes import remove_dead, symbolic_shapes
from export.convert.rows import broadcast_rows

log = logging.getLogger(__name__)

# One output, computed element by element from inputs broadcast together (NumPy rules).
_ELEMENTWISE = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Sqrt",
        "Erf",
        "Tanh",
        "Relu",
        "Sigmoid",
        "Exp",
        "Neg",
        "Reciprocal",
        "Cast",
        "Where",
        "Identity",
        "Gelu",
        "FastGelu",
        "BiasGelu",
        "Abs",
        "Log",
        "Max",
        "Min",
        "Clip",
        "IsNaN",
        "IsInf",
        "Not",
        "And",
        "Or",
        "Equal",
        "Greater",
        "GreaterOrEqual",
        "Less",
        "LessOrEqual",
    }
)
_SLICED = "/first_token"


def first_token_only(model: Any, shapes: dict[str, tuple[Any, ...]] | None = None) -> tuple[Any, dict[str, int]]:
    """Rewrites the graph so the rows nothing reads are not computed (module docstring).

    Args:
        model: An ``onnx.ModelProto`` whose graph inputs have symbolic (``dim_param``) axes.
        shapes: :func:`~export.convert.onnx_shapes.symbolic_shapes` of ``model`` (for a graph
            :func:`~export.convert.onnx_shapes.fold_shapes` made: the ones it returned) when the
            caller has them; None: inferred here.

    Returns:
        ``(model, stats)``: a new ``ModelProto`` (the argument is not changed) and
        ``{"nodes": nodes now run on the first row only, "matmuls": of them MatMuls, "slices": Slices
        inserted}``; all 0 when the graph has no such row selection (the model unchanged).

    Raises:
        Exception: ``shapes`` was None and ONNX Runtime's symbolic shape inference failed on the
            graph.
    """
    import onnx  # noqa: PLC0415 - loaded when converting, not on import
    from onnx import helper, numpy_helper  # noqa: PLC0415 - as onnx

    if shapes is None:
        shapes = symbolic_shapes(model)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    nothing = {"nodes": 0, "matmuls": 0, "slices": 0}
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    nodes = list(graph.node)  # one Python object per node, so id() names it
    order = {id(n): k for k, n in enumerate(nodes)}  # the exporters write topological order
    producer = {o: n for n in nodes for o in n.output if o}
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for i in n.input:
            if i:
                consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}

    start = _row_selection(nodes, shapes, constants)
    if start is None:
        return model, nothing
    gather, row_symbol = start
    # tensor → (reader, input index, row axis) for every reader that needs only its first row
    needs: dict[str, list[tuple[Any, int, int]]] = {gather.input[0]: [(gather, 0, 1)]}
    chosen: set[int] = set()  # ids of nodes now run on the first row only
    heap: list[tuple[int, int]] = []
    if gather.input[0] in producer:
        first = producer[gather.input[0]]
        heapq.heappush(heap, (-order[id(first)], id(first)))
    by_id = {id(n): n for n in nodes}
    seen: set[int] = set()
    while heap:  # latest node first, so every reader of a tensor is decided before its producer
        _, nid = heapq.heappop(heap)
        if nid in seen:
            continue
        seen.add(nid)
        node = by_id[nid]
        rows = _input_rows(node, needs, consumers, outputs, shapes, constants, row_symbol)
        if rows is None:
            continue
        chosen.add(nid)
        for index, axis in rows.items():
            name = node.input[index]
            needs.setdefault(name, []).append((node, index, axis))
            if name in producer:
                p = producer[name]
                heapq.heappush(heap, (-order[id(p)], id(p)))
    if not any(by_id[i].op_type == "MatMul" for i in chosen):
        return model, nothing

    slices = 0
    new_nodes: list[tuple[Any, Any]] = []  # (slice node, insert before this node)
    for name, readers in needs.items():
        if name in producer and id(producer[name]) in chosen:
            continue
        readers = [r for r in readers if r[0] is not gather]
        if not readers:
            continue
        for axis in sorted({a for _, _, a in readers}):
            sliced = f"{name}{_SLICED}{axis}"
            prefix = sliced.replace("/", "_")
            starts, ends, axes = f"{prefix}_starts", f"{prefix}_ends", f"{prefix}_axes"
            graph.initializer.extend(
                numpy_helper.from_array(np.array([v], dtype=np.int64), n)
                for v, n in ((0, starts), (1, ends), (axis, axes))
            )
            first_reader = min((r for r, _, a in readers if a == axis), key=lambda r: order[id(r)])
            new_nodes.append((helper.make_node("Slice", [name, starts, ends, axes], [sliced]), first_reader))
            for reader, index, a in readers:
                if a == axis:
                    reader.input[index] = sliced
            slices += 1
    for slice_node, before in new_nodes:
        position = next(k for k, n in enumerate(graph.node) if n == before)
        graph.node.insert(position, slice_node)
    pruned = {o for i in chosen for o in by_id[i].output}
    for info in [v for v in graph.value_info if v.name in pruned]:  # their row axis is now 1
        graph.value_info.remove(info)
    remove_dead(graph)
    stats = {
        "nodes": len(chosen),
        "matmuls": sum(by_id[i].op_type == "MatMul" for i in chosen),
        "slices": slices,
    }
    return model, stats


def computes_first_token_only(path: Path) -> bool:
    """Whether the ``.onnx`` file at ``path`` was rewritten by :func:`first_token_only` (its
    first-row Slices survive quantization under their names)."""
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type == "Slice" and _SLICED in n.output[0] for n in graph.node)


def _row_selection(
    nodes: list[Any], shapes: dict[str, tuple[Any, ...]], constants: dict[str, np.ndarray]
) -> tuple[Any, Any] | None:
    """The graph's one ``Gather(x, 0, axis=1)`` of a ``[batch, seq, hidden]`` tensor with a
    symbolic ``seq`` (the head's ``hidden_states[:, 0]``), and that symbol; None if not exactly one."""
    found = []
    for node in nodes:
        if node.op_type != "Gather" or _attr(node, "axis", 0) != 1:
            continue
        index = constants.get(node.input[1])
        shape = shapes.get(node.input[0])
        if index is None or index.shape != () or int(index) != 0 or shape is None or len(shape) != 3:
            continue
        if isinstance(shape[1], int):
            continue
        found.append((node, shape[1]))
    return found[0] if len(found) == 1 else None


def _input_rows(
    node: Any,
    needs: dict[str, list[tuple[Any, int, int]]],
    consumers: dict[str, list[Any]],
    outputs: set[str],
    shapes: dict[str, tuple[Any, ...]],
    constants: dict[str, np.ndarray],
    row: Any,
) -> dict[int, int] | None:
    """If ``node`` can run on the first row only, its inputs that then need only their first row
    (input index → row axis); None if it cannot: a reader of its output needs every row, or the op
    mixes rows, or the shapes do not say where the row axis is."""
    live = [o for o in node.output if o]
    if len(live) != 1 or live[0] in outputs:
        return None
    out = live[0]
    readers = needs.get(out, [])
    if not readers or len(readers) != len(consumers.get(out, [])):
        return None  # some reader needs every row
    axes = {a for _, _, a in readers}
    shape = shapes.get(out)
    if len(axes) != 1 or shape is None:
        return None
    axis = axes.pop()
    if axis >= len(shape) or shape[axis] != row:
        return None
    op = node.op_type
    if op in _ELEMENTWISE:
        return broadcast_rows(((i, shapes.get(n)) for i, n in enumerate(node.input) if n), len(shape), axis, row)
    if op in ("Softmax", "LogSoftmax"):
        return {0: axis} if _attr(node, "axis", -1) % len(shape) != axis else None
    if op in ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization"):
        if op == "LayerNormalization" and _attr(node, "axis", -1) % len(shape) <= axis:
            return None
        rows = {0: axis}
        if op == "SkipLayerNormalization":  # the residual must be full-shaped, as the input
            rows[1] = axis
        return rows
    if op == "MatMul":
        a, b = (shapes.get(i) for i in node.input)
        if a is None or b is None or len(a) < 2 or len(b) < 2 or axis != len(shape) - 2 or a[-2] != row:
            return None
        return {0: len(a) - 2}  # row i of A @ B is row i of A times B
    if op == "Transpose":
        perm = _attr(node, "perm", None)
        return {0: int(perm[axis])} if perm is not None else None
    if op == "Reshape":
        target = constants.get(node.input[1])
        data = shapes.get(node.input[0])
        if target is None or data is None or _attr(node, "allowzero", 0):
            return None
        # The row axis stays in place when every dimension before it is copied (0) and its own
        # entry is copied or inferred (-1) with the same size on both sides (the shapes say so):
        # the dimensions after it then hold the same elements per row in row-major order, so a
        # slice of one row reshapes to that row of the result (a later 0 or -1 still resolves).
        if axis >= len(data) or data[axis] != row or any(int(v) != 0 for v in target[:axis]):
            return None
        return {0: axis} if int(target[axis]) in (0, -1) else None
    return None


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper  # noqa: PLC0415 - as onnx

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default
