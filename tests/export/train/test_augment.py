"""Text augmentation for distillation: seeded, new text."""

from __future__ import annotations

from export.train.augment import augment_texts
from tests.builders import phrase_corpus


def test_augmentation_is_seeded_new_text() -> None:
    texts = [t for t, _ in phrase_corpus(50)][::5]  # the sentences: too short a phrase has few variants
    a, b = augment_texts(texts, 2, seed=3), augment_texts(texts, 2, seed=3)
    assert a == b, "augmentation is not reproducible for a seed"
    assert a != augment_texts(texts, 2, seed=4)
    assert 0.8 * 2 * len(texts) <= len(a) <= 2 * len(texts), len(a)
    assert not set(a) & set(texts) and len(set(a)) == len(a), "augmented texts repeat inputs or each other"
    assert augment_texts(texts, 0, seed=3) == []
