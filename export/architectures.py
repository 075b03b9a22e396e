"""The architecture table: what differs between BERT-family models, as data.

Exported graphs take the table's inputs that the model's ``forward`` accepts, in the
table's order (:func:`model_input_names`); runtimes bind them by name. Tolerances are
per architecture. MiniLM checkpoints are ``bert`` (``model_type`` is what matters).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from export.errors import UnsupportedArchitectureError

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
WITHOUT_SEGMENTS = ("input_ids", "attention_mask")


class TokenizerKind(StrEnum):
    """The sub-word model of an architecture's tokenizer (all run from ``tokenizer.json``)."""

    WORDPIECE = "wordpiece"
    BPE = "bpe"
    """Byte-level BPE (vocab.json + merges.txt)."""
    UNIGRAM = "unigram"
    """SentencePiece unigram (spiece.model)."""


@dataclass(frozen=True)
class Arch:
    """What the pipeline needs to know about one ``model_type``.

    Attributes:
        inputs: Model inputs, in this order, that the exported graphs take.
        onnx_atol: Max |logit Δ| allowed between PyTorch and an fp32 ONNX export.
        tflite_atol: Max |logit Δ| allowed between PyTorch and an fp32 TFLite export.
        tokenizer: The sub-word model of its tokenizer.
        notes: Anything a user should know about exporting this architecture.
    """

    inputs: tuple[str, ...]
    onnx_atol: float
    tflite_atol: float
    tokenizer: TokenizerKind = TokenizerKind.WORDPIECE
    notes: str = ""


ARCHITECTURES: dict[str, Arch] = {
    "bert": Arch(inputs=TOKEN_INPUTS, onnx_atol=1e-4, tflite_atol=1e-3, notes="MiniLM checkpoints are bert too"),
    "roberta": Arch(
        inputs=WITHOUT_SEGMENTS,
        onnx_atol=1e-4,
        tflite_atol=1e-3,
        tokenizer=TokenizerKind.BPE,
        # forward() accepts token_type_ids, but type_vocab_size is 1 and the tokenizer
        # never emits them, so the graphs do not take them (as in optimum's export).
        notes="no token_type_ids; position ids start at pad_token_id + 1, so max_position_embeddings = max_length + 2",
    ),
    "distilbert": Arch(inputs=WITHOUT_SEGMENTS, onnx_atol=1e-4, tflite_atol=1e-3, notes="takes no token_type_ids"),
    "albert": Arch(
        inputs=TOKEN_INPUTS,
        onnx_atol=1e-4,
        tflite_atol=1e-3,
        tokenizer=TokenizerKind.UNIGRAM,
        notes="every layer shares one weight group; a shallower student runs the same weights fewer times",
    ),
    "mobilebert": Arch(
        inputs=TOKEN_INPUTS,
        onnx_atol=1e-3,
        tflite_atol=1e-3,
        # NoNorm (elementwise affine instead of LayerNorm) and 24 stacked
        # bottlenecks make activations large, so fp32 reorderings show up sooner.
        notes="uses NoNorm instead of LayerNorm; activations are large",
    ),
    "electra": Arch(
        inputs=TOKEN_INPUTS,
        onnx_atol=1e-4,
        tflite_atol=1e-3,
        notes="the discriminator; embeddings are projected when embedding_size != hidden_size",
    ),
}


def arch_for(model_type: str) -> Arch:
    """Looks up an architecture.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in the table.
    """
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnsupportedArchitectureError(f"model_type {model_type!r} is not supported; supported: {known}") from None


def model_input_names(model: Any) -> tuple[str, ...]:
    """The token inputs an exported graph of ``model`` takes, in the table's order.

    Those of the table entry for ``model.config.model_type`` (all of :data:`TOKEN_INPUTS`
    for a model outside the table) that ``model.forward`` accepts, read from its signature.
    """
    params = inspect.signature(model.forward).parameters
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    wanted = ARCHITECTURES[model_type].inputs if model_type in ARCHITECTURES else TOKEN_INPUTS
    return tuple(name for name in wanted if name in params)
