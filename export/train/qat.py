"""Quantization-aware training of the student for the integer-only TFLite export (``int8-qat``).

The shipped student is fine-tuned briefly with its forward pass run as its integer-only graph
will run it (:mod:`quantize.qat`: every activation, weight and embedding table rounded to int8,
straight-through gradients), inside :func:`export.convert.integer_graph.integer_graph` (the
embedding lookups and attention mask the converter will see). The loss is the distillation
loss against the teacher's soft labels plus the hard labels, as in the distill stage.

Activation ranges are not learned: they are the min / max over the calibration texts, one text
per call, padded to its length bucket — what the TFLite calibrator will measure on the trained
model — taken before training and again every ``qat.recalibrate_every`` steps, so the model
trains on the grids its int8 graph gets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from export.architectures import model_input_names
from export.classifier import Classifier, torch_logits
from export.config import QatConfig
from export.convert.integer_graph import integer_graph
from export.data.dataset import Split
from export.train.losses import distillation_loss
from export.train.trainer import (
    TokenizedSplit,
    accuracy_metric,
    schedule_callbacks,
    train_and_save,
    training_arguments,
)
from quantize.calibration import encode
from quantize.qat import ActivationRanges, int8_simulation

log = logging.getLogger(__name__)


class SimulatedInt8(nn.Module):
    """The student under int8 simulation, returning the distillation loss (training) and logits.

    Args:
        student: The student, loaded with eager attention.
        ranges: The activation ranges (:meth:`calibrate` fills them).
        temperature / alpha: Of :func:`export.train.losses.distillation_loss`.
    """

    def __init__(self, student: nn.Module, ranges: ActivationRanges, temperature: float, alpha: float) -> None:
        super().__init__()
        self.student = student
        self.ranges = ranges
        self.temperature = temperature
        self.alpha = alpha

    def forward(
        self, labels: torch.Tensor | None = None, teacher_logits: torch.Tensor | None = None, **inputs: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        inputs.pop("num_items_in_batch", None)  # the Trainer passes it to forwards that take **kwargs
        with int8_simulation(self.student, self.ranges, observe=False):
            logits = self.student(**inputs).logits
        out = {"logits": logits}
        if labels is not None:
            hard = nn.functional.cross_entropy(logits, labels)
            out["loss"] = (
                distillation_loss(logits, teacher_logits, hard, self.temperature, self.alpha)
                if teacher_logits is not None and self.alpha > 0
                else hard
            )
        return out

    @torch.no_grad()
    def calibrate(self, feeds: Sequence[dict[str, torch.Tensor]]) -> None:
        """Sets every range to the min / max over ``feeds`` (one text each), model in eval mode."""
        training = self.student.training
        self.student.eval()
        self.ranges.restart()
        with int8_simulation(self.student, self.ranges, observe=True, quantize=False):
            for feed in feeds:
                self.student(**feed)
        self.student.train(training)


def _calibration_feeds(
    tokenizer: Any, texts: Sequence[str], names: Sequence[str], lengths: Sequence[int]
) -> list[dict[str, torch.Tensor]]:
    """Each text alone, padded to its length bucket: what the TFLite calibrator runs."""
    rows = encode(tokenizer, texts, names, lengths[-1], lengths)
    return [{k: torch.as_tensor(v, dtype=torch.long) for k, v in row.items()} for _, row in rows]


def _recalibration(model: SimulatedInt8, feeds: list[dict[str, torch.Tensor]], every: int) -> Any:
    from transformers import TrainerCallback  # noqa: PLC0415 - heavy: loaded when training, not on import

    class Recalibrate(TrainerCallback):  # type: ignore[misc]
        """Activation ranges before the first step, then every ``every`` steps."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            model.calibrate(feeds)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step and state.global_step % every == 0:
                model.calibrate(feeds)

    return Recalibrate()


def quantization_aware(
    student: Classifier,
    teacher: Classifier,
    train: Split,
    validation: Split,
    label_names: tuple[str, ...],
    calibration: Sequence[str],
    cfg: QatConfig,
    workdir: Path,
    *,
    lengths: Sequence[int],
    max_length: int,
    mask_fill: float,
    seed: int,
) -> Classifier:
    """Fine-tunes ``student`` under int8 simulation; saves it to ``workdir/student-qat``.

    Args:
        student: The shipped student (after vocabulary trimming, when configured).
        teacher: Its teacher (soft labels).
        train: The rows the student was trained on.
        validation: Validation rows (simulated-int8 accuracy chooses the check kept); empty: none,
            the last step is kept.
        label_names: The label names, in id order.
        calibration: The calibration texts the TFLite quantizer will use.
        cfg: The ``[qat]`` settings.
        workdir: The stage folder (checkpoints go to ``workdir/checkpoints/student-qat``).
        lengths: The TFLite length buckets (calibration texts are padded to them).
        max_length: Tokenizer truncation length.
        mask_fill: The bounded attention-mask fill of the export.
        seed: Data order and dropout.

    Returns:
        The fine-tuned student (fp32 weights; the TFLite export rounds them).
    """
    from transformers import (  # noqa: PLC0415 - heavy: loaded when training, not on import
        AutoModelForSequenceClassification,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(student.path, attn_implementation="eager")
    tok = student.tokenizer
    names = model_input_names(model)
    evaluate = len(validation) > 0
    extra: dict[str, dict] = {"train": {}, "validation": {}}
    if cfg.alpha > 0:
        log.info("qat: teacher logits for %d training texts", len(train))
        extra["train"]["teacher_logits"] = torch_logits(teacher, train.texts, max_length, progress="teacher logits")
    wrapped = SimulatedInt8(model, ActivationRanges(), cfg.temperature, cfg.alpha)
    feeds = _calibration_feeds(tok, calibration, names, lengths)
    args = training_arguments(
        cfg,
        workdir / "checkpoints" / "student-qat",
        seed=seed,
        evaluate=evaluate,
        remove_unused_columns=False,
        label_names=["labels"],
    )
    trainer = Trainer(
        model=wrapped,
        args=args,
        train_dataset=TokenizedSplit(train, tok, names, max_length, extra["train"]),
        eval_dataset=TokenizedSplit(validation, tok, names, max_length) if evaluate else None,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=accuracy_metric if evaluate else None,
        callbacks=[*schedule_callbacks(cfg, evaluate, None), _recalibration(wrapped, feeds, cfg.recalibrate_every)],
    )
    with integer_graph(model, mask_fill):
        return train_and_save(trainer, "student-qat", tok, workdir, label_names, unwrap=lambda m: m.student)
