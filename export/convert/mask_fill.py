"""Bounded attention-mask fill for conversion to integer-quantized graphs.

Hugging Face models turn the 0/1 attention mask into an additive bias of
``torch.finfo(dtype).min`` (−3.4e38) at padded positions. Exported as is, that constant
sits in the attention scores that a full-integer model quantizes to int8: the scale that
covers −3.4e38 leaves no resolution for the real scores, and labels collapse (56–69 %
agreement measured on BERT). :func:`bounded_mask_fill` makes the models use a finite value
(−30 by default) instead while a graph is traced: ``exp(−30) ≈ 1e-13`` rounds to the same
fp32 softmax, so float outputs do not change.

Two generations of transformers build the mask in different places: 4.x in
``modeling_utils.get_extended_attention_mask`` and ``modeling_attn_mask_utils`` (float masks for
eager and SDPA alike), 5.x in ``masking_utils`` (a float mask for eager attention, a boolean one
for SDPA, which torch then fills with −inf itself). Both are covered; tests/export/convert/
test_mask_fill.py fails on either major version if the bound stops reaching the model.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import transformers.modeling_attn_mask_utils as attn_mask_utils
import transformers.modeling_utils as modeling_utils

try:  # transformers >= 4.53; BERT-family models build their masks here from 5.0
    import transformers.masking_utils as masking_utils
except ImportError:  # pragma: no cover - older transformers
    masking_utils = None  # type: ignore[assignment]


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
    ``modeling_utils`` (``get_extended_attention_mask``, BERT-style models on 4.x),
    ``modeling_attn_mask_utils`` (the 4.x SDPA path), ``masking_utils`` (5.x) and the model's
    own module (DistilBERT 4.x fills inside attention). Other uses of ``torch`` there are
    unaffected. On 5.x the SDPA path would pass SDPA a boolean mask (filled with −inf inside
    torch, out of reach): within the block it gets the bounded float mask eager attention
    gets, as it did on 4.x.

    Args:
        model: A Hugging Face model.
        fill: A finite negative value, e.g. −30.

    Raises:
        ValueError: ``fill`` is not negative and finite.
    """
    if not (fill < 0 and fill > float("-inf")):
        raise ValueError(f"mask fill must be a finite negative number, got {fill!r}")
    modules = {modeling_utils, attn_mask_utils}
    if masking_utils is not None:
        modules.add(masking_utils)
    for cls in type(model).__mro__:
        module = sys.modules.get(cls.__module__)
        if module is not None and cls.__module__.startswith("transformers.models."):
            modules.add(module)
    proxy = _TorchWithBoundedFinfo(fill)
    saved = {m: m.torch for m in modules if getattr(m, "torch", None) is torch}
    for m in saved:
        m.torch = proxy
    restore_sdpa = _float_sdpa_masks()
    try:
        yield
    finally:
        restore_sdpa()
        for m, original in saved.items():
            m.torch = original


def _float_sdpa_masks() -> Callable[[], None]:
    """Until the returned function is called, transformers 5's SDPA attention gets float masks
    built like eager attention's (whose fill the patched ``torch.finfo`` bounds)."""
    eager = getattr(masking_utils, "eager_mask", None)
    return override_mask_functions({"sdpa": eager} if eager is not None else {})


def override_mask_functions(functions: dict[str, Callable[..., Any]]) -> Callable[[], None]:
    """Makes transformers 5 build attention masks with ``functions`` (attention implementation →
    mask function, as in ``masking_utils.ALL_MASK_ATTENTION_FUNCTIONS``) until the returned
    function is called; a no-op on transformers 4, whose BERT-family models do not use them."""
    interface = getattr(masking_utils, "ALL_MASK_ATTENTION_FUNCTIONS", None)
    if interface is None or not functions:
        return lambda: None
    local = interface._local_mapping  # noqa: SLF001 - the interface's own per-instance override table
    previous = {name: (name in local, local.get(name)) for name in functions}
    for name, function in functions.items():
        interface[name] = function

    def restore() -> None:
        for name, (had, function) in previous.items():
            if had:
                interface[name] = function
            else:
                del interface[name]

    return restore
