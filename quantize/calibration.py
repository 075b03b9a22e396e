"""Calibration texts: drawn from the training split (seeded), never from the eval split.

Static quantization (ONNX ``int8-static``, TFLite ``int8-full`` / ``16x8``) needs activation
ranges from real text; the TFLite sensitivity analysis needs a second, disjoint set to score
its trials on. Both come from the training split, so the accuracy gate's eval split stays unseen;
they are drawn to match the validation split's lengths (deployment-shaped text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from quantize.errors import DataError

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


LENGTH_BINS = (0, 4, 8, 12, 16, 24, 32, 48)
"""Word-count bin edges used to match the calibration texts' lengths to the deployment text's."""


def draw_texts(
    train_texts: Sequence[str],
    calibration: int,
    sensitivity: int,
    seed: int,
    like: Sequence[str] = (),
) -> CalibrationTexts:
    """Draws two disjoint, seeded samples of the training texts.

    With ``like`` (unlabelled texts shaped like what the model will see deployed, e.g. the
    validation split), training texts are drawn with weights that make their word-count
    distribution match ``like``'s. This matters when training rows differ in shape from
    deployment text: SST-2 trains on short phrases but is judged on full sentences, and
    activation ranges or sensitivity scores taken on phrases misjudge sentences.

    When the split is smaller than ``calibration + sensitivity``, calibration takes what it
    asked for (up to the whole split) and sensitivity the rest.

    Raises:
        DataError: the training split is empty.
    """
    if not train_texts:
        raise DataError("cannot calibrate: the training split is empty")
    rng = np.random.default_rng(seed)
    weights = _length_weights(train_texts, like) if like else None
    if weights is None:
        order = rng.permutation(len(train_texts))
    else:  # weighted draw without replacement, then the rest (uniformly) if more are wanted
        picked = rng.choice(len(train_texts), size=int(np.count_nonzero(weights)), replace=False, p=weights)
        rest = np.setdiff1d(np.arange(len(train_texts)), picked)
        order = np.concatenate([picked, rng.permutation(rest)])
    n_cal = min(calibration, len(order))
    cal = tuple(train_texts[i] for i in order[:n_cal])
    sens = tuple(train_texts[i] for i in order[n_cal : n_cal + sensitivity])
    return CalibrationTexts(cal, sens, seed)


def _length_weights(train_texts: Sequence[str], like: Sequence[str]) -> np.ndarray | None:
    """Per-text sampling probabilities that reweight ``train_texts`` to ``like``'s word-count
    histogram (None when no bin that ``like`` uses holds a training text)."""
    edges = np.array(LENGTH_BINS[1:])
    train_bins = np.searchsorted(edges, [len(t.split()) for t in train_texts], side="right")
    like_bins = np.searchsorted(edges, [len(t.split()) for t in like], side="right")
    n = len(LENGTH_BINS)
    train_hist = np.bincount(train_bins, minlength=n).astype(float)
    like_hist = np.bincount(like_bins, minlength=n).astype(float)
    per_bin = np.divide(like_hist, train_hist, out=np.zeros(n), where=train_hist > 0)
    weights = per_bin[train_bins]
    total = weights.sum()
    return weights / total if total > 0 else None


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
