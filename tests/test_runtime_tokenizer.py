"""BundleTokenizer against Hugging Face fast tokenizers (AutoTokenizer), on varied text."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_runtime_support import write_bert_tokenizer

from runtime.errors import BundleError, InputError
from runtime.tokenizer import BundleTokenizer

BASE = [
    "a good movie",
    "The plot is BAD, and the acting was not very good.",
    "Café, naïve, résumé, Ångström, façade, jalapeño.",
    "Straße Größe Übermut ÇA VA? ÉTÉ",
    "中文测试 日本語のテキスト 한국어 문장",
    "mixed 中文 and english 日本 words",
    "emoji 😀😃 in the middle 🎉 and at the end 👍🏽",
    "family emoji 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis is a long word",
    "numbers 12345 3.14159 1,000,000 and 2024-01-01",
    "punctuation!!! ??? ... --- ;;; ::: ((())) \"quoted\" 'single'",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed",
    "URL https://example.com/path?q=1&x=2 and e-mail a.b@example.org",
    "#hashtag @mention $dollar %percent ^caret &amp *star",
    "can't won't shouldn't it's they're",
    "x",
    "Zero\u200bwidth\u00a0nbsp and combining e\u0301 accents",
    "ﬁ ligature and fullwidth ＡＢＣ １２３",
    "Ελληνικά και русский текст",
    "العربية עברית हिन्दी ไทย",
]
WORDS = "the movie good bad great plot not very and of film acting café 中 😀 wonderful terrible ok".split()


def sentences() -> list[str]:
    """~200 texts: the hand-written ones plus seeded random mixes, some long enough to truncate."""
    rng = random.Random(0)
    out = list(BASE)
    while len(out) < 200:
        n = rng.choice([1, 3, 8, 20, 60, 150])
        words = [rng.choice(WORDS + BASE[:6]) for _ in range(n)]
        out.append(" ".join(words))
    return out


TEXTS = sentences()


@pytest.fixture(scope="module")
def bert_tok(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    d = tmp_path_factory.mktemp("bert-tok")
    return d / "tokenizer.json", write_bert_tokenizer(d)


@pytest.fixture(scope="module")
def roberta_tok(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A byte-level BPE with RoBERTa's ``<s> … </s>`` post-processor, trained on TEXTS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    path = tmp_path_factory.mktemp("roberta-tok") / "tokenizer.json"
    tok.save(str(path))
    hf = PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    return path, hf


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("max_length", [8, 32, 128])
def test_matches_hf_fast_tokenizer(kind: str, max_length: int, request: pytest.FixtureRequest) -> None:
    path, hf = request.getfixturevalue(f"{kind}_tok")
    ours = BundleTokenizer(path, max_length)
    for batch_start in range(0, len(TEXTS), 50):  # dynamic padding differs per batch
        batch = TEXTS[batch_start : batch_start + 50]
        for pad_to, padding in ((None, True), (max_length, "max_length")):
            got = ours.encode(batch, pad_to=pad_to)
            want = hf(batch, truncation=True, max_length=max_length, padding=padding, return_tensors="np")
            for name in ("input_ids", "attention_mask", "token_type_ids"):
                if name in want:
                    actual = getattr(got, name)
                    assert actual.dtype == np.int64
                    np.testing.assert_array_equal(actual, want[name], err_msg=f"{kind} {name} pad_to={pad_to}")
        untruncated = hf(batch)["input_ids"]
        assert got.truncated == tuple(len(ids) > max_length for ids in untruncated)
    if max_length == 8:
        assert any(ours.encode(TEXTS, pad_to=None).truncated), "the corpus should exercise truncation"


def test_special_tokens_and_pad_id(bert_tok: tuple[Path, Any], roberta_tok: tuple[Path, Any]) -> None:
    bert = BundleTokenizer(bert_tok[0], 16).encode(["a good movie", "a"], pad_to=None)
    vocab = bert_tok[1].get_vocab()
    assert bert.input_ids[0, 0] == vocab["[CLS]"] and bert.input_ids[0, 4] == vocab["[SEP]"]
    assert bert.input_ids[1, -1] == vocab["[PAD]"] and bert.attention_mask[1, -1] == 0
    roberta = BundleTokenizer(roberta_tok[0], 16)
    assert roberta.pad_id == 1
    enc = roberta.encode(["hello there friend", "hi"], pad_to=16)
    assert enc.input_ids.shape == (2, 16) and enc.input_ids[0, 0] == 0 and enc.input_ids[1, -1] == 1


def test_pad_to_shorter_than_a_row_is_an_input_error(bert_tok: tuple[Path, Any]) -> None:
    with pytest.raises(InputError, match="pad_to=4 is shorter than the longest row"):
        BundleTokenizer(bert_tok[0], 32).encode(["the movie was not very good at all"], pad_to=4)


def test_tokenizer_without_pad_token_is_a_bundle_error(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    path = tmp_path / "tokenizer.json"
    Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]")).save(str(path))
    with pytest.raises(BundleError, match=r"no padding token.*\[PAD\] or <pad>"):
        BundleTokenizer(path, 8)


def test_malformed_tokenizer_file_is_a_bundle_error(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"version": "1.0"}', encoding="utf-8")
    with pytest.raises(BundleError, match="cannot load tokenizer"):
        BundleTokenizer(path, 8)
