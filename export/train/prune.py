"""Narrower feed-forward layers for the student: keep each layer's most useful FFN neurons.

The feed-forward block is two thirds of an encoder layer's multiply-adds (``2 · hidden · ffn``
of ``4 · hidden² + 2 · hidden · ffn`` per token at ``ffn = 4 · hidden``), so its width is the
cheapest lever on latency and size that keeps the hidden size — and with it every teacher
weight outside the FFN, the embeddings and the hidden-state transfer loss — unchanged.

A neuron's importance is how much it writes into the residual stream on real text: the mean
absolute activation over the non-padding tokens of some training texts times the L2 norm of
its outgoing weights (the column of the second projection). The kept neurons keep their
weights and order; distillation then recovers what the dropped ones carried.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from export.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FfnNames:
    """Where one architecture keeps a layer's FFN: module paths relative to an encoder layer."""

    layers: str
    """The encoder layers' ModuleList, from the classifier."""
    up: str
    """First projection (hidden → ffn), an ``nn.Linear``."""
    activation: str
    """The activation module; its output is what importance is measured on."""
    down: str
    """Second projection (ffn → hidden), an ``nn.Linear``."""
    width: str
    """The config attribute holding the FFN width."""


def _bert_like(prefix: str) -> FfnNames:
    return FfnNames(
        f"{prefix}.encoder.layer",
        "intermediate.dense",
        "intermediate.intermediate_act_fn",
        "output.dense",
        "intermediate_size",
    )


_FFN = {
    "distilbert": FfnNames("distilbert.transformer.layer", "ffn.lin1", "ffn.activation", "ffn.lin2", "hidden_dim"),
    "bert": _bert_like("bert"),
    "roberta": _bert_like("roberta"),
    "electra": _bert_like("electra"),
}


def ffn_width(model: Any) -> int:
    """The FFN width of a model the pruner supports.

    Raises:
        ConfigError: its architecture is not one of :data:`_FFN`'s.
    """
    return int(getattr(model.config, _names(model).width))


def neuron_importance(model: Any, batches: Sequence[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """Per layer, each FFN neuron's mean |activation| over real tokens × its outgoing weight norm.

    Args:
        model: The classifier (eval mode is set and restored).
        batches: Tokenized inputs with an ``attention_mask``.

    Returns:
        One float tensor ``[ffn]`` per encoder layer.
    """
    names = _names(model)
    layers = model.get_submodule(names.layers)
    sums = [torch.zeros(ffn_width(model), dtype=torch.float64) for _ in layers]
    mask: list[torch.Tensor] = []

    def hook(index: int) -> Any:
        def record(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
            real = mask[0].unsqueeze(-1).to(output.dtype)  # [batch, seq, 1]
            sums[index] += (output.abs() * real).sum(dim=(0, 1)).double()

        return record

    handles = [layer.get_submodule(names.activation).register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    tokens = 0
    try:
        with torch.inference_mode():
            for batch in batches:
                mask[:] = [batch["attention_mask"]]
                tokens += int(batch["attention_mask"].sum())
                model(**batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = []
    for layer, total in zip(layers, sums, strict=True):
        outgoing = layer.get_submodule(names.down).weight.detach().double().norm(dim=0)  # [ffn]
        out.append((total / max(tokens, 1) * outgoing).float())
    return out


def prune_ffn(model: Any, width: int, batches: Sequence[dict[str, torch.Tensor]]) -> Any:
    """A copy of ``model`` whose every FFN keeps its ``width`` most important neurons.

    Args:
        model: A classifier of an architecture in :data:`_FFN`.
        width: Neurons to keep per layer, 1..the current width (equal: an unchanged copy).
        batches: Tokenized training texts importance is measured on.

    Returns:
        The narrower model (a new instance; ``model`` is not modified).

    Raises:
        ConfigError: unsupported architecture, or ``width`` out of range.
    """
    names = _names(model)
    current = ffn_width(model)
    if not 1 <= width <= current:
        raise ConfigError(f"distill.ffn_size={width} is invalid; allowed: 1..{current} (the teacher's FFN width)")
    importance = neuron_importance(model, batches)
    keep = [torch.sort(torch.topk(score, width).indices).values for score in importance]
    config = copy.deepcopy(model.config)
    setattr(config, names.width, width)
    narrow = type(model)(config)
    state = model.state_dict()
    for i, idx in enumerate(keep):
        prefix = f"{names.layers}.{i}."
        state[f"{prefix}{names.up}.weight"] = state[f"{prefix}{names.up}.weight"][idx].clone()
        state[f"{prefix}{names.up}.bias"] = state[f"{prefix}{names.up}.bias"][idx].clone()
        state[f"{prefix}{names.down}.weight"] = state[f"{prefix}{names.down}.weight"][:, idx].clone()
    narrow.load_state_dict(state)
    kept = [float(score[idx].sum() / score.sum()) for score, idx in zip(importance, keep, strict=True)]
    log.info(
        "FFN pruned %d → %d neurons per layer; share of importance kept per layer: %s",
        current,
        width,
        ", ".join(f"{100 * k:.0f}%" for k in kept),
    )
    return narrow


def _names(model: Any) -> FfnNames:
    kind = model.config.model_type
    if kind not in _FFN:
        raise ConfigError(
            f"distill.ffn_size cannot narrow a {kind} student; supported: {', '.join(sorted(_FFN))} "
            "(MobileBERT stacks several FFNs per layer, ALBERT shares one layer across its depth)"
        )
    return _FFN[kind]
