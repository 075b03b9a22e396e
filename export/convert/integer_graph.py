"""A graph every op of which an int8 recipe can quantize: the integer-only TFLite export.

Two things a Hugging Face encoder does in float whatever the quantization recipe: its embedding
lookups (TFLite EMBEDDING_LOOKUP, whose output stays float under ai-edge-quantizer's static int8
recipe) and turning the 0/1 attention mask into an additive bias (a cast of the mask to float).
:func:`integer_graph` changes both while a model is traced, and bounds the mask fill
(:func:`export.convert.mask_fill.bounded_mask_fill`); float outputs do not change.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

from export.convert.mask_fill import bounded_mask_fill


def _gather_forward(self: torch.nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``nn.Embedding`` as ``index_select``: converted to a GATHER, which int8 recipes quantize
    statically (an EMBEDDING_LOOKUP keeps a float output)."""
    rows = torch.index_select(self.weight, 0, ids.reshape(-1))
    return rows.reshape(*ids.shape, self.weight.shape[1])


def _integer_mask(fill: float) -> Callable[..., torch.Tensor]:
    def extended(self: Any, attention_mask: torch.Tensor, input_shape: Any = None, dtype: Any = None) -> torch.Tensor:
        """``[batch, 1, 1, seq]`` additive mask chosen by a comparison, not a cast to float."""
        keep = attention_mask[:, None, None, :] > 0
        return torch.where(keep, torch.tensor(0.0), torch.tensor(fill))

    return extended


@contextlib.contextmanager
def integer_graph(model: torch.nn.Module, mask_fill: float = -30.0) -> Iterator[None]:
    """Within the block, ``model`` traces to a graph whose every op an int8 recipe can quantize,
    and runs as that graph will (the QAT stage trains inside it).

    Each ``nn.Embedding`` runs as ``index_select`` (a GATHER, which the static int8 recipe
    quantizes), ``get_extended_attention_mask`` (BERT, RoBERTa, ELECTRA, MobileBERT, ALBERT)
    picks 0 or ``mask_fill`` with a comparison instead of a cast, and every masked score is
    ``mask_fill``, not −3.4e38. DistilBERT's eager attention already masks with a comparison; its
    SDPA path casts, so the model must be loaded with ``attn_implementation="eager"``.
    """
    saved: list[tuple[Any, str, Any]] = []
    extended = _integer_mask(mask_fill)
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            saved.append((module, "forward", module.__dict__.get("forward")))
            module.forward = types.MethodType(_gather_forward, module)  # type: ignore[method-assign]
        if hasattr(type(module), "get_extended_attention_mask"):
            saved.append((module, "get_extended_attention_mask", module.__dict__.get("get_extended_attention_mask")))
            module.get_extended_attention_mask = types.MethodType(extended, module)  # type: ignore[method-assign]
    try:
        with bounded_mask_fill(model, mask_fill):
            yield
    finally:
        for module, attr, previous in reversed(saved):
            if previous is None:
                delattr(module, attr)
            else:
                setattr(module, attr, previous)
