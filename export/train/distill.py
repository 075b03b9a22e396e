"""Knowledge distillation: a smaller student initialised from teacher layers.

The student learns from the teacher's temperature-softened logits (KL divergence,
scaled by T²) mixed with the hard labels (cross-entropy), as in Hinton et al. 2015
and DistilBERT (Sanh et al. 2019), whose take-every-other-layer init we copy.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.architectures import model_input_names
from export.classifier import Classifier, load_pretrained, torch_logits
from export.config import DistillConfig, StudentKind
from export.data.dataset import Dataset, Split
from export.errors import ConfigError
from export.train.augment import augment_texts
from export.train.losses import DistillationModel
from export.train.prune import prune_ffn
from export.train.trainer import (
    TokenizedSplit,
    accuracy_metric,
    schedule_callbacks,
    train_and_save,
    training_arguments,
)

# ".layer.N." in a state-dict key: encoder layer N (bert, roberta, electra, mobilebert:
# encoder.layer.N; distilbert: transformer.layer.N). ALBERT's keys have no layer index.
log = logging.getLogger(__name__)

_LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")

IMPORTANCE_TEXTS = 512
"""Training texts FFN neuron importance is measured on (``distill.ffn_size``)."""

# BERT parameter name (inside one encoder layer) -> DistilBERT name.
_BERT_TO_DISTIL_LAYER = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def teacher_layers(n_teacher: int, num_layers: int | None, chosen: Sequence[int] | None = None) -> list[int]:
    """Which teacher layer initialises each student layer: ``chosen`` (``distill.teacher_layers``)
    when given, else every other one (``num_layers`` of them; None: half the depth, 0, 2, 4 of 6)."""
    if chosen:
        if max(chosen) >= n_teacher:
            raise ConfigError(
                f"distill.teacher_layers={list(chosen)} is invalid: the teacher has {n_teacher} layers; "
                f"allowed: distinct increasing indices in 0..{n_teacher - 1}"
            )
        return list(chosen)
    n = num_layers if num_layers is not None else max(1, n_teacher // 2)
    if not 1 <= n <= n_teacher:
        raise ConfigError(f"distill.num_layers={n} is invalid; allowed: 1..{n_teacher} (the teacher's depth)")
    return [i * n_teacher // n for i in range(n)]


def build_student(teacher: Any, kind: StudentKind, num_layers: int | None, layers: Sequence[int] | None = None) -> Any:
    """Creates the student model, its weights copied from the teacher's layers.

    ``SAME_ARCH``: the teacher's config with ``num_layers`` layers; student layer ``j`` is
    teacher layer ``teacher_layers(...)[j]`` (every ``encoder.layer.N`` / ``transformer.layer.N``
    module), everything else (embeddings, pooler, head) is copied as is. ALBERT shares one
    layer group across its depth, so its student runs the very same weights fewer times.
    ``DISTILBERT``: see :func:`_distilbert_from_bert`. ``layers`` (``distill.teacher_layers``)
    picks the teacher layers instead of every other one, and with it the depth.

    Raises:
        ConfigError: a DistilBERT student from a non-BERT teacher, a bad layer count, or a
            teacher layer the teacher does not have.
    """
    tcfg = teacher.config
    layers = teacher_layers(tcfg.num_hidden_layers, num_layers, layers)
    if kind is StudentKind.DISTILBERT:
        return _distilbert_from_bert(teacher, layers)
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415 - heavy: loaded when training, not on import

    scfg = copy.deepcopy(tcfg)
    scfg.num_hidden_layers = len(layers)
    student = AutoModelForSequenceClassification.from_config(scfg)
    tstate = teacher.state_dict()
    sstate = student.state_dict()
    for key in sstate:
        src = _LAYER_INDEX.sub(lambda m: f".layer.{layers[int(m.group(1))]}.", key, count=1)
        if src not in tstate:  # pragma: no cover - guards against an unforeseen state-dict layout
            raise ConfigError(f"cannot initialise {tcfg.model_type} student weight {key!r}: the teacher has no {src!r}")
        sstate[key] = tstate[src].clone()
    student.load_state_dict(sstate)
    return student


def _distilbert_from_bert(teacher: Any, layers: list[int]) -> Any:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification  # noqa: PLC0415 - heavy: loaded when training, not on import

    tcfg = teacher.config
    if tcfg.model_type != "bert":
        raise ConfigError(
            f"distill.student=distilbert needs a bert teacher, got {tcfg.model_type!r}; use distill.student=same-arch"
        )
    scfg = DistilBertConfig(
        vocab_size=tcfg.vocab_size,
        max_position_embeddings=tcfg.max_position_embeddings,
        dim=tcfg.hidden_size,
        n_layers=len(layers),
        n_heads=tcfg.num_attention_heads,
        hidden_dim=tcfg.intermediate_size,
        activation=tcfg.hidden_act,
        dropout=tcfg.hidden_dropout_prob,
        attention_dropout=tcfg.attention_probs_dropout_prob,
        pad_token_id=tcfg.pad_token_id,
        num_labels=tcfg.num_labels,
        id2label=dict(tcfg.id2label),
        label2id=dict(tcfg.label2id),
    )
    student = DistilBertForSequenceClassification(scfg)
    t = teacher.state_dict()
    s: dict[str, torch.Tensor] = {}
    s["distilbert.embeddings.word_embeddings.weight"] = t["bert.embeddings.word_embeddings.weight"]
    # DistilBERT has no segment embeddings; single-text inputs are all segment 0, so
    # folding that row into the position table keeps the embedding output identical.
    s["distilbert.embeddings.position_embeddings.weight"] = (
        t["bert.embeddings.position_embeddings.weight"] + t["bert.embeddings.token_type_embeddings.weight"][0]
    )
    for p in ("weight", "bias"):
        s[f"distilbert.embeddings.LayerNorm.{p}"] = t[f"bert.embeddings.LayerNorm.{p}"]
        for j, i in enumerate(layers):
            for bert_name, distil_name in _BERT_TO_DISTIL_LAYER.items():
                s[f"distilbert.transformer.layer.{j}.{distil_name}.{p}"] = t[f"bert.encoder.layer.{i}.{bert_name}.{p}"]
        s[f"pre_classifier.{p}"] = t[f"bert.pooler.dense.{p}"]
        s[f"classifier.{p}"] = t[f"classifier.{p}"]
    missing, unexpected = student.load_state_dict({k: v.clone() for k, v in s.items()}, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:  # pragma: no cover - guards the mapping against transformers renames
        raise ConfigError(f"BERT→DistilBERT weight mapping is incomplete: missing {missing}, unexpected {unexpected}")
    return student


def distill(
    teacher: Classifier,
    data: Dataset,
    cfg: DistillConfig,
    workdir: Path,
    *,
    max_length: int,
    seed: int,
    stop_at_epoch: float | None = None,
) -> Classifier:
    """Trains a student on the teacher's soft labels plus the hard labels, and optionally on its
    hidden states, attention maps and teacher-labelled augmented text (see :mod:`export.train.losses`).

    Args:
        teacher: The fine-tuned teacher.
        data: Train and validation splits (the best evaluation on validation is kept). An empty
            validation split: nothing is validated and the last step is kept (a refit).
        cfg: Student, losses, augmentation and Trainer settings.
        workdir: Checkpoints go to ``workdir/checkpoints/student``, the model to ``workdir/student``.
        max_length: Tokenizer truncation length.
        seed: Seed of data order, dropout and augmentation.
        stop_at_epoch: Stop once this many epochs are done, on the schedule of ``cfg.epochs``
            (a refit replays the selection run up to the check validation chose).

    Returns:
        The distilled student.

    Raises:
        ConfigError: a student that cannot be built from this teacher, or transfer losses with a
            student whose vocabulary differs from the teacher's.
    """
    from transformers import DataCollatorWithPadding, set_seed  # noqa: PLC0415 - heavy: loaded when training, not on import

    set_seed(seed)
    student, tok = _make_student(teacher, cfg)
    if cfg.ffn_size is not None:
        batches = _importance_batches(tok, model_input_names(student), data.train.texts, max_length, seed)
        student = prune_ffn(student, cfg.ffn_size, batches)
    online = cfg.hidden_weight > 0 or cfg.attention_weight > 0
    if online and tok.get_vocab() != teacher.tokenizer.get_vocab():
        raise ConfigError(
            f"distill.hidden_weight / attention_weight need a student with the teacher's vocabulary; "
            f"{cfg.student_model!r} tokenizes differently: set both to 0 (soft labels work across vocabularies)"
        )
    train, augmented_logits = _with_augmentation(teacher, data.train, cfg.augment, max_length, seed)
    evaluate = len(data.validation) > 0
    extra: dict[str, dict] = {"train": {}, "validation": {}}
    if not online and cfg.alpha > 0:  # the teacher's logits once, up front; with transfer it runs on every batch
        log.info("teacher logits for %d training and %d validation texts", len(data.train), len(data.validation))
        logits = torch_logits(teacher, data.train.texts, max_length, progress="teacher logits")
        # the augmented texts' logits were computed when the teacher labelled them
        extra["train"]["teacher_logits"] = np.concatenate([logits, augmented_logits])
        if evaluate:
            extra["validation"]["teacher_logits"] = torch_logits(teacher, data.validation.texts, max_length)
    names = model_input_names(student)
    eager = cfg.attention_weight > 0  # attention maps need the eager (non-SDPA) kernels
    previous = teacher.model.config._attn_implementation  # noqa: SLF001 - transformers has no public getter
    if eager:
        student.set_attn_implementation("eager")
        teacher.model.set_attn_implementation("eager")
    wrapped = DistillationModel(
        student,
        teacher.model,
        temperature=cfg.temperature,
        alpha=cfg.alpha,
        hidden_weight=cfg.hidden_weight,
        attention_weight=cfg.attention_weight,
    )
    args = training_arguments(
        cfg,
        workdir / "checkpoints" / "student",
        seed=seed,
        evaluate=evaluate,
        remove_unused_columns=False,
        label_names=["labels"],
    )
    from transformers import Trainer  # noqa: PLC0415 - heavy: loaded when training, not on import

    trainer = Trainer(
        model=wrapped,
        args=args,
        train_dataset=TokenizedSplit(train, tok, names, max_length, extra["train"]),
        eval_dataset=TokenizedSplit(data.validation, tok, names, max_length, extra["validation"]) if evaluate else None,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=accuracy_metric if evaluate else None,
        callbacks=schedule_callbacks(cfg, evaluate, stop_at_epoch),
    )
    try:
        return train_and_save(trainer, "student", tok, workdir, data.label_names, unwrap=lambda m: m.student)
    finally:
        if eager:
            teacher.model.set_attn_implementation(previous)
            student.set_attn_implementation(previous)


def _make_student(teacher: Classifier, cfg: DistillConfig) -> tuple[Any, Any]:
    if cfg.student_model is None:
        return build_student(teacher.model, cfg.student, cfg.num_layers, cfg.teacher_layers), teacher.tokenizer
    model, tok = load_pretrained(cfg.student_model, teacher.label_names)
    return model, tok


def _importance_batches(
    tok: Any, names: Sequence[str], texts: Sequence[str], max_length: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    """Up to :data:`IMPORTANCE_TEXTS` seeded training texts, tokenized in batches of 32 (inputs ``names``)."""
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(texts), size=min(IMPORTANCE_TEXTS, len(texts)), replace=False).tolist())
    chosen = [texts[i] for i in pick]
    batches = []
    for i in range(0, len(chosen), 32):
        enc = tok(chosen[i : i + 32], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        batches.append({n: enc[n] for n in names if n in enc})
    return batches


def _with_augmentation(
    teacher: Classifier, train: Split, copies: int, max_length: int, seed: int
) -> tuple[Split, np.ndarray]:
    """The training split plus ``copies`` perturbed versions of each text, labelled by the teacher,
    and the teacher's logits for the added texts (shape ``(0, classes)`` when none were added)."""
    texts = augment_texts(train.texts, copies, seed)
    if not texts:
        return train, np.zeros((0, len(teacher.label_names)), dtype=np.float32)
    log.info("augmentation: %d teacher-labelled texts added to %d training texts", len(texts), len(train))
    logits = torch_logits(teacher, texts, max_length, progress="teacher labels")
    labels = logits.argmax(-1).astype(train.labels.dtype)
    return Split(train.texts + tuple(texts), np.concatenate([train.labels, labels])), logits
