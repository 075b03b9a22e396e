"""Shared test helpers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    MobileBertConfig,
    MobileBertForSequenceClassification,
    PreTrainedModel,
)

SEQ_LEN = 16
NUM_LABELS = 3


def assert_close(actual: object, expected: object, atol: float, what: str = "") -> None:
    """Asserts two arrays have the same shape and max |Δ| ≤ ``atol``; the message gives both."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shape {a.shape} != expected {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    # NaN compares False, so a NaN anywhere fails too.
    assert diff <= atol, f"{label}max |Δ| = {diff:.3g} exceeds atol = {atol:.3g}"


# initializer_range=0.2 (not the default 0.02) gives O(1) logits with separated
# labels, so parity and label agreement test something; at 0.02 logits are ~1e-2
# (MobileBERT's round to 0.0) and every comparison passes trivially.
INIT = 0.2
COMMON = dict(vocab_size=128, num_labels=NUM_LABELS, initializer_range=INIT, max_position_embeddings=64)

TINY_MODELS: dict[str, Callable[[], PreTrainedModel]] = {
    "bert": lambda: BertForSequenceClassification(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, **COMMON)
    ),
    "distilbert": lambda: DistilBertForSequenceClassification(
        DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=37, **COMMON)
    ),
    "mobilebert": lambda: MobileBertForSequenceClassification(
        MobileBertConfig(
            hidden_size=32,
            embedding_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            intra_bottleneck_size=16,
            true_hidden_size=16,
            num_feedforward_networks=1,
            **COMMON,
        )
    ),
}


def tiny_model(name: str) -> PreTrainedModel:
    torch.manual_seed(0)
    return TINY_MODELS[name]().eval()


def fixed_batch() -> dict[str, np.ndarray]:
    """4 rows of random ids; rows 1-3 end in 3, 7 and 12 padding positions."""
    rng = np.random.default_rng(3)  # seed picked so every top-2 margin > 0.05
    input_ids = rng.integers(1, 128, size=(4, SEQ_LEN), dtype=np.int64)
    attention_mask = np.ones((4, SEQ_LEN), dtype=np.int64)
    for row, pad in enumerate((0, 3, 7, 12)):
        if pad:
            attention_mask[row, -pad:] = 0
    input_ids[attention_mask == 0] = 0  # pad_token_id
    token_type_ids = np.zeros((4, SEQ_LEN), dtype=np.int64)
    token_type_ids[:, SEQ_LEN // 2 :] = 1
    token_type_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
