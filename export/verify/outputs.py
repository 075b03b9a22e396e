"""What a model or bundle said about labelled texts, and what that scores.

Columns are compared by label name, never by position, so a bundle whose manifest lists its
labels in another order than its source is compared column for column — and a label-order
mix-up shows up as collapsed accuracy and agreement instead of passing unnoticed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from export.errors import DataError


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with their label names, as read from a data file (``source`` names it in errors)."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Outputs:
    """What one model or bundle said about every text: logits and the label of each column."""

    labels: tuple[str, ...]
    logits: np.ndarray

    @classmethod
    def indexed(cls, logits: np.ndarray) -> Outputs:
        """Logits whose columns are label indices ``"0"``, ``"1"``, … (the pipeline's integer labels)."""
        return cls(tuple(str(i) for i in range(logits.shape[-1])), logits)

    def predicted(self) -> np.ndarray:
        """The predicted label of each text (canonical names, see :func:`canonical`)."""
        return np.asarray([canonical(x) for x in self.labels])[self.logits.argmax(-1)]


def canonical(label: str) -> str:
    """Label names compare as integers when they are integers ("01" is "1")."""
    text = label.strip()
    try:
        return str(int(text))
    except ValueError:
        return text


def accuracy(out: Outputs, data: LabelledTexts, who: str) -> float:
    """Fraction of ``data`` that ``out`` labels correctly.

    Raises:
        DataError: a label in the data is not one of ``who``'s labels.
    """
    truth = np.asarray([canonical(x) for x in data.labels])
    unknown = sorted(set(truth.tolist()) - {canonical(x) for x in out.labels})
    if unknown:
        raise DataError(
            f"{data.source}: label {unknown[0]!r} is not one of {who}'s labels {list(out.labels)}; "
            "pass data labelled like the model (or the right --label-column)"
        )
    return float((out.predicted() == truth).mean())


def agreement(out: Outputs, other: Outputs) -> float:
    """Fraction of texts that ``out`` and ``other`` give the same label."""
    return float((out.predicted() == other.predicted()).mean())


def max_abs_delta(out: Outputs, source: Outputs) -> float | None:
    """Max |logit Δ| against ``source``, columns matched by label name; None when the label sets differ."""
    if sorted(out.labels) != sorted(source.labels):
        return None
    columns = [out.labels.index(label) for label in source.labels]
    return float(np.max(np.abs(out.logits[:, columns] - source.logits)))


@dataclass(frozen=True)
class Confusion:
    """Counts of (true label, predicted label) for one artifact; rows are true labels."""

    artifact: str
    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


def confusion(artifact: str, out: Outputs, labels: Sequence[str]) -> Confusion:
    """The confusion matrix of ``out`` against the true ``labels`` (names), in the model's label order."""
    names = [canonical(x) for x in out.labels]
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    for t, p in zip(labels, out.predicted(), strict=True):
        counts[index[canonical(t)], index[p]] += 1
    return Confusion(artifact, out.labels, tuple(tuple(int(x) for x in row) for row in counts))
