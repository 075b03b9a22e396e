"""Shared test helpers."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    MobileBertConfig,
    MobileBertForSequenceClassification,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from export.config import load_config

SEQ_LEN = 16
NUM_LABELS = 3


def assert_close(actual: object, expected: object, atol: float, what: str = "") -> float:
    """Asserts two arrays have the same shape and max |Δ| ≤ ``atol``; the message gives both.

    Returns:
        The max |Δ|.
    """
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    label = f"{what}: " if what else ""
    assert a.shape == b.shape, f"{label}shape {a.shape} != expected {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    # NaN compares False, so a NaN anywhere fails too.
    assert diff <= atol, f"{label}max |Δ| = {diff:.3g} exceeds atol = {atol:.3g}"
    return diff


# --- the parity matrix ---------------------------------------------------------------------

#: Every (architecture × path) cell that must have a parity test; see test_architectures.py.
CELLS = (
    "finetune",
    "teacher",
    "student",
    "onnx-fp32",
    "onnx-int8",
    "onnx-dynamo-fp32",
    "tflite-fp32",
    "tflite-fp16",
    "tflite-int8",
    "tflite-tf-fp32",
    "tflite-tf-fp16",
    "tflite-tf-int8",
    "runtime",
)


def parity(cell: str) -> Callable[[Callable], Callable]:
    """Marks a test as the parity test of ``cell`` and parametrizes it over ``arch``.

    The completeness test reads ``__parity__`` and the ``arch`` parametrization, so an
    architecture in the table without a tiny model (or a cell without a test) fails it.
    """
    if cell not in CELLS:
        raise ValueError(f"unknown parity cell {cell!r}; known: {CELLS}")

    def mark(fn: Callable) -> Callable:
        fn.__parity__ = cell  # type: ignore[attr-defined]
        return pytest.mark.parametrize("arch", sorted(TINY_MODELS))(fn)

    return mark


def assert_parity(arch: str, cell: str, actual: object, expected: object, atol: float) -> float:
    """:func:`assert_close` for one cell of the matrix; records the max |Δ| (see :func:`record_parity`)."""
    delta = assert_close(actual, expected, atol, f"{arch} {cell}")
    record_parity(arch, cell, delta)
    return delta


def record_parity(arch: str, cell: str, delta: float) -> None:
    """Appends a measured max |Δ| to ``$PARITY_LOG`` (JSON lines) when it is set, for the matrix table."""
    path = os.environ.get("PARITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"arch": arch, "cell": cell, "max_abs_delta": delta}) + "\n")


# initializer_range=0.2 (not the default 0.02) gives O(1) logits with separated
# labels, so parity and label agreement test something; at 0.02 logits are ~1e-2
# (MobileBERT's round to 0.0) and every comparison passes trivially.
INIT = 0.2
VOCAB_SIZE = 128
COMMON = dict(num_labels=NUM_LABELS, initializer_range=INIT, max_position_embeddings=64)
BERT_LIKE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)

#: model_type -> builder of a tiny random classifier, given the vocabulary size.
TINY_MODELS: dict[str, Callable[[int], PreTrainedModel]] = {
    "bert": lambda v: BertForSequenceClassification(BertConfig(vocab_size=v, **BERT_LIKE, **COMMON)),
    "roberta": lambda v: RobertaForSequenceClassification(
        # pad_token_id=1 and one segment, as in roberta-base; positions start at pad + 1.
        RobertaConfig(vocab_size=v, type_vocab_size=1, pad_token_id=1, **BERT_LIKE, **COMMON)
    ),
    "distilbert": lambda v: DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=2, hidden_dim=37, **COMMON)
    ),
    "albert": lambda v: AlbertForSequenceClassification(
        # embedding_size < hidden_size exercises the factorised embedding projection.
        AlbertConfig(vocab_size=v, embedding_size=16, **BERT_LIKE, **COMMON)
    ),
    "mobilebert": lambda v: MobileBertForSequenceClassification(
        MobileBertConfig(
            vocab_size=v,
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
    "electra": lambda v: ElectraForSequenceClassification(
        ElectraConfig(vocab_size=v, embedding_size=16, **BERT_LIKE, **COMMON)
    ),
}


def tiny_model(name: str, vocab_size: int = VOCAB_SIZE) -> PreTrainedModel:
    torch.manual_seed(0)
    return TINY_MODELS[name](vocab_size).eval()


def fixed_batch(extra_rows: int = 0) -> dict[str, np.ndarray]:
    """4 rows of random ids; rows 1-3 end in 3, 7 and 12 padding positions.

    ``extra_rows`` appends more random rows (random padding), for label checks that need
    more rows with a clear top-1 margin than 4.
    """
    rng = np.random.default_rng(3)  # seed picked so every top-2 margin > 0.05
    input_ids = rng.integers(1, VOCAB_SIZE, size=(4, SEQ_LEN), dtype=np.int64)
    pads = [0, 3, 7, 12]
    if extra_rows:
        more = np.random.default_rng(4)
        input_ids = np.concatenate([input_ids, more.integers(1, VOCAB_SIZE, size=(extra_rows, SEQ_LEN))])
        pads += [int(p) for p in more.integers(0, SEQ_LEN - 2, size=extra_rows)]
    rows = len(pads)
    attention_mask = np.ones((rows, SEQ_LEN), dtype=np.int64)
    for row, pad in enumerate(pads):
        if pad:
            attention_mask[row, -pad:] = 0
    input_ids[attention_mask == 0] = 0  # pad_token_id
    token_type_ids = np.zeros((rows, SEQ_LEN), dtype=np.int64)
    token_type_ids[:, SEQ_LEN // 2 :] = 1
    token_type_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


# SST-2-like phrase data and a tiny pipeline config for the training tests.
POS, NEG = ("good", "great", "lovely", "fine"), ("bad", "awful", "dull", "poor")
FILL = ("movie", "plot", "the", "a", "film", "acting", "was", "is", "story", "cast")


def phrase_corpus(n_sentences: int, seed: int = 0) -> list[tuple[str, int]]:
    """SST-2-like rows: each sentence followed by some of its contiguous sub-phrases, same label."""
    r = random.Random(seed)
    rows = []
    for i in range(n_sentences):
        label = i % 2
        words = [r.choice(FILL) for _ in range(r.randint(4, 9))] + [f"w{i}"]  # w{i}: unique to sentence i
        words.insert(r.randint(0, len(words)), r.choice(POS if label else NEG))
        rows.append((" ".join(words), label))
        for _ in range(4):
            a = r.randint(0, len(words) - 2)
            b = r.randint(a + 1, len(words) - 1)
            rows.append((" ".join(words[a:b]), label))
    return rows


def write_tsv(rows: list[tuple[str, int]], path: Path) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    return path


def tiny_cfg(model_dir: Path, tmp_path: Path, *extra: str, data_file: Path | None = None):
    data_file = data_file or write_tsv(phrase_corpus(60), tmp_path / "train.tsv")
    return load_config(
        None,
        [
            f"model.name_or_path={model_dir}",
            f"data.train={data_file}",
            f"out={tmp_path / 'out'}",
            "data.holdout=sentences",
            "data.max_train_samples=none",
            "data.max_length=16",
            "finetune.epochs=2",
            "finetune.batch_size=8",
            "finetune.learning_rate=1e-3",
            "distill.epochs=1",
            "distill.batch_size=8",
            *extra,
        ],
    )
