"""Distillation: every addition (hidden states, attention, augmentation, max_steps) trains a
student; with augmentation the teacher scores each text once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export.classifier import load_pretrained
from export.config import DataConfig, DistillConfig, Holdout
from export.data.dataset import load_data
from export.errors import ConfigError
from export.train.augment import augment_texts
from export.train.cache import teacher_stage
from export.train.distill import distill
from tests.builders import phrase_corpus, tiny_cfg, write_tsv


def phrase_data_and_teacher(tiny_bert_dir: Path, tmp_path: Path) -> tuple[Any, Any]:
    """Sentence-held-out phrase data and a tiny teacher fine-tuned on it."""
    data = load_data(
        DataConfig(
            train=write_tsv(phrase_corpus(40), tmp_path / "d.tsv"),
            holdout=Holdout.SENTENCES,
            max_train_samples=None,
            max_eval_samples=None,
        )
    )
    teacher = teacher_stage(tiny_cfg(tiny_bert_dir, tmp_path, data_file=tmp_path / "d.tsv"), data).model
    return data, teacher


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_distill_with_every_addition_trains_a_student(tiny_bert_dir: Path, tmp_path: Path) -> None:
    data, teacher = phrase_data_and_teacher(tiny_bert_dir, tmp_path)
    cfg = DistillConfig(
        num_layers=1, hidden_weight=1.0, attention_weight=1.0, augment=1, max_steps=3, batch_size=8, learning_rate=1e-3
    )
    before = teacher.model.config._attn_implementation  # noqa: SLF001 - transformers has no public getter
    student = distill(teacher, data, cfg, tmp_path / "s", max_length=16, seed=0)
    assert student.model_type == "distilbert" and student.model.config.num_hidden_layers == 1
    assert teacher.model.config._attn_implementation == before, "teacher's attention kernels not restored"  # noqa: SLF001
    info = json.loads((student.path / "training.json").read_text())
    assert info["steps"] == 3, info
    with pytest.raises(ConfigError, match="vocabulary"):
        other = tmp_path / "other-vocab"
        model, tok = load_pretrained(str(tiny_bert_dir), ("0", "1"))
        tok.add_tokens(["zzzunseen"])
        model.save_pretrained(other)
        tok.save_pretrained(other)
        distill(
            teacher,
            data,
            DistillConfig(student_model=str(other), hidden_weight=1.0, max_steps=1),
            tmp_path / "x",
            max_length=16,
            seed=0,
        )


@pytest.mark.slow
def test_augmented_soft_labels_score_each_text_once(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Soft-label KD with augmentation: the teacher scores every text once (the augmented texts'
    logits are those it labelled them with) and each row keeps its own text's logits."""
    import export.train.distill as distill_module

    data, teacher = phrase_data_and_teacher(tiny_bert_dir, tmp_path)
    scored: list[str] = []
    seen: dict[str, np.ndarray] = {}
    real = distill_module.torch_logits

    def counting(clf, texts, max_length, **kw):
        out = real(clf, texts, max_length, **kw)
        scored.extend(texts)
        seen.update(zip(texts, out, strict=True))
        return out

    captured = {}
    real_split = distill_module.TokenizedSplit

    def capturing(split, tok, names, max_length, extra=None):
        if extra and len(split) > len(data.validation):
            captured["texts"], captured["logits"] = split.texts, extra["teacher_logits"]
        return real_split(split, tok, names, max_length, extra)

    monkeypatch.setattr(distill_module, "torch_logits", counting)
    monkeypatch.setattr(distill_module, "TokenizedSplit", capturing)
    cfg = DistillConfig(num_layers=1, alpha=0.5, augment=1, max_steps=1, batch_size=8)
    distill(teacher, data, cfg, tmp_path / "s", max_length=16, seed=0)
    n_aug = len(augment_texts(data.train.texts, 1, 0))
    expected = len(data.train) + n_aug + len(data.validation)
    assert len(scored) == expected, f"teacher scored {len(scored)} texts, expected {expected} (each once)"
    texts, logits = captured["texts"], captured["logits"]
    assert len(texts) == len(logits) == len(data.train) + n_aug
    worst = max(float(np.abs(logits[i] - seen[t]).max()) for i, t in enumerate(texts))
    assert worst == 0.0, f"a row carries another text's teacher logits: max |Δ| {worst}"


def test_a_distilbert_student_starts_from_the_teacher_layers_it_is_given(tiny_bert_dir: Path) -> None:
    import torch

    from export.config import StudentKind
    from export.train.distill import build_student

    teacher = load_pretrained(str(tiny_bert_dir), ("negative", "positive"))[0]
    depth = teacher.config.num_hidden_layers
    chosen = (depth - 1,)
    student = build_student(teacher, StudentKind.DISTILBERT, None, chosen)
    assert student.config.n_layers == 1
    got = student.distilbert.transformer.layer[0].attention.q_lin.weight
    want = teacher.bert.encoder.layer[depth - 1].attention.self.query.weight
    assert torch.equal(got, want), f"student layer 0 is not teacher layer {depth - 1} (teacher_layers={chosen})"
    other = teacher.bert.encoder.layer[0].attention.self.query.weight
    assert depth == 1 or not torch.equal(got, other), "student layer 0 holds teacher layer 0"
    with pytest.raises(ConfigError, match=rf"the teacher has {depth} layers"):
        build_student(teacher, StudentKind.DISTILBERT, None, (depth,))
