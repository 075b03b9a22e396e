"""Folds the shape arithmetic an exported transformer graph computes on every call.

Exporters trace ``x.view(x.size(0), -1, heads, head_dim)`` and ``1 / sqrt(q.size(-1))`` into
``Shape → Gather → Unsqueeze → Concat → Reshape`` and ``Shape → Slice → Cast → Sqrt → Div``
chains: per layer about a dozen tiny kernels that ONNX Runtime cannot fold at load, because the
batch and sequence axes are dynamic. Their results are either constants (the head size, its
square root) or a shape whose only dynamic entries are the input's own batch / sequence axes.
:func:`fold_shapes` works both out symbolically and rewrites the graph:

- a value every input of which is known and that has no dynamic entry becomes an initializer;
- a ``Reshape`` whose target shape is known up to dynamic axes gets a constant target instead:
  ``0`` where the entry is the data tensor's own dimension at that position (ONNX's "copy this
  dimension"), ``-1`` for at most one other dynamic entry;
- an ``Expand`` whose result only reaches elementwise ops that broadcast it to the same shape
  anyway (the attention mask, expanded to ``[batch, 1, seq, seq]`` and added to the scores) goes,
  with the shape arithmetic that fed it;
- nodes nothing reads any more are removed.

The rewrite computes exactly what the graph computed (same ops on the same numbers, fewer of
them), and :func:`export.convert.onnx.export_onnx` proves it by running both graphs on random
inputs of several batch sizes and lengths. Measured on a 3-layer MiniLM student (dynamic int8, 1
thread, AMD EPYC Zen 4): 144 → ~90 kernels per call, ~6 % less model time — BENCHMARKS.md.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np

log = logging.getLogger(__name__)

# Ops whose output is worked out when its inputs are symbolic shape values (sympy entries).
_STRUCTURAL = frozenset({"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Identity", "Cast"})
# Ops worked out only when every input is a concrete array, with ONNX's reference implementation.
_CONCRETE = frozenset({*_STRUCTURAL, "Sqrt", "Div", "Mul", "Add", "Sub", "Pow", "Reciprocal", "Neg", "Range", "Equal"})
_INT_TYPES = frozenset({6, 7})  # TensorProto.INT32 / INT64: a Cast to them keeps a shape value
_MAX_FOLD = 4096  # elements: shape arithmetic is tiny; larger constant inputs are weights


class Folded(NamedTuple):
    """What :func:`fold_shapes` returns."""

    model: Any
    """A new ``ModelProto`` (the argument is not changed)."""
    stats: dict[str, int]
    """``{"folded": values made initializers, "reshapes": Reshape targets made constant, "expands":
    Expands dropped, "removed": nodes removed, "nodes_before": ..., "nodes_after": ...}``."""
    shapes: dict[str, tuple[Any, ...]]
    """:func:`symbolic_shapes` of the new model, without running the inference again: the input's,
    plus the new initializers', with the tensors a dropped Expand made smaller at their new shape."""


def fold_shapes(model: Any, shapes: dict[str, tuple[Any, ...]] | None = None) -> Folded:
    """Folds the graph's shape arithmetic (module docstring).

    Args:
        model: An ``onnx.ModelProto`` whose graph inputs have symbolic (``dim_param``) axes.
        shapes: :func:`symbolic_shapes` of ``model`` when the caller has them; None: inferred here.

    Raises:
        Exception: ``shapes`` was None and ONNX Runtime's symbolic shape inference failed on the
            graph (the caller decides whether that is fatal).
    """
    import onnx  # noqa: PLC0415 - loaded when converting, not on import
    from onnx import numpy_helper  # noqa: PLC0415 - as onnx

    if shapes is None:
        shapes = symbolic_shapes(model)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    nodes_before = len(graph.node)
    values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    computed: set[str] = set()  # values a node (not Constant, not an initializer) produces
    for node in graph.node:  # the exporters write nodes in topological order
        result = _evaluate(node, values, shapes, model.opset_import)
        if result is not None:
            values.update(zip(node.output, result, strict=False))
            if node.op_type != "Constant":
                computed.update(node.output)
    outputs = {o.name for o in graph.output}
    new_inits: dict[str, np.ndarray] = {}
    folded = reshapes = 0
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in computed:
            allowzero = [a for a in node.attribute if a.name == "allowzero"]
            target = reshape_target(
                values[node.input[1]], shapes.get(node.input[0]), bool(allowzero and allowzero[0].i)
            )
            if target is not None:
                name = f"{node.output[0]}/folded_shape"
                new_inits[name] = target
                node.input[1] = name
                for a in allowzero:  # the target's 0s now mean "copy", ONNX's default
                    node.attribute.remove(a)
                reshapes += 1
        for i, name in enumerate(node.input):
            if name in computed and name not in outputs and _concrete(values[name]):
                const = f"{name}/folded"
                if const not in new_inits:
                    new_inits[const] = values[name]
                    folded += 1
                node.input[i] = const
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in new_inits.items())
    expands, smaller = _drop_broadcast_expands(graph, shapes)
    removed = remove_dead(graph)
    stats = {
        "folded": folded,
        "reshapes": reshapes,
        "expands": expands,
        "removed": removed,
        "nodes_before": nodes_before,
        "nodes_after": len(graph.node),
    }
    return Folded(model, stats, {**shapes, **initializer_shapes(graph), **smaller})


