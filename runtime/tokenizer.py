"""Tokenization from a bundle's ``tokenizer.json``, matching Hugging Face fast tokenizers.

The Hugging Face ``tokenizers`` library runs the same Rust code that ``AutoTokenizer`` (fast)
wraps, so normalisation, pre-tokenisation, WordPiece/BPE and the post-processor (``[CLS] …
[SEP]`` or ``<s> … </s>``) come from the file itself. This module adds only what
``AutoTokenizer`` adds on top: right-side ``longest_first`` truncation at ``max_length`` and
right-side padding with attention mask 0 and token type 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer  # type: ignore[import-untyped]  # ships no type stubs

from runtime.errors import BundleError, InputError

__all__ = ["BundleTokenizer", "Encoded"]

_PAD_TOKENS = ("[PAD]", "<pad>")


@dataclass(frozen=True)
class Encoded:
    """A tokenized, padded batch.

    Attributes:
        input_ids: Token ids, ``np.int64`` of shape ``[batch, seq]``.
        attention_mask: 1 for real tokens, 0 for padding; same shape.
        token_type_ids: Segment ids (0 for single texts and padding); same shape.
        truncated: Per row, whether the text was cut at ``max_length``.
    """

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    truncated: tuple[bool, ...]

    def as_feeds(self) -> dict[str, np.ndarray]:
        """Returns the arrays keyed by the standard model input names."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }


class BundleTokenizer:
    """Tokenizer built once from a ``tokenizer.json`` file.

    ``encode`` does not mutate the tokenizer, so one instance may be shared by threads.

    Args:
        path: The Hugging Face ``tokenizers`` JSON file.
        max_length: Truncation length, special tokens included.

    Raises:
        BundleError: The file cannot be parsed, or it defines no padding token.
    """

    def __init__(self, path: Path, max_length: int) -> None:
        path = Path(path)
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
            raise BundleError(
                f"cannot load tokenizer {path}: {exc}; it must be a Hugging Face tokenizers JSON "
                "file (tokenizer.json from save_pretrained)"
            ) from exc
        self.pad_id, self.pad_type_id = _padding_ids(tokenizer, path)
        self.max_length = max_length
        tokenizer.no_padding()
        # Truncating inside tokenizers keeps the post-processor's special tokens and fills
        # `overflowing`, which is how truncation is detected.
        try:
            tokenizer.enable_truncation(max_length, strategy="longest_first", direction="right")
        except Exception as exc:
            raise BundleError(f"cannot truncate {path} at max_length={max_length}: {exc}") from exc
        self._tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary, added tokens included."""
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, texts: Sequence[str], *, pad_to: int | None) -> Encoded:
        """Tokenizes a batch.

        Args:
            texts: The texts, already validated as strings.
            pad_to: Pad every row to exactly this length; ``None`` pads to the longest row of
                the batch (dynamic padding).

        Returns:
            The padded ``np.int64`` arrays and per-row truncation flags.

        Raises:
            InputError: ``pad_to`` is shorter than a tokenized row.
        """
        try:
            # A single text skips encode_batch's thread-pool hand-off (most of its cost at batch 1).
            encodings = (
                [self._tokenizer.encode(texts[0])] if len(texts) == 1 else self._tokenizer.encode_batch(list(texts))
            )
        except Exception as exc:  # e.g. max_length shorter than the special tokens
            raise InputError(f"tokenization failed: {exc}") from exc
        if len(encodings) == 1 and pad_to is None:  # one text, unpadded: the arrays as they come
            enc = encodings[0]
            return Encoded(
                np.asarray([enc.ids], dtype=np.int64),
                np.asarray([enc.attention_mask], dtype=np.int64),
                np.asarray([enc.type_ids], dtype=np.int64),
                (bool(enc.overflowing),),
            )
        longest = max((len(e.ids) for e in encodings), default=0)
        width = longest if pad_to is None else pad_to
        if width < longest:
            raise InputError(
                f"pad_to={pad_to} is shorter than the longest row ({longest} tokens); "
                f"use pad_to >= max_length ({self.max_length})"
            )
        shape = (len(encodings), width)
        input_ids = np.full(shape, self.pad_id, dtype=np.int64)
        attention_mask = np.zeros(shape, dtype=np.int64)
        token_type_ids = np.full(shape, self.pad_type_id, dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            input_ids[row, :n] = enc.ids
            attention_mask[row, :n] = enc.attention_mask
            token_type_ids[row, :n] = enc.type_ids
        truncated = tuple(bool(enc.overflowing) for enc in encodings)
        return Encoded(input_ids, attention_mask, token_type_ids, truncated)


def _padding_ids(tokenizer: Tokenizer, path: Path) -> tuple[int, int]:
    config = tokenizer.padding
    if config is not None:
        return int(config["pad_id"]), int(config.get("pad_type_id", 0))
    for token in _PAD_TOKENS:
        pad_id = tokenizer.token_to_id(token)
        if pad_id is not None:
            return int(pad_id), 0
    raise BundleError(
        f"tokenizer {path} defines no padding token (no padding config, no {' or '.join(_PAD_TOKENS)} "
        "token); re-export the tokenizer with a pad token"
    )
