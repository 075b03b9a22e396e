"""BundleTokenizer against Hugging Face fast tokenizers (AutoTokenizer), on varied text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.errors import BundleError, InputError
from runtime.tokenizer import BundleTokenizer
from tests.builders import TEXTS, write_bert_tokenizer, write_roberta_tokenizer


@pytest.fixture(scope="module")
def bert_tok(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    d = tmp_path_factory.mktemp("bert-tok")
    return d / "tokenizer.json", write_bert_tokenizer(d)


@pytest.fixture(scope="module")
def roberta_tok(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A byte-level BPE with RoBERTa's ``<s> … </s>`` post-processor, trained on TEXTS."""
    path = tmp_path_factory.mktemp("roberta-tok") / "tokenizer.json"
    return path, write_roberta_tokenizer(path)


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