def symbolic_shapes(model: Any) -> dict[str, tuple[Any, ...]]:
    """Each tensor's shape from ONNX Runtime's symbolic shape inference (initializers: their own):
    ints and sympy symbols (one per dim_param).

    :func:`fold_shapes` returns them for the graph it made (:attr:`Folded.shapes`), so that
    :func:`export.convert.onnx_rows.first_token_only` need not infer again.

    Raises:
        Exception: the inference failed on the graph (the caller decides whether that is fatal).
    """
    import sympy  # noqa: PLC0415 - torch and onnxruntime's shape inference depend on it
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference  # noqa: PLC0415 - loaded when converting

    graph = SymbolicShapeInference.infer_shapes(model, auto_merge=True).graph
    shapes = initializer_shapes(graph)
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            continue
        dims: list[Any] = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.dim_param:
                dims.append(sympy.Symbol(d.dim_param, integer=True, positive=True))
            else:
                break
        else:
            shapes[vi.name] = tuple(dims)
    return shapes


def initializer_shapes(graph: Any) -> dict[str, tuple[Any, ...]]:
    """The shape of each of ``graph``'s initializers."""
    return {i.name: tuple(int(d) for d in i.dims) for i in graph.initializer}


def _concrete(value: np.ndarray) -> bool:
    return value.dtype != object


def _evaluate(
    node: Any, values: dict[str, np.ndarray], shapes: dict[str, tuple[Any, ...]], opsets: Any
) -> list[np.ndarray] | None:
    """The node's outputs when they can be worked out from known values, else None."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return None
    if op == "Constant":
        from onnx import helper, numpy_helper  # noqa: PLC0415 - loaded when converting, not on import

        (attr,) = node.attribute
        value = helper.get_attribute_value(attr)
        return [numpy_helper.to_array(value)] if attr.name == "value" else [np.asarray(value)]
    if op == "Shape":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        attrs = {a.name: a.i for a in node.attribute}
        dims = shape[attrs.get("start", 0) : attrs.get("end", len(shape))]  # ONNX clamps as Python slices
        if all(isinstance(d, int) for d in dims):
            return [np.asarray(dims, dtype=np.int64)]
        return [np.asarray(dims, dtype=object)]
    inputs = [values.get(n) if n else None for n in node.input]
    if any(v is None for v, n in zip(inputs, node.input, strict=True) if n):
        return None
    if all(v is None or _concrete(v) for v in inputs):
        if op not in _CONCRETE or any(v is not None and v.size > _MAX_FOLD for v in inputs):
            return None  # weights are ONNX Runtime's to fold at load, not this pass's
        return _run_reference(node, inputs, opsets)
    if op not in _STRUCTURAL:
        return None
    result = _symbolic(node, inputs)
    if result is None:
        return None
    return [_normalised(r) for r in result]


def _normalised(value: np.ndarray) -> np.ndarray:
    """An object array whose entries all turned out ints, as int64 (concrete)."""
    if value.dtype == object and all(isinstance(e, (int, np.integer)) for e in value.ravel()):
        return value.astype(np.int64)
    return value


def _run_reference(node: Any, inputs: list[np.ndarray | None], opsets: Any) -> list[np.ndarray] | None:
    """Runs one node on concrete arrays with ONNX's reference evaluator (its exact semantics)."""
    import onnx  # noqa: PLC0415 - loaded when converting, not on import
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415 - as onnx

    names = [n for n in node.input if n]
    one = onnx.helper.make_node(node.op_type, list(node.input), list(node.output), domain=node.domain)
    one.attribute.extend(node.attribute)
    graph = onnx.helper.make_graph(
        [one],
        "fold",
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in names],
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in node.output],
    )
    feeds = {n: v for n, v in zip(node.input, inputs, strict=True) if n}
    try:
        outputs = ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=list(opsets))).run(None, feeds)
    except Exception:  # an op the reference evaluator does not run: leave the node alone
        log.debug("fold_shapes: reference evaluator cannot run %s", node.op_type, exc_info=True)
        return None
    return [np.asarray(o) for o in outputs]


