"""Teacher-labelled text augmentation for distillation (after TinyBERT, Jiao et al. 2020).

Each training text gets ``copies`` perturbed versions: words deleted, words replaced by words
drawn from the training corpus's unigram distribution, two words swapped, or a contiguous span
cropped out (like SST-2's own phrases). The perturbations can flip the sentiment; that is the
point: the teacher labels every augmented text (its soft logits, and its argmax as the hard
label), so the student learns to copy the teacher on text near the training distribution
rather than the training labels themselves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

OPS = ("delete", "replace", "swap", "crop")
WORD_P = 0.15
"""Per-word probability of deletion / replacement."""


def augment_texts(texts: Sequence[str], copies: int, seed: int) -> list[str]:
    """``copies`` perturbed versions of every text (seeded), without exact repeats of the input.

    Returns:
        The new texts only (the originals are not included), at most ``len(texts) * copies``.
    """
    if copies <= 0:
        return []
    rng = np.random.default_rng(seed)
    counts = Counter(w for t in texts for w in t.split())
    vocab = list(counts)
    probs = np.asarray([counts[w] for w in vocab], dtype=np.float64)
    probs /= probs.sum()
    existing = set(texts)
    out: list[str] = []
    for text in texts:
        words = text.split()
        for _ in range(copies):
            new = " ".join(_perturb(words, OPS[rng.integers(len(OPS))], rng, vocab, probs))
            if new and new not in existing:
                existing.add(new)
                out.append(new)
    return out


def _perturb(words: list[str], op: str, rng: np.random.Generator, vocab: list[str], probs: np.ndarray) -> list[str]:
    n = len(words)
    if n < 2:
        return [vocab[rng.choice(len(vocab), p=probs)]]
    if op == "delete":
        kept = [w for w in words if rng.random() >= WORD_P]
        return kept or [words[rng.integers(n)]]
    if op == "replace":
        hits = rng.random(n) < WORD_P
        if not hits.any():
            hits[rng.integers(n)] = True
        draws = rng.choice(len(vocab), size=int(hits.sum()), p=probs)
        it = iter(draws)
        return [vocab[next(it)] if h else w for w, h in zip(words, hits, strict=True)]
    if op == "swap":
        i, j = rng.choice(n, size=2, replace=False)
        out = list(words)
        out[i], out[j] = out[j], out[i]
        return out
    length = int(rng.integers(max(1, n // 2), n))  # crop: a span of at least half the words, never all
    start = int(rng.integers(0, n - length + 1))
    return words[start : start + length]
