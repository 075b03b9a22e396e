"""The last layer computed for the first token only, on a ``torch.export`` graph (TFLite path).

The same rewrite as :mod:`export.convert.onnx_rows`, for the graph litert-torch converts: the
classification head reads ``hidden_states[:, 0]`` (``aten.select(x, 1, 0)``), so :func:`first_token_graph`
walks back from that selection through ATen ops that treat each row on its own (elementwise ops
with broadcasting, ``linear``, ``layer_norm``, ``softmax`` over another axis, the query of
``scaled_dot_product_attention``, ``matmul`` by its left operand, ``view`` / ``transpose`` /
``permute`` that keep the row axis) and inserts ``x[..., 0:1, ...]`` where a tensor has another
reader (the last layer's input, which also feeds the keys and values). TFLite graphs have static
shapes (one signature per length bucket), so the walk reads each tensor's shape from the traced
graph; a ``view`` inside the rewritten part gets its row entry set to 1.

The rewritten module is proved against the original on random padded inputs at the traced length
before conversion (:func:`export.convert.tflite._convert_with_litert_torch`).
"""

from __future__ import annotations

import heapq
import logging
import math
from typing import Any

import torch

from export.convert.rows import broadcast_rows

log = logging.getLogger(__name__)

_aten = torch.ops.aten
# One output computed element by element from its tensor arguments broadcast together.
_ELEMENTWISE = {
    _aten.add.Tensor,
    _aten.sub.Tensor,
    _aten.mul.Tensor,
    _aten.div.Tensor,
    _aten.pow.Tensor_Scalar,
    _aten.gelu.default,
    _aten.relu.default,
    _aten.tanh.default,
    _aten.sigmoid.default,
    _aten.erf.default,
    _aten.exp.default,
    _aten.neg.default,
    _aten.sqrt.default,
    _aten.rsqrt.default,
    _aten.dropout.default,
    _aten.clone.default,
    _aten.contiguous.default,
    _aten.alias.default,
    _aten.to.dtype,
    _aten._to_copy.default,  # noqa: SLF001 - an ATen op name, not a private member
    _aten.where.self,
    _aten.masked_fill.Scalar,
    _aten.add.Scalar,
    _aten.mul.Scalar,
    _aten.div.Scalar,
    _aten.sub.Scalar,
    _aten.abs.default,
    _aten.log.default,
    _aten.maximum.default,
    _aten.minimum.default,
    _aten.clamp.default,
    _aten.isnan.default,
    _aten.logical_not.default,
    _aten.eq.Scalar,
    _aten.eq.Tensor,
}
_VIEWS = {_aten.view.default, _aten.reshape.default, _aten._unsafe_view.default}  # noqa: SLF001 - ATen op


def first_token_graph(module: torch.nn.Module, sample_kwargs: dict[str, torch.Tensor]) -> tuple[Any, dict[str, int]]:
    """``module`` exported with ``sample_kwargs`` (static shapes) and rewritten so its last layer
    runs on the first token only (module docstring).

    Returns:
        ``(graph_module, stats)``: a ``torch.fx.GraphModule`` taking the same keyword inputs and
        ``{"nodes": ops now run on one row, "linears": of them weight products and attention,
        "slices": slices inserted}``; ``(module, zeros)`` when the graph has no first-row selection.
    """
    nothing = {"nodes": 0, "linears": 0, "slices": 0}
    with torch.no_grad():
        exported = torch.export.export(module, (), sample_kwargs, strict=False)
    gm = exported.module()
    graph = gm.graph
    nodes = list(graph.nodes)
    order = {n: k for k, n in enumerate(nodes)}
    starts = [
        n
        for n in nodes
        if n.op == "call_function"
        and n.target is _aten.select.int
        and _arg(n, 1, "dim") == 1
        and _arg(n, 2, "index") == 0
        and len(_shape(n.args[0]) or ()) == 3
    ]
    if len(starts) != 1:
        return module, nothing
    start = starts[0]
    hidden = start.args[0]
    row = _shape(hidden)[1]  # type: ignore[index]
    needs: dict[Any, list[tuple[Any, int, int]]] = {hidden: [(start, 0, 1)]}
    chosen: set[Any] = set()
    heap: list[tuple[int, int]] = []
    by_order = dict(enumerate(nodes))
    if hidden.op == "call_function":
        heapq.heappush(heap, (-order[hidden], order[hidden]))
    seen: set[int] = set()
    while heap:  # latest node first: every reader of a tensor is decided before its producer
        _, k = heapq.heappop(heap)
        if k in seen:
            continue
        seen.add(k)
        node = by_order[k]
        rows = _input_rows(node, needs, row)
        if rows is None:
            continue
        chosen.add(node)
        for position, axis in rows.items():
            arg = node.args[position]
            needs.setdefault(arg, []).append((node, position, axis))
            if arg.op == "call_function":
                heapq.heappush(heap, (-order[arg], order[arg]))
    linears = sum(
        n.target in (_aten.linear.default, _aten.scaled_dot_product_attention.default, _aten.matmul.default)
        for n in chosen
    )
    if not linears:
        return module, nothing
    slices = 0
    for tensor, readers in needs.items():
        if tensor in chosen:
            continue
        readers = [r for r in readers if r[0] is not start]
        for axis in sorted({a for _, _, a in readers}):
            mine = [r for r in readers if r[2] == axis]
            first = min((r for r, _, _ in mine), key=lambda r: order[r])
            with graph.inserting_before(first):
                sliced = graph.call_function(_aten.slice.Tensor, (tensor, axis, 0, 1))
            for reader, position, _ in mine:
                args = list(reader.args)
                args[position] = sliced
                reader.args = tuple(args)
            slices += 1
    for node in chosen:
        if node.target in _VIEWS:  # the row entry of the target shape: now 1 row
            target = list(node.args[1])
            axis = needs[node][0][2]
            if target[axis] != -1:
                target[axis] = 1
            node.args = (node.args[0], target, *node.args[2:])
    graph.lint()
    gm.recompile()
    # Dropout is traced as inference already; the flag tells litert-torch so too (an exported
    # program's module refuses .eval()).
    gm.training = False
    return gm, {"nodes": len(chosen), "linears": linears, "slices": slices}