def _symbolic(node: Any, inputs: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """Structural ops on shape values holding sympy entries (no arithmetic on symbols)."""
    op = node.op_type
    attrs = {a.name: a for a in node.attribute}
    data = inputs[0]
    assert data is not None
    if op == "Identity":
        return [data]
    if op == "Cast":
        return [data] if attrs["to"].i in _INT_TYPES else None
    if op == "Gather":
        axis = attrs["axis"].i if "axis" in attrs else 0
        idx = inputs[1]
        if axis != 0 or data.ndim != 1 or idx is None or not _concrete(idx):
            return None
        return [np.asarray(np.take(data, idx.astype(np.int64), axis=0), dtype=data.dtype)]
    if op == "Unsqueeze":
        axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
        axes_list = [int(a) for a in axes.ravel()] if axes is not None else [a for a in attrs["axes"].ints]
        out = data
        for a in sorted(a % (data.ndim + len(axes_list)) for a in axes_list):
            out = np.expand_dims(out, a)
        return [out]
    if op == "Squeeze":
        axes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
        if axes is None and "axes" not in attrs:
            return [np.squeeze(data)]
        axes_list = [int(a) for a in axes.ravel()] if axes is not None else list(attrs["axes"].ints)
        return [np.squeeze(data, axis=tuple(a % data.ndim for a in axes_list))]
    if op == "Concat":
        if any(v is None or v.ndim != 1 for v in inputs):
            return None
        return [np.concatenate([np.asarray(v, dtype=object) for v in inputs if v is not None])]
    if op == "Slice":
        if data.ndim != 1 or len(inputs) < 3 or any(v is not None and not _concrete(v) for v in inputs[1:]):
            return None  # (opset < 10 Slices take attributes: left alone)
        starts, ends = int(inputs[1][0]), int(inputs[2][0])  # type: ignore[index]
        steps = int(inputs[4][0]) if len(inputs) > 4 and inputs[4] is not None else 1
        return [data[slice(starts, ends, steps)]]
    return None


def reshape_target(value: np.ndarray, data_shape: tuple[Any, ...] | None, allowzero: bool) -> np.ndarray | None:
    """A constant Reshape target equal to ``value`` (a shape with symbolic entries), or None.

    Entries that are ints stay (a literal ``0`` / ``-1`` keeps its meaning); a symbolic entry
    becomes ``0`` where it is the data tensor's own dimension at that position, else ``-1`` —
    at most one ``-1`` in all, or there is no constant target. The target is for a Reshape
    without ``allowzero``: under ``allowzero`` (the dynamo exporter sets it) a literal ``0`` is
    an empty axis, which has no such target.
    """
    if value.ndim != 1 or not len(value) or _concrete(value):
        return None
    if allowzero and any(isinstance(e, (int, np.integer)) and int(e) == 0 for e in value):
        return None
    out: list[int] = []
    for j, entry in enumerate(value):
        if isinstance(entry, (int, np.integer)):
            out.append(int(entry))
        elif data_shape is not None and j < len(data_shape) and data_shape[j] == entry:
            out.append(0)
        else:
            out.append(-1)
    return np.asarray(out, dtype=np.int64) if out.count(-1) <= 1 else None


# Elementwise ops with NumPy broadcasting: f(expand(x)) is expand(f(x)) for them.
_BROADCASTING = frozenset(
    {"Add", "Sub", "Mul", "Div", "Where", "Cast", "Not", "Neg", "Equal", "Less", "Greater", "And", "Or", "Xor"}
)


def _drop_broadcast_expands(graph: Any, shapes: dict[str, tuple[Any, ...]]) -> tuple[int, dict[str, tuple[Any, ...]]]:
    """Removes Expands whose result only reaches broadcasting elementwise ops that broadcast it anyway.

    The attention mask is expanded from ``[batch, 1, 1, seq]`` to ``[batch, 1, seq, seq]`` and
    then only cast, subtracted and added to the ``[batch, heads, seq, seq]`` scores, which
    broadcast the unexpanded mask to the same result. An Expand goes when every tensor downstream
    of it whose shape would change is read only by such ops (never by a graph output or any other
    op) and the change stops at a node whose output keeps its shape; the shape arithmetic that fed
    the Expand then dies. Returns the number removed and the new shapes of the tensors downstream
    of them that became smaller.
    """
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    dropped = []
    smaller: dict[str, tuple[Any, ...]] = {}
    for node in graph.node:
        if node.op_type != "Expand" or node.input[0] not in shapes:
            continue
        changed = {node.output[0]: shapes[node.input[0]]}  # tensor → its shape once the Expand is gone
        if _broadcasts_away(changed, consumers, {**shapes, **smaller}, outputs):
            dropped.append(node)
            smaller.update(changed)
    for node in dropped:
        for n in graph.node:
            for i, name in enumerate(n.input):
                if name == node.output[0]:
                    n.input[i] = node.input[0]
        graph.node.remove(node)
    return len(dropped), smaller


def _broadcasts_away(
    changed: dict[str, tuple[Any, ...]],
    consumers: dict[str, list[Any]],
    shapes: dict[str, tuple[Any, ...]],
    outputs: set[str],
) -> bool:
    """Whether the shape changes in ``changed`` (tensor → new shape) die out before any reader
    that is not a broadcasting elementwise op; extends ``changed`` as it walks."""
    todo = list(changed)
    while todo:
        tensor = todo.pop()
        if tensor in outputs:
            return False
        for n in consumers.get(tensor, []):
            if n.op_type not in _BROADCASTING or len(n.output) != 1 or n.output[0] not in shapes:
                return False
            ins = [changed.get(i, shapes.get(i)) for i in n.input]
            if any(s is None for s in ins):
                return False
            new = _broadcast([s for s in ins if s is not None])
            if new is None:
                return False
            if new != shapes[n.output[0]] and n.output[0] not in changed:
                changed[n.output[0]] = new
                todo.append(n.output[0])
    return True


def _broadcast(shapes: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """NumPy broadcasting of symbolic shapes; None where it cannot tell (two different symbols)."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0} - {1}
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def remove_dead(graph: Any) -> int:
    """Removes nodes none of whose outputs is read (repeatedly) and initializers nothing reads."""
    removed = 0
    while True:
        needed = {o.name for o in graph.output} | _read_by_subgraphs(graph)
        for n in graph.node:
            needed.update(i for i in n.input if i)
        dead = [n for n in graph.node if not any(o in needed for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        removed += len(dead)
    needed = {o.name for o in graph.output} | _read_by_subgraphs(graph)
    for n in graph.node:
        needed.update(n.input)
    for init in [i for i in graph.initializer if i.name not in needed]:
        graph.initializer.remove(init)
    alive = needed | {o for n in graph.node for o in n.output}
    for info in [v for v in graph.value_info if v.name not in alive]:  # shapes of removed tensors
        graph.value_info.remove(info)
    return removed


def _read_by_subgraphs(graph: Any) -> set[str]:
    """Names the subgraphs of If / Loop / Scan nodes read (from the outer scope, possibly)."""
    names: set[str] = set()
    for n in graph.node:
        for a in n.attribute:
            for sub in [a.g] if a.type == 5 else list(a.graphs) if a.type == 10 else []:
                for m in sub.node:
                    names.update(m.input)
                names |= _read_by_subgraphs(sub)
    return names
