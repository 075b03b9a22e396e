"""Fine-tuning the teacher with the Hugging Face Trainer."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.architectures import arch_for
from export.classifier import Classifier, load_pretrained, save_classifier
from export.config import FinetuneConfig, ModelConfig
from export.data.dataset import Dataset, Split

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
    out: Path,
    *,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    max_steps: int,
    seed: int,
    evals_per_epoch: int = 1,
    evaluate: bool = True,
    **extra: Any,
) -> Any:
    """TrainingArguments shared by fine-tuning and distillation.

    Runs on the GPU when there is one and under ``accelerate launch`` / ``torchrun`` on several
    (the Trainer reads the launcher's environment). Validation accuracy is measured and a
    checkpoint saved ``evals_per_epoch`` times per epoch; the best checkpoint is loaded at the end.
    With ``max_steps`` (smoke tests) nothing is evaluated or saved. ``evaluate=False``: no
    validation, a checkpoint per epoch.
    """
    import torch  # noqa: PLC0415
    from transformers import TrainingArguments  # noqa: PLC0415

    # With no accelerator, say so: that is what makes a multi-process launch use gloo DDP on CPU.
    no_accelerator = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    per_epoch = max_steps <= 0 and evaluate
    if not evaluate:  # nothing to validate on (domain adaptation): a checkpoint per epoch to resume from
        schedule: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "epoch" if max_steps <= 0 else "no"}
    elif not per_epoch:
        schedule = {"eval_strategy": "no", "save_strategy": "no"}
    elif evals_per_epoch == 1:
        schedule = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    else:  # a ratio of the total steps: right under any number of processes
        ratio = 1.0 / (epochs * evals_per_epoch)
        schedule = {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": ratio, "save_steps": ratio}
    return TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 64),
        learning_rate=learning_rate,
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


def finetune(
    model_cfg: ModelConfig,
    data: Dataset,
    cfg: FinetuneConfig,
    workdir: Path,
    *,
    max_length: int,
    seed: int,
    stop_at_epoch: float | None = None,
) -> Classifier:
    """Fine-tunes a pretrained encoder with a fresh classification head.

    Args:
        model_cfg: Which pretrained model to start from.
        data: Train and validation splits (the best check on validation is kept). An empty
            validation split: nothing is validated and the last step is kept (a refit, or the plain
            baseline recipe).
        cfg: Trainer hyper-parameters.
        workdir: Checkpoints go to ``workdir/checkpoints/teacher``, the model to ``workdir/teacher``.
        max_length: Tokenizer truncation length.
        seed: Seed of the head's init, dropout and data order.
        stop_at_epoch: Stop once this many epochs are done, on the schedule (warm-up, decay) of
            ``cfg.epochs``: a refit replays the selection run up to the check validation chose.

    Returns:
        The fine-tuned teacher.
    """
    from transformers import DataCollatorWithPadding, Trainer, set_seed  # noqa: PLC0415

    set_seed(seed)
    model, tokenizer = load_pretrained(model_cfg.name_or_path, data.label_names)
    from export.architectures import model_input_names  # noqa: PLC0415

    names = model_input_names(model)
    evaluate = len(data.validation) > 0
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
        evals_per_epoch=cfg.evals_per_epoch,
        evaluate=evaluate,
    )
    trainer_cls = Trainer if cfg.layer_lr_decay == 1.0 else layerwise_lr_trainer(cfg.layer_lr_decay)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=TokenizedSplit(data.train, tokenizer, names, max_length),
        eval_dataset=TokenizedSplit(data.validation, tokenizer, names, max_length) if evaluate else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy_metric if evaluate else None,
        callbacks=schedule_callbacks(cfg.early_stopping_patience if evaluate else 0, cfg.max_steps, stop_at_epoch),
    )
    return train_and_save(trainer, "teacher", tokenizer, workdir, data.label_names)


_LAYER = re.compile(r"\.layer\.(\d+)\.")


def parameter_depth(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise learning rates: 0 the embeddings, ``i + 1`` encoder
    layer ``i``, ``num_layers + 1`` the rest (pooler, classification head).

    Encoder layers are found by name (``encoder.layer.N.`` in BERT, RoBERTa, ELECTRA, MobileBERT;
    ``transformer.layer.N.`` in DistilBERT). ALBERT runs one shared layer at every depth: it gets
    the top layer's depth.
    """
    if m := _LAYER.search(name):
        return int(m.group(1)) + 1
    if "albert_layer_groups" in name:
        return num_layers
    if "embedding" in name:  # embeddings.*, ELECTRA's embeddings_project, ALBERT's embedding_hidden_mapping_in
        return 0
    return num_layers + 1


def layerwise_param_groups(
    model: Any, learning_rate: float, decay: float, weight_decay: float, decay_names: set[str]
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with learning rate ``learning_rate * decay ** (L + 1 - depth)``
    (see :func:`parameter_depth`); weight decay only on ``decay_names`` (not biases, LayerNorm)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    layers = [int(m.group(1)) for n, _ in named if (m := _LAYER.search(n))]
    num_layers = max(layers) + 1 if layers else int(getattr(model.config, "num_hidden_layers", 0))
    groups: dict[tuple[int, bool], list[Any]] = {}
    for n, p in named:
        groups.setdefault((parameter_depth(n, num_layers), n in decay_names), []).append(p)
    return [
        {
            "params": params,
            "lr": learning_rate * decay ** (num_layers + 1 - depth),
            "weight_decay": weight_decay if decayed else 0.0,
        }
        for (depth, decayed), params in sorted(groups.items())
    ]


def layerwise_lr_trainer(decay: float) -> type:
    """A Trainer class whose optimizer (the one its arguments name, AdamW by default) gives each
    layer its own learning rate (:func:`layerwise_param_groups`). The scheduler (warm-up, decay)
    scales every group alike, and checkpoints resume as usual."""
    from transformers import Trainer  # noqa: PLC0415

    class LayerwiseLrTrainer(Trainer):
        def create_optimizer(self) -> Any:
            if self.optimizer is None:
                groups = layerwise_param_groups(
                    self.model,
                    self.args.learning_rate,
                    decay,
                    self.args.weight_decay,
                    set(self.get_decay_parameter_names(self.model)),
                )
                optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, self.model)
                self.optimizer = optimizer_cls(groups, **kwargs)
            return self.optimizer

    return LayerwiseLrTrainer


def schedule_callbacks(patience: int, max_steps: int, stop_at_epoch: float | None) -> list[Any]:
    """Trainer callbacks: early stopping after ``patience`` evaluations without improvement (none
    for 0), and a stop once ``stop_at_epoch`` epochs are done (None: run the whole schedule)."""
    from transformers import EarlyStoppingCallback, TrainerCallback  # noqa: PLC0415

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
    from transformers.trainer_utils import get_last_checkpoint  # noqa: PLC0415

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
