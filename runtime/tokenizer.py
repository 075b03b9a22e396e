"""Tokenization from a bundle's ``tokenizer.json``, matching Hugging Face fast tokenizers.

The Hugging Face ``tokenizers`` library runs the same Rust code that ``AutoTokenizer`` (fast)
wraps, so normalisation, pre-tokenisation, WordPiece/BPE and the post-processor (``[CLS] …
[SEP]`` or ``<s> … </s>``) come from the file itself. This module adds only what
``AutoTokenizer`` adds on top: right-side ``longest_first`` truncation at ``max_length`` and
right-side padding with attention mask 0 and token type 0.

One text at a time (how a phone classifies), a BERT WordPiece tokenizer takes a fast path on
plain ASCII text (:class:`AsciiWordPiece`): the same ids from the same ``tokenizer.json``, without
the Rust pipeline's per-call cost, which right after a model has run (cold caches) was most of
the runtime's own time per text (issue 20). Anything else goes through ``tokenizers``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer  # type: ignore[import-untyped]  # ships no type stubs

from runtime.errors import BundleError, InputError

__all__ = ["AsciiWordPiece", "BundleTokenizer", "Encoded"]

_PAD_TOKENS = ("[PAD]", "<pad>")


@dataclass(frozen=True)
class Encoded:
    """A tokenized, padded batch.

    Attributes:
        input_ids: Token ids of shape ``[batch, seq]``, ``np.int64`` (``encode_one``: the dtype it was given).
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

    ``encode_one`` may return read-only ``attention_mask`` / ``token_type_ids`` arrays (shared
    between calls); copy them before writing to them.

    ``encode`` does not mutate the tokenizer, so one instance may be shared by threads.

    Args:
        path: The Hugging Face ``tokenizers`` JSON file.
        max_length: Truncation length, special tokens included.

    Raises:
        BundleError: The file cannot be parsed, or it defines no padding token.
    """

    _CONSTANT_ROWS_LIMIT = 4096

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
        self.fast: AsciiWordPiece | None = AsciiWordPiece.from_file(path, max_length)
        # (width, tokens, dtype) -> read-only (attention_mask, zero type ids) rows for encode_one.
        self._constant_rows: dict[tuple[int, int, str], tuple[np.ndarray, np.ndarray]] = {}

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
        if len(texts) == 1:  # one text: the single-text path (the fast path when it applies)
            return self.encode_one(texts[0], () if pad_to is None else (pad_to,))
        try:
            encodings = self._tokenizer.encode_batch(list(texts))
        except Exception as exc:  # e.g. max_length shorter than the special tokens
            raise InputError(f"tokenization failed: {exc}") from exc
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

    def encode_one(self, text: str, lengths: Sequence[int], dtype: Any = np.int64) -> Encoded:
        """Tokenizes one text, padded to the smallest of ``lengths`` that holds it (``lengths``
        ascending; empty: unpadded). The single-text path of the runtime: the fast path when the
        text allows it, arrays in ``dtype`` (the model's, so the backend need not convert them),
        and only ``input_ids`` built per text: the attention mask and the all-zero type ids of a
        row of ``n`` tokens in ``width`` are the same for every such text, built once and shared
        read-only.

        Raises:
            InputError: The text is longer than every length.
        """
        fast = self.fast.encode(text) if self.fast is not None else None
        if fast is not None:
            ids, truncated = fast
            type_ids: Sequence[int] = ()  # AsciiWordPiece takes only templates whose type ids are 0
        else:
            try:
                # One text: encode, not encode_batch (its thread-pool hand-off is most of its cost at batch 1).
                enc = self._tokenizer.encode(text)
            except Exception as exc:  # e.g. max_length shorter than the special tokens
                raise InputError(f"tokenization failed: {exc}") from exc
            ids, truncated, type_ids = enc.ids, bool(enc.overflowing), enc.type_ids
        n = len(ids)
        width = next((length for length in lengths if length >= n), lengths[-1]) if lengths else n
        if width < n:
            raise InputError(
                f"pad_to={width} is shorter than the longest row ({n} tokens); "
                f"use pad_to >= max_length ({self.max_length})"
            )
        # One list, one array call: after a model run (cold caches) np.full + a slice assignment
        # cost ~6 µs more per text.
        input_ids = np.array([[*ids, *(self.pad_id,) * (width - n)]], dtype=dtype)
        key = (width, n, np.dtype(dtype).str)
        constant = self._constant_rows.get(key)
        if constant is None:
            attention_mask = np.zeros((1, width), dtype=dtype)
            attention_mask[0, :n] = 1
            zeros = np.full((1, width), self.pad_type_id, dtype=dtype)
            zeros[0, :n] = 0
            attention_mask.flags.writeable = zeros.flags.writeable = False
            constant = (attention_mask, zeros)
            if len(self._constant_rows) < self._CONSTANT_ROWS_LIMIT:
                self._constant_rows[key] = constant
        attention_mask, token_type_ids = constant
        if any(type_ids):  # a Rust-path template with segment ids: this row's own
            token_type_ids = np.full((1, width), self.pad_type_id, dtype=dtype)
            token_type_ids[0, :n] = type_ids
        return Encoded(input_ids, attention_mask, token_type_ids, (truncated,))


class AsciiWordPiece:
    """BERT WordPiece tokenization of one plain-ASCII text, equal to ``tokenizers`` for the
    ``tokenizer.json`` it was built from (tests/runtime/test_fast_tokenizer.py checks every SST-2
    row and fuzzed ASCII against it).

    Built only for the shape BERT-family WordPiece files have: ``BertNormalizer``,
    ``BertPreTokenizer``, a ``WordPiece`` model, a ``[CLS] $A [SEP]`` post-processor with type id 0,
    and added tokens matched on the raw text (not normalized, no strip / single-word rules);
    :meth:`from_file` returns ``None`` for anything else. On such text the pipeline reduces to:
    lowercase (if the normalizer does), split into runs of letters and digits and single
    punctuation characters (every printable ASCII character that is neither is punctuation to
    BERT), greedy longest-match WordPiece per word (memoized), ``[CLS]`` … ``[SEP]``, right
    truncation. :meth:`encode` returns ``None`` (use ``tokenizers``) for text with a non-ASCII or
    control character other than tab / newline / carriage return, or containing an added token.
    """

    _UNSAFE = r"[^\x20-\x7e\t\n\r]"
    _WORDS = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9\s]")
    _CACHE_LIMIT = 100_000

    def __init__(
        self,
        vocab: Mapping[str, int],
        *,
        unk: str,
        prefix: str,
        max_chars: int,
        lowercase: bool,
        cls_id: int,
        sep_id: int,
        added: Sequence[str],
        max_length: int,
    ) -> None:
        self._vocab = dict(vocab)
        self._unk = [self._vocab[unk]]
        self._prefix = prefix
        self._max_chars = max_chars
        self._lowercase = lowercase
        self._cls, self._sep = cls_id, sep_id
        # One search refuses text with an unsafe character or an added token (matched on the raw text).
        self._refuse = re.compile("|".join([self._UNSAFE, *(re.escape(t) for t in added)]))
        self._room = max_length - 2
        self._cache = _Memo(self._wordpiece, self._CACHE_LIMIT)

    @classmethod
    def from_file(cls, path: Path, max_length: int) -> AsciiWordPiece | None:
        """The fast path for ``path`` (a ``tokenizer.json``), or ``None`` if its pipeline is not
        exactly the BERT WordPiece one described above."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls.from_json(data, max_length)

    @classmethod
    def from_json(cls, data: Any, max_length: int) -> AsciiWordPiece | None:
        """As :meth:`from_file`, from the parsed JSON."""
        if not isinstance(data, dict) or max_length < 3:
            return None
        normalizer, pre, model = data.get("normalizer"), data.get("pre_tokenizer"), data.get("model")
        if not (
            isinstance(normalizer, dict)
            and normalizer.get("type") == "BertNormalizer"
            and isinstance(pre, dict)
            and pre.get("type") == "BertPreTokenizer"
            and isinstance(model, dict)
            and model.get("type") == "WordPiece"
            and isinstance(model.get("vocab"), dict)
            and model.get("unk_token") in model["vocab"]
        ):
            return None
        special = _cls_sep(data.get("post_processor"))
        added = data.get("added_tokens") or []
        plain = all(
            isinstance(t, dict)
            and not t.get("normalized", True)
            and not (t.get("lstrip") or t.get("rstrip") or t.get("single_word"))
            and isinstance(t.get("content"), str)
            and t["content"]
            for t in added
        )
        if special is None or not plain:
            return None
        return cls(
            model["vocab"],
            unk=model["unk_token"],
            prefix=str(model.get("continuing_subword_prefix", "##")),
            max_chars=int(model.get("max_input_chars_per_word", 100)),
            lowercase=bool(normalizer.get("lowercase", True)),
            cls_id=special[0],
            sep_id=special[1],
            added=[t["content"] for t in added],
            max_length=max_length,
        )

    def encode(self, text: str) -> tuple[list[int], bool] | None:
        """``([CLS] ids [SEP], truncated)``, or ``None`` when the text needs ``tokenizers``."""
        if not text.isascii() or self._refuse.search(text):
            return None
        if self._lowercase:
            text = text.lower()
        # Word -> pieces through the memo, flattened in C rather than by a Python loop per word
        # (with the one-search refusal above: ~5 µs less per sentence right after a model run).
        pieces = list(chain.from_iterable(map(self._cache.__getitem__, self._WORDS.findall(text))))
        truncated = len(pieces) > self._room
        return [self._cls, *pieces[: self._room], self._sep], truncated

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > self._max_chars:
            return self._unk
        ids, start, vocab = [], 0, self._vocab
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else self._prefix + word[start:end]
                found = vocab.get(piece)
                if found is not None:
                    ids.append(found)
                    break
                end -= 1
            else:
                return self._unk
            start = end
        return ids


class _Memo(dict[str, list[int]]):
    """Word -> WordPiece ids, computed on first use; stops storing new words at ``limit``."""

    def __init__(self, compute: Callable[[str], list[int]], limit: int) -> None:
        super().__init__()
        self._compute, self._limit = compute, limit

    def __missing__(self, word: str) -> list[int]:
        ids = self._compute(word)
        if len(self) < self._limit:
            self[word] = ids
        return ids


def _cls_sep(post: Any) -> tuple[int, int] | None:
    """``(cls_id, sep_id)`` of a single-text ``[CLS] $A [SEP]`` post-processor with type id 0."""
    if not isinstance(post, dict):
        return None
    if post.get("type") == "BertProcessing":
        try:
            return int(post["cls"][1]), int(post["sep"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    if post.get("type") != "TemplateProcessing":
        return None
    single, specials = post.get("single"), post.get("special_tokens")
    if not (isinstance(single, list) and len(single) == 3 and isinstance(specials, dict)):
        return None
    try:
        first, middle, last = single[0]["SpecialToken"], single[1]["Sequence"], single[2]["SpecialToken"]
        if middle["id"] != "A" or {first["type_id"], middle["type_id"], last["type_id"]} != {0}:
            return None
        (cls_id,) = specials[first["id"]]["ids"]
        (sep_id,) = specials[last["id"]]["ids"]
    except (KeyError, TypeError, ValueError):
        return None
    return int(cls_id), int(sep_id)


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
