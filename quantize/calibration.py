"""Calibration texts: drawn from the training split (seeded), never from the eval split.

Static quantization (ONNX ``int8-static``, TFLite ``int8-full`` / ``16x8``) needs activation
ranges from real text; the TFLite sensitivity analysis needs a second, disjoint set to score
its trials on. Both come from the training split, so the accuracy gate's eval split stays unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from export.errors import DataError

Encoded = dict[str, np.ndarray]
"""One text's model inputs by name, each ``int32 [1, length]``."""


@dataclass(frozen=True)
class CalibrationTexts:
    """Disjoint samples of the training split.

    Attributes:
        calibration: Texts that set the activation ranges.
        sensitivity: Texts that score sensitivity-analysis trials (may be empty).
        seed: The seed they were drawn with.
    """

    calibration: tuple[str, ...]
    sensitivity: tuple[str, ...]
    seed: int


def draw_texts(train_texts: Sequence[str], calibration: int, sensitivity: int, seed: int) -> CalibrationTexts:
    """Draws two disjoint, seeded samples of the training texts.

    When the split is smaller than ``calibration + sensitivity``, calibration takes what it
    asked for (up to the whole split) and sensitivity the rest.

    Raises:
        DataError: the training split is empty.
    """
    if not train_texts:
        raise DataError("cannot calibrate: the training split is empty")
    order = np.random.default_rng(seed).permutation(len(train_texts))
    n_cal = min(calibration, len(order))
    cal = tuple(train_texts[i] for i in order[:n_cal])
    sens = tuple(train_texts[i] for i in order[n_cal : n_cal + sensitivity])
    return CalibrationTexts(cal, sens, seed)


def encode(
    tokenizer: Callable[..., dict],
    texts: Sequence[str],
    input_names: Sequence[str],
    max_length: int,
    buckets: Sequence[int] | None = None,
) -> list[tuple[int, Encoded]]:
    """Tokenizes texts one by one, as the runtime does (batch 1).

    Args:
        tokenizer: A Hugging Face tokenizer (called with ``truncation=True``).
        texts: The texts.
        input_names: The model's inputs, e.g. ``("attention_mask", "input_ids")``.
        max_length: Truncation length.
        buckets: TFLite length buckets: each text is padded to the smallest that holds it
            (pad id 0, mask 0); None: no padding (ONNX dynamic axes).

    Returns:
        ``(length, inputs)`` per text, inputs ``int32 [1, length]`` keyed by name.
    """
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    out = []
    for i in range(len(texts)):
        n = len(enc["input_ids"][i])
        length = n if buckets is None else next((b for b in buckets if b >= n), buckets[-1])
        row = {}
        for name in input_names:
            values = list(enc[name][i]) if name in enc else [0] * n
            fill = pad_id if name == "input_ids" else 0
            row[name] = np.asarray([values + [fill] * (length - n)], dtype=np.int32)
        out.append((length, row))
    return out
