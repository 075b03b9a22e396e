"""The textbook baseline every SST-2 recipe claim is measured against, and the nested refit
measurement (issue 18), as cached training stages.

The plain recipe is what most fine-tuning tutorials run: the Hugging Face Trainer, lr 5e-5,
batch 32, 2 epochs, 6 % linear warm-up then linear decay, weight decay 0.01, randomly ordered
batches, no validation, the last step kept. It trains on the very rows the compared recipe's
shipped model trains on and is scored on the same held-out sentences.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from export.classifier import correct_predictions
from export.config import FinetuneConfig, PipelineConfig, Refit
from export.data.dataset import Dataset
from export.train.cache import (
    StageResult,
    cached_stage,
    data_fingerprint,
    fingerprint,
    refit_student_stage,
    refit_teacher_stage,
    student_stage,
    teacher_stage,
)
from export.train.finetune import finetune

PLAIN = FinetuneConfig(
    epochs=2.0,
    batch_size=32,
    learning_rate=5e-5,
    weight_decay=0.01,
    warmup_ratio=0.06,
    group_by_length=False,
    evals_per_epoch=1,
    early_stopping_patience=0,
    refit=Refit.OFF,
)


def plain_stage(cfg: PipelineConfig, data: Dataset) -> StageResult:
    """The plain recipe on the rows a refit with eval kept unseen trains on (train + validation +
    the validation sentences' phrases), the model ``cfg.model``, seed ``cfg.seed``."""
    n = cfg.data.max_length
    rows = data.for_refit(include_eval=False)
    key = fingerprint("plain", cfg.model, PLAIN, cfg.seed, data_fingerprint(rows, n))
    return cached_stage(
        cfg,
        "teacher",
        key,
        lambda d: finetune(cfg.model, rows, PLAIN, d, max_length=n, seed=cfg.seed),
        data.label_names,
        folder="plain",
    )


def nested_stages(cfg: PipelineConfig, data: Dataset, student_seed: int | None = None) -> dict[str, StageResult]:
    """Every model of the nested measurement, trained or reused: eval (A) is never trained on;
    validation (B) chooses the schedule; the refit trains on train + B.

    ``student_seed``: only the two students, trained with this seed from the teachers of
    ``cfg.seed`` (a second student seed costs two student trainings, not four trainings)."""
    cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, refit=Refit.EXCEPT_EVAL))
    teacher = teacher_stage(cfg, data)
    refit_teacher = refit_teacher_stage(cfg, data, teacher)
    if student_seed is None:  # the teachers and the plain recipe, then the students of the same seed
        out = {"teacher (selection)": teacher, "teacher (refit)": refit_teacher, "plain": plain_stage(cfg, data)}
        scfg = cfg
    else:  # only the students, of another seed, distilled from this seed's teachers
        out, scfg = {}, dataclasses.replace(cfg, seed=student_seed)
    student = student_stage(scfg, data, teacher)
    out["student (selection)"] = student
    out["student (refit)"] = refit_student_stage(scfg, data, refit_teacher, student)
    return out


def eval_accuracy(stage: StageResult, data: Dataset, max_length: int) -> dict[str, Any]:
    """Accuracy on the eval split and the per-text correctness (for paired comparisons)."""
    correct = correct_predictions(stage.model, data.eval.texts, data.eval.labels, max_length)
    return {"accuracy": float(correct.mean()), "correct": correct.astype(np.int8).tolist()}
