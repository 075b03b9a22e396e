"""Fine-tuning the teacher with the Hugging Face Trainer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.config import FinetuneConfig, ModelConfig
from export.data import Dataset, Split
from export.models import Classifier, load_pretrained, save_classifier

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
    out: Path, *, epochs: float, batch_size: int, learning_rate: float, max_steps: int, seed: int, **extra: Any
) -> Any:
    """TrainingArguments shared by fine-tuning and distillation (GPU when present)."""
    from transformers import TrainingArguments  # noqa: PLC0415

    per_epoch = max_steps <= 0
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 64),
        learning_rate=learning_rate,
        eval_strategy="epoch" if per_epoch else "no",
        save_strategy="epoch" if per_epoch else "no",
        save_total_limit=1,
        load_best_model_at_end=per_epoch,
        metric_for_best_model="accuracy",
        logging_steps=25,
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        **extra,
    )


def finetune(
    model_cfg: ModelConfig, data: Dataset, cfg: FinetuneConfig, workdir: Path, *, max_length: int, seed: int
) -> Classifier:
    """Fine-tunes a pretrained encoder with a fresh classification head.

    Args:
        model_cfg: Which pretrained model to start from.
        data: Train and validation splits (the best epoch on validation is kept).
        cfg: Trainer hyper-parameters.
        workdir: Checkpoints go to ``workdir/checkpoints/teacher``, the model to ``workdir/teacher``.
        max_length: Tokenizer truncation length.
        seed: Seed of the head's init, dropout and data order.

    Returns:
        The fine-tuned teacher.
    """
    from transformers import DataCollatorWithPadding, Trainer, set_seed  # noqa: PLC0415

    set_seed(seed)
    model, tokenizer = load_pretrained(model_cfg.name_or_path, data.label_names)
    from export.architectures import model_input_names  # noqa: PLC0415

    names = model_input_names(model)
    args = training_arguments(
        workdir / "checkpoints" / "teacher",
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        max_steps=cfg.max_steps,
        seed=seed,
        weight_decay=cfg.weight_decay,
        warmup_ratio=cfg.warmup_ratio,
        group_by_length=cfg.group_by_length,
        lr_scheduler_type="linear",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=TokenizedSplit(data.train, tokenizer, names, max_length),
        eval_dataset=TokenizedSplit(data.validation, tokenizer, names, max_length),
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy_metric,
    )
    trainer.train()
    return save_classifier("teacher", trainer.model, tokenizer, workdir / "teacher", data.label_names)
