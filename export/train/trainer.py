"""What every training stage (fine-tuning, distillation, domain adaptation) shares: the
tokenized dataset, the Trainer arguments built from :class:`~export.config.TrainerSettings`, the
schedule callbacks, resuming and saving."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.architectures import arch_for
from export.classifier import Classifier, save_classifier
from export.config import TrainerSettings
from export.data.dataset import Split

log = logging.getLogger(__name__)


class TokenizedSplit:
    """A torch-style dataset of tokenized examples, unpadded (the collator pads per batch)."""

    def __init__(
        self,
        split: Split,
        tokenizer: Any,
        input_names: Sequence[str],
        max_length: int,
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        enc = tokenizer(list(split.texts), truncation=True, max_length=max_length)
        self._rows = []
        for i in range(len(split)):
            row: dict[str, Any] = {k: enc[k][i] for k in input_names}
            row["labels"] = int(split.labels[i])
            for k, v in (extra or {}).items():
                row[k] = v[i].tolist()
            self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._rows[i]


def accuracy_metric(eval_pred: Any) -> dict[str, float]:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def training_arguments(
    settings: TrainerSettings,
    out: Path,
    *,
    seed: int,
    evaluate: bool = True,
    **extra: Any,
) -> Any:
    """The Hugging Face TrainingArguments of one training stage (fine-tuning, distillation,
    domain adaptation), from its :class:`~export.config.TrainerSettings`.

    Runs on the GPU when there is one and under ``accelerate launch`` / ``torchrun`` on several
    (the Trainer reads the launcher's environment). Validation accuracy is measured and a
    checkpoint saved ``evals_per_epoch`` times per epoch; the best checkpoint is loaded at the end.
    With ``max_steps`` (smoke tests) nothing is evaluated or saved. ``evaluate=False``: no
    validation, a checkpoint per epoch. ``extra``: arguments only one stage needs.
    """
    import torch  # noqa: PLC0415 - heavy: loaded when training, not on import
    from transformers import TrainingArguments  # noqa: PLC0415 - heavy: loaded when training, not on import

    # With no accelerator, say so: that is what makes a multi-process launch use gloo DDP on CPU.
    no_accelerator = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    s = settings
    per_epoch = s.max_steps <= 0 and evaluate
    if not evaluate:  # nothing to validate on (domain adaptation, a refit): a checkpoint per epoch to resume from
        schedule: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "epoch" if s.max_steps <= 0 else "no"}
    elif not per_epoch:
        schedule = {"eval_strategy": "no", "save_strategy": "no"}
    elif s.evals_per_epoch == 1:
        schedule = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    else:  # a ratio of the total steps: right under any number of processes
        ratio = 1.0 / (s.epochs * s.evals_per_epoch)
        schedule = {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": ratio, "save_steps": ratio}
    # transformers 5 took warmup_ratio and group_by_length out: warmup_steps below 1 is the ratio
    # there, and length grouping is a train_sampling_strategy.
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    compat: dict[str, Any] = {}
    if "warmup_ratio" in fields:
        compat["warmup_ratio"] = s.warmup_ratio
    else:
        compat["warmup_steps"] = s.warmup_ratio
    if "group_by_length" in fields:
        compat["group_by_length"] = s.group_by_length  # batches of similar length: little padding
    else:
        compat["train_sampling_strategy"] = "group_by_length" if s.group_by_length else "random"
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=s.epochs,
        max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=max(s.batch_size, 64),
        learning_rate=s.learning_rate,
        weight_decay=s.weight_decay,
        **compat,
        lr_scheduler_type="linear",
        **schedule,
        save_total_limit=1,
        load_best_model_at_end=per_epoch,
        metric_for_best_model="accuracy" if evaluate else None,
        logging_steps=25,
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        use_cpu=no_accelerator,
        **extra,
    )


def schedule_callbacks(settings: TrainerSettings, evaluate: bool, stop_at_epoch: float | None) -> list[Any]:
    """Trainer callbacks: early stopping after ``settings.early_stopping_patience`` evaluations
    without improvement (none for 0 or without validation), and a stop once ``stop_at_epoch``
    epochs are done (None: run the whole schedule)."""
    from transformers import EarlyStoppingCallback, TrainerCallback  # noqa: PLC0415 - heavy: loaded when training, not on import

    patience = settings.early_stopping_patience if evaluate else 0
    max_steps = settings.max_steps
    callbacks: list[Any] = []
    if patience > 0 and max_steps <= 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    if stop_at_epoch is not None and max_steps <= 0:

        class StopAtEpoch(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                # state.epoch is fractional (steps done / steps per epoch); the small slack absorbs
                # its rounding so that "2.5 epochs" stops on the step that completes them
                if state.epoch is not None and state.epoch >= stop_at_epoch - 1e-6:
                    control.should_training_stop = True
                return control

        callbacks.append(StopAtEpoch())
    return callbacks


def last_checkpoint(trainer: Any) -> str | None:
    """The newest checkpoint in the Trainer's output dir, to resume from (None: start fresh)."""
    from transformers.trainer_utils import get_last_checkpoint  # noqa: PLC0415 - heavy: loaded when training, not on import

    out = Path(trainer.args.output_dir)
    return get_last_checkpoint(str(out)) if out.is_dir() else None


def train_and_save(
    trainer: Any,
    name: str,
    tokenizer: Any,
    workdir: Path,
    label_names: tuple[str, ...],
    unwrap: Callable[[Any], Any] = lambda m: m,
) -> Classifier:
    """Trains (resuming from the newest checkpoint in the Trainer's output dir, if any), saves
    ``unwrap(trainer.model)`` to ``workdir/name`` with ``training.json`` (validation accuracy at
    each evaluation)."""
    last = last_checkpoint(trainer)
    if last is not None:
        log.info("%s: resuming from %s", name, last)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    if not trainer.is_world_process_zero():  # other processes of a multi-process launch: nothing to save
        model = unwrap(trainer.model).eval()
        return Classifier(name, model, tokenizer, workdir / name, arch_for(model.config.model_type), label_names)
    clf = save_classifier(name, unwrap(trainer.model), tokenizer, workdir / name, label_names)
    history = [
        {"step": h["step"], "epoch": round(h["epoch"], 3), "accuracy": h["eval_accuracy"]}
        for h in trainer.state.log_history
        if "eval_accuracy" in h
    ]
    summary = {
        "resumed_from": Path(last).name if last else None,
        "train_seconds": round(time.perf_counter() - started, 1),
        "steps": trainer.state.global_step,
        "best_validation_accuracy": trainer.state.best_metric,
        "evaluations": history,
    }
    (workdir / name / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return clf