def _arg(node: Any, index: int, name: str) -> Any:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name)


def _shape(value: Any) -> tuple[int, ...] | None:
    meta = getattr(value, "meta", None)
    val = meta.get("val") if meta else None
    shape = getattr(val, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


def _input_rows(node: Any, needs: dict[Any, list[tuple[Any, int, int]]], row: int) -> dict[int, int] | None:
    """If ``node`` can run on the first row only, its tensor arguments that then need only their
    first row (argument position → row axis); None if a reader needs every row, the op mixes rows,
    or its arguments are passed by keyword."""
    if node.op != "call_function" or node.kwargs and node.target is not _aten.scaled_dot_product_attention.default:
        return None
    readers = needs.get(node, [])
    if not readers or len(readers) != len(node.users) or {r for r, _, _ in readers} != set(node.users):
        return None  # some reader needs every row (or takes it twice)
    axes = {a for _, _, a in readers}
    shape = _shape(node)
    if len(axes) != 1 or shape is None:
        return None
    axis = axes.pop()
    if axis >= len(shape) or shape[axis] != row:
        return None
    target = node.target
    if target in _ELEMENTWISE:
        tensors = ((p, _shape(a)) for p, a in enumerate(node.args) if isinstance(a, torch.fx.Node))
        return broadcast_rows(tensors, len(shape), axis, row)
    if target is _aten.linear.default:
        return {0: axis} if axis < len(shape) - 1 else None
    if target is _aten.layer_norm.default:
        return {0: axis} if axis < len(shape) - len(node.args[1]) else None
    if target in (_aten.softmax.int, _aten._softmax.default):  # noqa: SLF001 - an ATen op name
        return {0: axis} if node.args[1] % len(shape) != axis else None
    if target in (_aten.matmul.default, _aten.bmm.default):
        a = _shape(node.args[0])
        return {0: len(a) - 2} if a is not None and axis == len(shape) - 2 and a[-2] == row else None
    if target is _aten.scaled_dot_product_attention.default:
        if axis != len(shape) - 2:
            return None
        rows = {0: axis}
        mask = _arg(node, 3, "attn_mask")
        if mask is not None:
            if "attn_mask" in node.kwargs:
                return None
            m = _shape(mask)
            if m is None:
                return None
            if m[-2] == row:
                rows[3] = len(m) - 2
            elif m[-2] != 1:
                return None
        return rows
    if target is _aten.transpose.int:
        d0, d1 = (d % len(shape) for d in node.args[1:3])
        return {0: d1 if axis == d0 else d0 if axis == d1 else axis}
    if target is _aten.permute.default:
        return {0: int(node.args[1][axis]) % len(shape)}
    if target in _VIEWS:
        data = _shape(node.args[0])
        if data is None or axis >= len(data) or data[axis] != row or data[:axis] != shape[:axis]:
            return None
        if math.prod(data[axis + 1 :]) != math.prod(shape[axis + 1 :]):
            return None  # the row's elements are not kept together
        return {0: axis}
    return None
