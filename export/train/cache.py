"""The training stages, kept between runs: resume an interrupted run, reuse a finished stage.

Each stage trains in ``<checkpoints>/<name>-<fingerprint>/``. The fingerprint hashes
everything the result depends on: the stage's config, the seed, the data actually used
(texts and labels of the train and validation splits), ``max_length`` and, for the student,
the teacher's fingerprint. So:

- an interrupted run (Ctrl-C, a killed machine) resumes from the newest Trainer checkpoint;
- a finished stage (``done.json`` written last) is loaded instead of trained again when the
  same config runs again, e.g. to try other export or quantization settings;
- any change upstream gives a new fingerprint, so nothing stale is ever reused.

``resume = false`` (``--no-resume``) deletes the stage's folder and trains from scratch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from export.classifier import Classifier, load_classifier
from export.config import ModelConfig, PipelineConfig, Refit
from export.data.dataset import Dataset, load_data
from export.errors import ConfigError
from export.train.adapt import adapt, read_texts
from export.train.distill import distill
from export.train.finetune import finetune
from export.train.qat import quantization_aware

log = logging.getLogger(__name__)

DONE = "done.json"


def is_main_process() -> bool:
    """False in the extra processes of ``torchrun`` / ``accelerate launch`` (``RANK`` > 0)."""
    return int(os.environ.get("RANK", "0")) == 0


LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK")
"""What ``torchrun`` / ``accelerate launch`` set that makes a Trainer join a process group."""


def train_worker(cfg: PipelineConfig) -> None:
    """What a non-main process of a multi-process launch runs: the training stages, in step with
    the main process (the Trainer shares gradients over them); the main process alone saves models
    and does everything after training."""
    data = load_data(cfg.data, cfg.seed)
    teacher = teacher_stage(cfg, data)
    student = student_stage(cfg, data, teacher)
    if cfg.finetune.refit is not Refit.OFF:
        refit_student_stage(cfg, data, refit_teacher_stage(cfg, data, teacher), student)
    leave_launch()


def leave_launch() -> None:
    """The end of the training stages the processes of a multi-process launch share (fine-tuning,
    distillation, refit); every process calls it there, in step. They meet and leave the process
    group together: a process that exits still in it can abort at interpreter exit (gloo:
    "terminate called without an active exception", SIGABRT), which fails the whole launch. The
    main process then goes on as a single process: a later training stage (``int8-qat``'s) runs
    on it alone instead of waiting for processes that have left, with the CPU threads of this
    machine's processes (``torchrun`` gives each one thread). Does nothing outside a launch.
    """
    import torch  # noqa: PLC0415 - heavy: loaded when training, not on import

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    if not is_main_process():
        return
    launched = {v: os.environ.pop(v) for v in LAUNCH_VARIABLES if v in os.environ}
    if not launched:
        return
    # (each TrainingArguments resets accelerate's device state and reads the variables again)
    here = int(launched.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(min(torch.get_num_threads() * here, os.cpu_count() or 1))
    log.info(
        "multi-process launch: training in step is done; the main process continues alone on %d threads",
        torch.get_num_threads(),
    )


@dataclasses.dataclass(frozen=True)
class StageResult:
    """A trained model and how it was obtained."""

    model: Classifier
    fingerprint: str
    train_seconds: float
    """Wall time of the training that produced it (also when it was reused)."""
    reused: bool

    @functools.cached_property
    def training_info(self) -> dict[str, Any]:
        """The model's training.json (read once), or {} when it has none."""
        path = self.model.path / "training.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def chosen_epoch(self) -> float | None:
        """The epoch of the validation check this run kept (the first best one), or None when
        nothing was validated (the whole schedule was run)."""
        info = self.training_info
        best = info.get("best_validation_accuracy")
        checks = [e for e in info.get("evaluations", []) if best is not None and e["accuracy"] == best]
        return float(checks[0]["epoch"]) if checks else None

    def summary(self) -> dict[str, Any]:
        """For report.json: training.json's figures plus where the stage lives and whether it was reused."""
        return self.training_info | {
            "parameters": self.model.num_parameters(),
            "fingerprint": self.fingerprint,
            "train_seconds": self.train_seconds,
            "reused": self.reused,
            "checkpoint_dir": str(self.model.path.parent),
        }


def data_fingerprint(data: Dataset, max_length: int) -> str:
    h = hashlib.sha256(f"{max_length}|{data.label_names}".encode())
    for split in (data.train, data.validation):
        h.update(str(len(split)).encode())
        h.update("\x1f".join(split.texts).encode())
        h.update(split.labels.tobytes())
    return h.hexdigest()


# Config fields added after stage caches existed: left out of a fingerprint while unset (None), so
# a cache trained before a field existed stays valid for a config that does not use it.
LATER_FIELDS = frozenset({"teacher_layers"})


def fingerprint(*parts: Any) -> str:
    """A short stable hash of dataclasses, strings and numbers (unset :data:`LATER_FIELDS` left out)."""

    def as_plain(p: Any) -> Any:
        if not dataclasses.is_dataclass(p) or isinstance(p, type):
            return p
        return {k: v for k, v in dataclasses.asdict(p).items() if not (k in LATER_FIELDS and v is None)}

    plain = [as_plain(p) for p in parts]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def adapt_stage(cfg: PipelineConfig, data: Dataset) -> tuple[Path, str]:
    """Domain-adapts the pretrained model (MLM), or reuses / resumes it; returns its folder and key."""
    texts = read_texts(cfg.adapt.texts, cfg.data) if cfg.adapt.texts is not None else list(data.train.texts)
    h = hashlib.sha256("\x1f".join(texts).encode()).hexdigest()
    key = fingerprint("adapt", cfg.model, cfg.adapt, cfg.seed, cfg.data.max_length, h)
    stage, done = _open_stage(cfg, "adapted", key)
    if done is not None:
        return stage / "adapted", key
    started = time.perf_counter()
    path = adapt(cfg.model.name_or_path, texts, cfg.adapt, stage, max_length=cfg.data.max_length, seed=cfg.seed)
    _close_stage(stage, key, round(time.perf_counter() - started, 1))
    return path, key


def _starting_point(cfg: PipelineConfig, data: Dataset) -> tuple[ModelConfig, tuple[str, ...]]:
    """The model fine-tuning starts from (the domain-adapted one when ``adapt.enabled``) and the
    fingerprint parts it adds."""
    if not cfg.adapt.enabled:
        return cfg.model, ()
    adapted, adapt_key = adapt_stage(cfg, data)
    return ModelConfig(str(adapted)), (adapt_key,)


def _selection_settings(cfg: PipelineConfig) -> dict[str, Any]:
    """The fine-tuning settings a selection run depends on (``refit`` acts after it)."""
    return {k: v for k, v in dataclasses.asdict(cfg.finetune).items() if k != "refit"}


def teacher_stage(cfg: PipelineConfig, data: Dataset) -> StageResult:
    """Fine-tunes the teacher on the train split, keeping the best check on validation (the
    selection run), after domain adaptation when ``adapt.enabled``; or reuses / resumes it from
    ``cfg.checkpoint_dir``."""
    max_length = cfg.data.max_length
    model_cfg, upstream = _starting_point(cfg, data)
    key = fingerprint(
        "teacher", cfg.model, _selection_settings(cfg), cfg.seed, data_fingerprint(data, max_length), *upstream
    )
    return cached_stage(
        cfg,
        "teacher",
        key,
        lambda d: finetune(model_cfg, data, cfg.finetune, d, max_length=max_length, seed=cfg.seed),
        data.label_names,
    )


def student_stage(cfg: PipelineConfig, data: Dataset, teacher: StageResult) -> StageResult:
    """Distills the student from ``teacher`` on the train split, keeping the best check on
    validation, or reuses / resumes it from ``cfg.checkpoint_dir``."""
    max_length = cfg.data.max_length
    key = fingerprint("student", teacher.fingerprint, cfg.distill, cfg.seed, data_fingerprint(data, max_length))
    return cached_stage(
        cfg,
        "student",
        key,
        lambda d: distill(teacher.model, data, cfg.distill, d, max_length=max_length, seed=cfg.seed),
        data.label_names,
    )


def refit_teacher_stage(cfg: PipelineConfig, data: Dataset, selection: StageResult) -> StageResult:
    """Fine-tunes the teacher again on :meth:`Dataset.refit_rows` (``finetune.refit``), with the
    selection run's settings and schedule, stopping at the epoch whose check the selection run
    kept: the schedule validation chose, on more rows. Nothing is validated.

    Raises:
        ConfigError: ``finetune.refit = off`` (there is nothing to refit).
    """
    max_length = cfg.data.max_length
    rows = _refit_data(cfg, data)
    model_cfg, upstream = _starting_point(cfg, data)
    epoch = selection.chosen_epoch
    key = fingerprint("teacher-refit", selection.fingerprint, epoch, data_fingerprint(rows, max_length), *upstream)
    return cached_stage(
        cfg,
        "teacher",
        key,
        lambda d: finetune(model_cfg, rows, cfg.finetune, d, max_length=max_length, seed=cfg.seed, stop_at_epoch=epoch),
        data.label_names,
        folder="teacher-refit",
    )


def refit_student_stage(
    cfg: PipelineConfig, data: Dataset, teacher: StageResult, selection: StageResult
) -> StageResult:
    """Distills the student again from the refit ``teacher`` on :meth:`Dataset.refit_rows`, up to
    the epoch whose check the selection student (``selection``) kept. Nothing is validated."""
    max_length = cfg.data.max_length
    rows = _refit_data(cfg, data)
    epoch = selection.chosen_epoch
    key = fingerprint(
        "student-refit", teacher.fingerprint, cfg.distill, cfg.seed, epoch, data_fingerprint(rows, max_length)
    )
    return cached_stage(
        cfg,
        "student",
        key,
        lambda d: distill(
            teacher.model, rows, cfg.distill, d, max_length=max_length, seed=cfg.seed, stop_at_epoch=epoch
        ),
        data.label_names,
        folder="student-refit",
    )


def qat_stage(
    cfg: PipelineConfig,
    data: Dataset,
    teacher: StageResult,
    student: Classifier,
    student_key: str,
    calibration: Sequence[str],
) -> StageResult:
    """Quantization-aware training of the shipped student (``tflite.quantize`` or ``onnx.quantize`` has ``int8-qat``) on
    the rows it was trained on, or reuses / resumes it. The vocabulary settings are part of the
    key: a trimmed student is another model."""
    max_length = cfg.data.max_length
    refit = cfg.finetune.refit is not Refit.OFF
    rows = _refit_data(cfg, data) if refit else data  # a refit dataset has no validation split
    key = fingerprint(
        "student-qat",
        student_key,
        teacher.fingerprint,
        cfg.vocab,
        cfg.qat,
        cfg.quantize.mask_fill,
        cfg.tflite.lengths(max_length),
        cfg.seed,
        data_fingerprint(rows, max_length),
        hashlib.sha256("\x1f".join(calibration).encode()).hexdigest(),
    )
    return cached_stage(
        cfg,
        "student-qat",
        key,
        lambda d: quantization_aware(
            student,
            teacher.model,
            rows.train,
            rows.validation,
            data.label_names,
            calibration,
            cfg.qat,
            d,
            lengths=cfg.tflite.lengths(max_length),
            max_length=max_length,
            mask_fill=cfg.quantize.mask_fill,
            seed=cfg.seed,
        ),
        data.label_names,
    )


def _refit_data(cfg: PipelineConfig, data: Dataset) -> Dataset:
    if cfg.finetune.refit is Refit.OFF:
        raise ConfigError("finetune.refit = off: the selection run's models are shipped; there is nothing to refit")
    return data.for_refit(include_eval=cfg.finetune.refit is Refit.ALL)


def cached_stage(
    cfg: PipelineConfig,
    name: str,
    key: str,
    train: Callable[[Path], Classifier],
    label_names: tuple[str, ...],
    folder: str | None = None,
) -> StageResult:
    """Trains ``train(stage_dir)`` in ``<checkpoints>/<folder or name>-<key>/`` and marks it done;
    or loads the finished model (``name`` inside that folder) when the stage is done already."""
    stage, done = _open_stage(cfg, folder or name, key)
    if done is not None:
        model = load_classifier(name, stage / name, label_names)
        return StageResult(model, key, float(done["train_seconds"]), reused=True)
    started = time.perf_counter()
    model = train(stage)
    seconds = round(time.perf_counter() - started, 1)
    _close_stage(stage, key, seconds)
    return StageResult(model, key, seconds, reused=False)


def _open_stage(cfg: PipelineConfig, name: str, key: str) -> tuple[Path, dict[str, Any] | None]:
    """The stage's folder, and its ``done.json`` when a finished stage may be reused (else None).

    With ``resume = false`` the main process deletes the folder first; the other processes of a
    multi-process launch never touch it and train in step with the main one.
    """
    stage = cfg.checkpoint_dir.resolve() / f"{name}-{key}"
    if not cfg.resume:
        if is_main_process():
            shutil.rmtree(stage, ignore_errors=True)
    elif (stage / DONE).is_file():
        log.info("%s: reusing %s (same config, data and seed; --no-resume trains it again)", name, stage)
        return stage, json.loads((stage / DONE).read_text(encoding="utf-8"))
    stage.mkdir(parents=True, exist_ok=True)
    return stage, None


def _close_stage(stage: Path, key: str, seconds: float) -> None:
    """Marks a trained stage finished (main process only) and drops the optimizer states kept for resuming."""
    if not is_main_process():
        return
    shutil.rmtree(stage / "checkpoints", ignore_errors=True)
    (stage / DONE).write_text(json.dumps({"fingerprint": key, "train_seconds": seconds}) + "\n", encoding="utf-8")
