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

from export.convert.mask_fill import bounded_mask_fill, override_mask_functions


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


def _integer_mask_v5(fill: float) -> Callable[..., torch.Tensor | None]:
    def mask(batch_size: int, q_length: int, kv_length: int, attention_mask: Any = None, **_: Any) -> Any:
        """transformers 5's mask interface: the same ``[batch, 1, 1, seq]`` mask, built whether or not
        the batch has padding (5.x skips the mask of a batch without padding, so the op sequence
        of a forward, which the QAT simulation's ranges follow call by call, would depend on the
        batch)."""
        if attention_mask is None:
            return None
        keep = attention_mask[:, None, None, :] > 0
        return torch.where(keep, torch.tensor(0.0), torch.tensor(fill))

    return mask


@contextlib.contextmanager
def integer_graph(model: torch.nn.Module, mask_fill: float = -30.0) -> Iterator[None]:
    """Within the block, ``model`` traces to a graph whose every op an int8 recipe can quantize,
    and runs as that graph will (the QAT stage trains inside it).

    Each ``nn.Embedding`` runs as ``index_select`` (a GATHER, which the static int8 recipe
    quantizes), ``get_extended_attention_mask`` (BERT, RoBERTa, ELECTRA, MobileBERT, ALBERT)
    picks 0 or ``mask_fill`` with a comparison instead of a cast, and every masked score is
    ``mask_fill``, not −3.4e38. DistilBERT's eager attention already masks with a comparison; its
    SDPA path casts, so the model must be loaded with ``attn_implementation="eager"``. On
    transformers 5 (``masking_utils``) every model gets that comparison mask, padded batch or not.
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
            mask = _integer_mask_v5(mask_fill)
            restore_masks = override_mask_functions({"eager": mask, "sdpa": mask})
            try:
                yield
            finally:
                restore_masks()
    finally:
        for module, attr, previous in reversed(saved):
            if previous is None:
                delattr(module, attr)
            else:
                setattr(module, attr, previous)
