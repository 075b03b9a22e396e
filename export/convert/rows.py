"""What the two first-token rewrites share: :mod:`export.convert.onnx_rows` walks an exported ONNX
graph, :mod:`export.convert.fx_rows` a ``torch.export`` graph, with the same row rules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def broadcast_rows(
    inputs: Iterable[tuple[int, tuple[Any, ...] | None]], rank: int, axis: int, row: Any
) -> dict[int, int] | None:
    """The row rule of an elementwise op with NumPy broadcasting.

    Args:
        inputs: ``(position, shape)`` of each tensor input; shape None where it is not known.
        rank: The rank of the op's output.
        axis: The output's row axis.
        row: The output's size along it (an int, or a symbol of the graph's shapes).

    Returns:
        Input position → its row axis, for the inputs that carry the row axis; an input broadcast
        along it (size 1 there, or too low a rank) needs nothing. None when a shape is unknown or
        an input's size along the axis is neither 1 nor ``row``.
    """
    rows = {}
    for position, shape in inputs:
        if shape is None:
            return None
        aligned = axis - (rank - len(shape))
        if aligned < 0 or shape[aligned] == 1:
            continue
        if shape[aligned] != row:
            return None
        rows[position] = aligned
    return rows
