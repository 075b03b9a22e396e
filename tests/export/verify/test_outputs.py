"""Outputs are compared by label name: columns in another order still line up, a label the model
does not know is a data error, and integer-like names compare as integers."""

from __future__ import annotations

import numpy as np
import pytest

from export.errors import DataError
from export.verify.outputs import LabelledTexts, Outputs, accuracy, agreement, confusion, max_abs_delta

LOGITS = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 1.0, 4.0], [5.0, 0.0, 1.0]], dtype=np.float32)
NAMES = ("neg", "neu", "pos")


def test_columns_are_matched_by_label_name() -> None:
    mine = Outputs(NAMES, LOGITS)
    reordered = Outputs(("pos", "neg", "neu"), LOGITS[:, [2, 0, 1]])
    assert max_abs_delta(reordered, mine) == 0.0
    assert agreement(reordered, mine) == 1.0
    nudged = Outputs(NAMES, LOGITS + np.array([0.0, 0.25, 0.0], dtype=np.float32))
    assert max_abs_delta(nudged, mine) == 0.25
    assert max_abs_delta(Outputs(("a", "b", "c"), LOGITS), mine) is None  # other labels: no column matches


def test_accuracy_names_a_label_the_model_does_not_know() -> None:
    out = Outputs(NAMES, LOGITS)
    data = LabelledTexts(("a", "b", "c", "d"), ("neg", "neu", "pos", "pos"), "test.tsv")
    assert accuracy(out, data, "m") == 0.75
    with pytest.raises(DataError, match=r"test.tsv: label 'great' is not one of m's labels"):
        accuracy(out, LabelledTexts(("a",) * 4, ("neg", "neu", "great", "pos"), "test.tsv"), "m")


def test_integer_labels_compare_as_integers_and_indexed_outputs_use_indices() -> None:
    out = Outputs.indexed(LOGITS)
    assert out.labels == ("0", "1", "2")
    assert accuracy(out, LabelledTexts(("a",) * 4, ("00", "1", " 2", "0"), "test.tsv"), "m") == 1.0


def test_confusion_counts_true_against_predicted() -> None:
    c = confusion("m", Outputs(NAMES, LOGITS), ["neg", "neu", "neu", "neg"])
    assert c.labels == NAMES and c.matrix == ((2, 0, 0), (0, 1, 1), (0, 0, 0)), c
