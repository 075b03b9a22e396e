"""Sentence-level held-out splits (``data.holdout = sentences``): validation and eval are whole
sentences, and no training row is a piece found only inside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.config import DataConfig, Holdout, load_config
from export.data.dataset import load_data
from export.data.holdout import carve_sentences, sentence_rows
from tests.builders import REPO, phrase_corpus, spans, write_tsv


def test_sentence_rows_are_the_rows_no_other_row_contains() -> None:
    texts = ("a good film .", "good film", "a good film .", "dull", "the plot is dull", "plot")
    assert sentence_rows(texts) == [0, 4], "a sub-phrase or a repeat of another row counted as a sentence"


def test_held_out_sentences_leave_no_piece_of_themselves_in_training() -> None:
    rows = phrase_corpus(60)
    texts = tuple(t for t, _ in rows)
    train, (val, ev), dropped_rows = carve_sentences(texts, (0.2, 0.2), np.random.default_rng(0))
    dropped = len(dropped_rows)
    sentences = set(sentence_rows(texts))
    assert len(val) == len(ev) == 12 and {int(i) for i in (*val, *ev)} <= sentences
    held = {int(i) for i in (*val, *ev)}
    kept_spans = set().union(*(spans(texts[i]) for i in sentences - held))
    held_spans = set().union(*(spans(texts[i]) for i in held))
    leaks = [texts[i] for i in train if texts[i] in held_spans and texts[i] not in kept_spans]
    assert not leaks, f"training rows found only inside held-out sentences: {leaks[:5]}"
    # w{i} is unique to sentence i: no training row may carry a held-out sentence's marker
    markers = {texts[i].split()[-1] if texts[i].split()[-1].startswith("w") else "" for i in held} - {""}
    assert not {w for i in train for w in texts[i].split()} & markers
    assert dropped > 0 and len(train) + len(held) + dropped == len(texts), (len(train), len(held), dropped)


def test_load_data_sentence_holdout_on_a_phrase_file(tmp_path: Path) -> None:
    path = write_tsv(phrase_corpus(100), tmp_path / "phrases.tsv")
    cfg = DataConfig(train=path, holdout=Holdout.SENTENCES, max_train_samples=None, max_eval_samples=None)
    data = load_data(cfg)
    assert (len(data.validation), len(data.eval)) == (10, 10)
    train = set(data.train.texts)
    assert not train & set(data.eval.texts) and not train & set(data.validation.texts)
    assert any("whole sentences" in n for n in data.notes), data.notes
    again = load_data(cfg)
    assert again.eval.texts == data.eval.texts and again.train.texts == data.train.texts, "split is not seeded"


@pytest.mark.slow
def test_sst2_sentence_holdout_is_unseen_full_sentences(sst2_path: Path) -> None:
    cfg = load_config(REPO / "examples" / "sst2.toml", [f"data.train={sst2_path}"]).data
    data = load_data(cfg)
    assert (len(data.validation), len(data.eval)) == (689, 861), data.summary()
    train = set(data.train.texts)
    seen = [t for t in data.eval.texts if t in train]
    assert not seen, f"{len(seen)} eval sentences are also training rows, e.g. {seen[:2]}"
    mean_words = np.mean([len(t.split()) for t in data.eval.texts])
    assert mean_words > 15, f"eval rows average {mean_words:.1f} words: phrases, not full sentences"
