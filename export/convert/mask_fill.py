"""Bounded attention-mask fill for conversion to integer-quantized graphs.

Hugging Face models turn the 0/1 attention mask into an additive bias of
``torch.finfo(dtype).min`` (−3.4e38) at padded positions. Exported as is, that constant
sits in the attention scores that a full-integer model quantizes to int8: the scale that
covers −3.4e38 leaves no resolution for the real scores, and labels collapse (56–69 %
agreement measured on BERT). :func:`bounded_mask_fill` makes the models use a finite value
(−30 by default) instead while a graph is traced: ``exp(−30) ≈ 1e-13`` rounds to the same
fp32 softmax, so float outputs do not change.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import transformers.modeling_attn_mask_utils as attn_mask_utils
import transformers.modeling_utils as modeling_utils


class _Finfo:
    """``torch.finfo`` with ``min`` replaced."""

    def __init__(self, real: torch.finfo, fill: float) -> None:
        self._real = real
        self.min = fill

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


class _TorchWithBoundedFinfo(types.ModuleType):
    """Stands in for ``torch`` inside the modelling modules; only ``finfo(float).min`` differs."""

    def __init__(self, fill: float) -> None:
        super().__init__("torch")
        self._fill = fill

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)

    def finfo(self, dtype: torch.dtype | None = None) -> object:
        real = torch.finfo(dtype) if dtype is not None else torch.finfo()
        return _Finfo(real, self._fill)


@contextmanager
def bounded_mask_fill(model: torch.nn.Module, fill: float = -30.0) -> Iterator[None]:
    """Within the block, ``model`` fills masked attention positions with ``fill``.

    Patches the name ``torch`` in the modules that build the additive mask: transformers'
    ``modeling_utils`` (``get_extended_attention_mask``, BERT-style models),
    ``modeling_attn_mask_utils`` (the SDPA path) and the model's own module (DistilBERT
    fills inside attention). Other uses of ``torch`` there are unaffected.

    Args:
        model: A Hugging Face model.
        fill: A finite negative value, e.g. −30.

    Raises:
        ValueError: ``fill`` is not negative and finite.
    """
    if not (fill < 0 and fill > float("-inf")):
        raise ValueError(f"mask fill must be a finite negative number, got {fill!r}")
    modules = {modeling_utils, attn_mask_utils}
    for cls in type(model).__mro__:
        module = sys.modules.get(cls.__module__)
        if module is not None and cls.__module__.startswith("transformers.models."):
            modules.add(module)
    proxy = _TorchWithBoundedFinfo(fill)
    saved = {m: m.torch for m in modules if getattr(m, "torch", None) is torch}
    for m in saved:
        m.torch = proxy
    try:
        yield
    finally:
        for m, original in saved.items():
            m.torch = original
