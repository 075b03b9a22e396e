"""Quantization-aware training: the fp32 model run as the integer TFLite graph will run it.

The integer-only TFLite model (:func:`integer_graph` at conversion, then ai-edge-quantizer's
static int8 recipe with every op quantized) stores every activation tensor in int8 with one
scale and zero point per tensor, every weight in int8 per output channel, and the embedding
tables in int8 per tensor. Trained in float, a BERT-family student loses labels there (the
outliers of residual sums and LayerNorm inputs set the scales; Bondarenko et al. 2021). Here
the student is fine-tuned with those roundings in its forward pass (straight-through
gradients), so it learns weights that survive them:

- :class:`Int8Simulation` is a ``TorchFunctionMode``: it sees every torch call of the model's
  forward, in order, and fake-quantizes each float result (asymmetric int8, per tensor, with a
  running range per call site), each ``F.linear`` weight (symmetric int8 per output channel) and
  each embedding table (per tensor). Ops that only move values (view, transpose, slicing,
  dropout) keep their input's grid, as their TFLite kernels do. LayerNorm is decomposed the way
  the converter writes it (mean, squared difference, mean, +ε, rsqrt, mul, sub, mul, add, ×γ, +β)
  and each step is rounded, since each is an int8 op in the converted graph. Softmax gets TFLite's
  fixed output grid (scale 1/256, zero point −128).
- Call sites are keyed by their position in the forward pass: the models here run the same
  sequence of ops for every input, and a forward that does not is refused.

The module imports torch; :mod:`runtime` never imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from torch.overrides import TorchFunctionMode

_PASS_THROUGH = frozenset(
    {
        "view",
        "reshape",
        "transpose",
        "permute",
        "contiguous",
        "expand",
        "expand_as",
        "__getitem__",
        "unsqueeze",
        "squeeze",
        "flatten",
        "split",
        "chunk",
        "clone",
        "detach",
        "to",
        "type_as",
        "float",
        "dropout",
        "size",
        "dim",
        "__get__",
        "__set__",
        "requires_grad_",
        "numel",
        "unbind",
        "tensor",
        "arange",
        "ones",
        "zeros",
        "full",
    }
)
"""Calls whose float output keeps its input's values, constructors of constants, and calls that
are not ops: no int8 grid of their own."""

_SOFTMAX = frozenset({"softmax", "_softmax"})


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", "") or str(func)


class ActivationRanges:
    """The min / max of each fake-quantized call site over calibration texts, in forward order.

    The same statistic the TFLite calibrator takes (min / max over the calibration texts, one
    text per call), so the grids the model trains on are the ones its int8 graph will get.

    Attributes:
        ops: The op name at each site (the first forward's order; later forwards must match).
    """

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.lows: list[torch.Tensor] = []
        self.highs: list[torch.Tensor] = []
        self._fresh: set[int] = set()

    def restart(self) -> None:
        """The next observed forwards replace the ranges (the op order is kept and checked)."""
        self._fresh = set(range(len(self.ops)))

    def update(self, site: int, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Widens ``site``'s range to cover ``x`` (0 always inside) and returns it."""
        low, high = x.detach().min().clamp(max=0.0), x.detach().max().clamp(min=0.0)
        if site == len(self.ops):
            self.ops.append(name)
            self.lows.append(low)
            self.highs.append(high)
        elif site > len(self.ops) or self.ops[site] != name:
            seen = self.ops[site] if site < len(self.ops) else "nothing"
            raise RuntimeError(
                f"int8 simulation: call {site} of this forward is {name}, the first forward's was {seen}; "
                "the model runs a different sequence of ops for this input, so its call sites cannot be "
                "matched to one set of ranges (load it with attn_implementation='eager')"
            )
        elif site in self._fresh:
            self._fresh.discard(site)
            self.lows[site], self.highs[site] = low, high
        else:
            self.lows[site] = torch.minimum(self.lows[site], low)
            self.highs[site] = torch.maximum(self.highs[site], high)
        return self.lows[site], self.highs[site]


def fake_quant_tensor(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Asymmetric int8 per tensor over [low, high] (0 inside), straight-through gradient."""
    scale = ((high - low) / 255.0).clamp(min=1e-8)
    zero_point = (-128 - torch.round(low / scale)).clamp(-128, 127).to(torch.int32)
    return torch.fake_quantize_per_tensor_affine(x, scale.float(), zero_point, -128, 127)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (rows of a ``F.linear`` weight), straight-through."""
    scale = (w.detach().abs().amax(dim=1) / 127.0).clamp(min=1e-8).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def fake_quant_table(w: torch.Tensor) -> torch.Tensor:
    """An embedding table in int8 per tensor (its own min / max), straight-through."""
    low, high = w.detach().min().clamp(max=0.0), w.detach().max().clamp(min=0.0)
    return fake_quant_tensor(w, low, high)


def fake_quant_softmax(x: torch.Tensor) -> torch.Tensor:
    """TFLite's fixed int8 softmax output grid: scale 1/256, zero point −128."""
    return torch.fake_quantize_per_tensor_affine(x, 1.0 / 256.0, -128, -128, 127)


class Int8Simulation(TorchFunctionMode):
    """Within the mode, a model's forward computes as its integer TFLite graph (see the module doc).

    Args:
        ranges: The running ranges (one per call site); shared across forwards.
        observe: Update the ranges from this forward's values.
        quantize: Round to the int8 grids (False: observe only, e.g. for the first batches).
    """

    def __init__(self, ranges: ActivationRanges, *, observe: bool = True, quantize: bool = True) -> None:
        super().__init__()
        self.ranges = ranges
        self.observe = observe
        self.quantize = quantize
        self.site = 0

    @staticmethod
    def _table(weight: torch.Tensor) -> torch.Tensor:
        return fake_quant_table(weight)

    def _range(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next call site's range (updated from ``x`` when observing)."""
        site = self.site
        self.site += 1
        if self.observe:
            return self.ranges.update(site, name, x)
        if site >= len(self.ranges.ops) or self.ranges.ops[site] != name:
            raise RuntimeError(f"int8 simulation: call {site} ({name}) has no observed range")
        return self.ranges.lows[site], self.ranges.highs[site]

    def _out(self, name: str, x: torch.Tensor) -> torch.Tensor:
        low, high = self._range(name, x)
        return fake_quant_tensor(x, low, high) if self.quantize else x

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        name = _name(func)
        if name in _PASS_THROUGH:
            return func(*args, **kwargs)
        table = self._table if self.quantize else (lambda w: w)
        if func is F.embedding:  # rows of an int8 table: the table's grid, no site of its own
            ids, weight, *rest = args
            return func(ids, table(weight), *rest, **kwargs)
        if func is torch.index_select and isinstance(args[0], torch.nn.Parameter):
            return func(table(args[0]), *args[1:], **kwargs)
        if func is F.linear and self.quantize:
            x, weight, *rest = args
            args = (x, fake_quant_weight(weight), *rest)
        elif func is F.layer_norm:
            return self._layer_norm(*args, **kwargs)
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return out
        if name in _SOFTMAX:
            self._range(name, out)  # a site for the order check; the grid is fixed
            return fake_quant_softmax(out) if self.quantize else out
        return self._out(name, out)

    def _layer_norm(
        self,
        x: torch.Tensor,
        normalized_shape: Any,
        weight: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        eps: float = 1e-5,
    ) -> torch.Tensor:
        """LayerNorm over the last dimension as the TFLite converter decomposes it, each op rounded:
        MEAN, SQUARED_DIFFERENCE, MEAN, ADD ε, RSQRT, MUL (mean·r), SUB (0 − mean·r), MUL (x·r),
        ADD, then MUL γ and ADD β."""
        mean = self._out("ln.mean", x.mean(dim=-1, keepdim=True))
        square = self._out("ln.squared_difference", (x - mean) ** 2)
        var = self._out("ln.var", square.mean(dim=-1, keepdim=True))
        # var + ε can round to 0 on its int8 grid; the integer RSQRT saturates there, so clamp
        # rather than divide by zero (an infinite value, and a NaN gradient)
        inv = self._out("ln.rsqrt", torch.rsqrt(self._out("ln.add_eps", var + eps).clamp(min=eps)))
        shift = self._out("ln.sub", -self._out("ln.mul_mean", mean * inv))
        out = self._out("ln.add", self._out("ln.mul_x", x * inv) + shift)
        if weight is not None:
            out = self._out("ln.mul_gamma", out * weight)
        if bias is not None:
            out = self._out("ln.add_beta", out + bias)
        return out


@contextlib.contextmanager
def int8_simulation(
    model: torch.nn.Module, ranges: ActivationRanges, *, observe: bool = True, quantize: bool = True
) -> Iterator[None]:
    """Runs ``model``'s forwards in the block as its integer TFLite graph (:class:`Int8Simulation`);
    each forward starts again at the first call site."""
    mode = Int8Simulation(ranges, observe=observe, quantize=quantize)

    def restart(*_: Any) -> None:
        mode.site = 0

    hook = model.register_forward_pre_hook(restart)
    try:
        with mode:
            yield
    finally:
        hook.remove()
