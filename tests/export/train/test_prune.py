"""FFN pruning (``distill.ffn_size``): which neurons are kept, that their weights move intact,
and that importance ranks neurons by what they contribute — on tiny random models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from export.errors import ConfigError
from export.train.prune import ffn_width, neuron_importance, prune_ffn
from tests.builders import LABELS, TEXTS, tiny_model, tokenized_classifier

WIDTH = 37  # tests/builders BERT_LIKE intermediate_size


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory: pytest.TempPathFactory):
    clf = tokenized_classifier("bert", tmp_path_factory.mktemp("prune"), LABELS)
    batches = [
        dict(clf.tokenizer(TEXTS[i : i + 8], padding=True, truncation=True, max_length=32, return_tensors="pt"))
        for i in range(0, 32, 8)
    ]
    return clf.model, batches


def _logits(model, batches) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(**b).logits.numpy() for b in batches])


def test_full_width_is_an_unchanged_copy(tokenized) -> None:
    model, batches = tokenized
    same = prune_ffn(model, WIDTH, batches)
    delta = float(np.abs(_logits(same, batches) - _logits(model, batches)).max())
    assert delta < 1e-5, f"pruning to the full width moved logits by {delta:.3g}"
    assert same is not model


def test_a_silent_neuron_goes_first_and_kept_weights_move_intact(tokenized) -> None:
    """Neuron 5 of layer 0 writes nothing (its outgoing column is zeroed): pruning one neuron
    drops exactly it, the logits do not move, and every other neuron's weights are carried over."""
    model, batches = tokenized
    layer = model.bert.encoder.layer[0]
    with torch.no_grad():
        saved = layer.output.dense.weight[:, 5].clone()
        layer.output.dense.weight[:, 5] = 0
    try:
        narrow = prune_ffn(model, WIDTH - 1, batches)
        assert narrow.config.intermediate_size == WIDTH - 1 and ffn_width(narrow) == WIDTH - 1
        keep = [i for i in range(WIDTH) if i != 5]
        got = narrow.bert.encoder.layer[0]
        assert torch.equal(got.intermediate.dense.weight, layer.intermediate.dense.weight[keep])
        assert torch.equal(got.output.dense.weight, layer.output.dense.weight[:, keep])
        delta = float(np.abs(_logits(narrow, batches) - _logits(model, batches)[:, :]).max())
        # layer 1 loses its least important neuron too, so a little movement is allowed there
        importance = neuron_importance(model, batches)
        assert float(importance[0][5]) == 0.0, importance[0][5]
        assert delta < 0.5, f"dropping a silent neuron (and layer 1's weakest) moved logits by {delta:.3g}"
    finally:
        with torch.no_grad():
            layer.output.dense.weight[:, 5] = saved


def test_importance_keeps_what_matters(tokenized) -> None:
    """Keeping the most important half moves the logits less than keeping the least important
    half: importance ranks neurons by their contribution, not at random or inverted."""
    model, batches = tokenized
    reference = _logits(model, batches)
    top = float(np.abs(_logits(prune_ffn(model, WIDTH // 2, batches), batches) - reference).mean())
    importance = neuron_importance(model, batches)
    inverted = [[-s for s in score] for score in importance]
    import export.train.prune as prune

    original = prune.neuron_importance
    prune.neuron_importance = lambda m, b: [torch.tensor(s) for s in inverted]
    try:
        bottom = float(np.abs(_logits(prune_ffn(model, WIDTH // 2, batches), batches) - reference).mean())
    finally:
        prune.neuron_importance = original
    assert top < 0.5 * bottom, f"mean |Δ logits| keeping the top half {top:.3g}, the bottom half {bottom:.3g}"


@pytest.mark.parametrize("arch", ["distilbert", "roberta", "electra"])
def test_other_architectures_prune(arch: str) -> None:
    model = tiny_model(arch)
    ids = torch.randint(5, 100, (2, 9))
    batches = [{"input_ids": ids, "attention_mask": torch.ones_like(ids)}]
    narrow = prune_ffn(model, 16, batches)
    assert ffn_width(narrow) == 16
    assert _logits(narrow, batches).shape == (2, len(LABELS))


def test_refusals(tokenized) -> None:
    model, batches = tokenized
    with pytest.raises(ConfigError, match=r"distill.ffn_size=38 is invalid; allowed: 1..37"):
        prune_ffn(model, 38, batches)
    with pytest.raises(ConfigError, match="cannot narrow a mobilebert student; supported: bert, distilbert"):
        prune_ffn(tiny_model("mobilebert"), 8, batches)


@pytest.mark.slow
def test_distill_builds_the_narrow_student(tmp_path: Path) -> None:
    """``distill.ffn_size`` through ``distill``: the saved student has the narrower FFN."""
    from export.config import DistillConfig
    from export.data.dataset import EMPTY, Dataset, Split
    from export.train.distill import distill

    teacher = tokenized_classifier("bert", tmp_path / "teacher", LABELS, name="teacher")
    texts = tuple(TEXTS[:24])
    split = Split(texts, np.arange(len(texts)) % len(LABELS))
    data = Dataset(split, EMPTY, split, LABELS, "test")
    cfg = DistillConfig(epochs=1, batch_size=8, ffn_size=20)
    student = distill(teacher, data, cfg, tmp_path / "work", max_length=32, seed=0)
    assert student.model.config.hidden_dim == 20, student.model.config
