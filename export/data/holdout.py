"""Sentence-level held-out splits for phrase-level data (SST-2 and the like).

GLUE's SST-2 train file holds each review sentence *and* the parse-tree phrases cut from it.
A random row split puts a sentence in eval and half its phrases in training, which reads
several points too high. Here the held-out rows are whole sentences, and every training row
that only occurs inside a held-out sentence is dropped.

Texts are compared word by word after whitespace normalisation, so the containment test is a
set lookup of word spans (about 1.5 M spans and 2 s for SST-2's 67 k rows).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _key(text: str) -> str:
    return " ".join(text.split())


def _spans(key: str) -> Iterable[str]:
    words = key.split()
    for a in range(len(words)):
        for b in range(a + 1, len(words) + 1):
            yield " ".join(words[a:b])


def sentence_rows(texts: tuple[str, ...]) -> list[int]:
    """Indices of the rows that are not a word span of a longer (or an earlier identical) row."""
    keys = [_key(t) for t in texts]
    order = sorted(range(len(keys)), key=lambda i: (-len(keys[i].split()), i))
    seen: set[str] = set()
    sentences = []
    for i in order:
        if keys[i] in seen:
            continue
        sentences.append(i)
        seen.update(_spans(keys[i]))
    return sorted(sentences)


def carve_sentences(
    texts: tuple[str, ...], fractions: tuple[float, ...], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Splits row indices into training rows and held-out sentence sets.

    Args:
        texts: All rows.
        fractions: One fraction of the sentences per held-out set (e.g. validation, eval).
        rng: Seeded generator that picks the held-out sentences.

    Returns:
        ``(train, held, dropped)``: training row indices and one index array per fraction (each
        in seeded random order), and the indices of the rows dropped because they only occur
        inside a held-out sentence (a refit may train on them again: :func:`inside`).
    """
    sentences = np.asarray(sentence_rows(texts))
    order = rng.permutation(len(sentences))
    held: list[np.ndarray] = []
    start = 0
    for f in fractions:
        n = max(1, int(round(len(sentences) * f)))
        held.append(sentences[order[start : start + n]])
        start += n
    held_set = {int(i) for h in held for i in h}
    keys = [_key(t) for t in texts]
    held_spans: set[str] = set()
    kept_spans: set[str] = set()
    for i in sentences:
        (held_spans if int(i) in held_set else kept_spans).update(_spans(keys[i]))
    train, dropped = [], []
    for i, k in enumerate(keys):
        if i in held_set:
            continue
        if k in held_spans and k not in kept_spans:
            dropped.append(i)
            continue
        train.append(i)
    return rng.permutation(np.asarray(train, dtype=np.int64)), held, np.asarray(dropped, dtype=np.int64)


def inside(texts: tuple[str, ...], rows: np.ndarray, sentences: np.ndarray) -> np.ndarray:
    """A boolean mask over ``rows``: True where the row is a word span of one of ``sentences``
    (all indices into ``texts``), e.g. a phrase cut from an eval sentence."""
    spans: set[str] = set()
    for i in sentences:
        spans.update(_spans(_key(texts[int(i)])))
    return np.asarray([_key(texts[int(i)]) in spans for i in rows], dtype=bool)
