"""The whole chain: data → teacher → student → ONNX / TFLite → bundles → verify → report."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from export.classifier import Classifier, correct_predictions
from export.config import PipelineConfig, Refit, to_dict
from export.convert.bundle import finish_bundle, golden_examples, make_bundle
from export.convert.onnx import to_onnx
from export.convert.tflite import to_tflite
from export.data.dataset import Dataset, load_data
from export.errors import ConfigError, VerificationError
from export.report.document import Report, write_report
from export.train.cache import StageResult, refit_student_stage, refit_teacher_stage, student_stage, teacher_stage
from export.verify.engine import ArtifactResult, verify
from quantize.calibration import draw_texts

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig) -> Report:
    """Runs every stage and writes ``cfg.out`` (bundles, models, report.md, report.json).

    Training is a selection run (teacher and student on the train split, the best validation
    check kept; their eval accuracy is the unseen-data figure) and then, unless ``finetune.refit
    = off``, a refit of both on more rows up to the epochs validation chose: the refit models
    are the ones exported, verified and shipped.

    With ``verify.on_gate_fail = skip`` a quantized artifact that fails only the accuracy gate
    is left out of ``bundles/`` and listed under "Left out" in the report; the run passes.

    Raises:
        ExportError: bad input (before anything is written) or a failing stage.
        VerificationError: an artifact failed parity or the accuracy gate (``on_gate_fail =
            fail``); ``cfg.out`` then holds the report and only the bundles that passed.
    """
    started = time.perf_counter()
    check_output_dir(cfg.out, cfg.overwrite)
    data = load_data(cfg.data)
    for note in data.notes:
        log.info("data: %s", note)
    n = cfg.data.max_length
    times: dict[str, float] = {}
    stage = functools.partial(timed, times)
    with staging_dir(cfg.out) as work:
        with stage("finetune" if not cfg.adapt.enabled else "adapt+finetune"):
            trained = teacher_stage(cfg, data)
        with stage("distill"):
            distilled = student_stage(cfg, data, trained)
        selection = selection_run(cfg, data, trained, distilled)
        if cfg.finetune.refit is not Refit.OFF:
            with stage("refit"):
                trained = refit_teacher_stage(cfg, data, trained)
                distilled = refit_student_stage(cfg, data, trained, distilled)
        teacher = ship_model(trained.model, work / "models")
        student = ship_model(distilled.model, work / "models")
        calibration = draw_texts(
            data.train.texts,
            cfg.quantize.calibration_samples,
            cfg.quantize.sensitivity_samples,
            cfg.seed,
            like=data.validation.texts,  # lengths like deployment text (only their word counts are used)
        )
        with stage("export"):
            exported = to_onnx(
                [student, teacher] if cfg.onnx.teacher else [student],
                cfg.onnx,
                work / "artifacts",
                calibration=calibration,
                quant=cfg.quantize,
                max_length=n,
            )
            if cfg.tflite.enabled:
                exported += to_tflite(
                    student, cfg.tflite, work / "artifacts", seq_len=n, calibration=calibration, quant=cfg.quantize
                )
        models = {m.name: m for m in (teacher, student)}
        bundles = {a.name: work / "bundles" / a.name for a in exported}
        for a in exported:
            make_bundle(a, models[a.model], bundles[a.name], n)
        with stage("verify"):
            results, logits = verify([teacher, student], exported, bundles, data.eval, cfg.verify, n)
        kept = ship_verified(results, bundles, logits, models, data, cfg.verify.golden_examples, n)
        shutil.rmtree(work / "models" / "checkpoints", ignore_errors=True)
        shutil.rmtree(work / "artifacts", ignore_errors=True)
        times["total"] = round(time.perf_counter() - started, 1)
        training = {r.model.name: r.summary() for r in (trained, distilled)}
        report = Report(
            tuple(results),
            data.summary(),
            to_dict(cfg),
            dict(times),
            tuple(kept),
            training=training,
            selection=selection,
        )
        write_report(report, work)
    if not report.passed:
        raise VerificationError(report.failures, str(cfg.out / "report.md"))
    return report


def selection_run(cfg: PipelineConfig, data: Dataset, teacher: StageResult, student: StageResult) -> dict[str, Any]:
    """What the selection run measured, for the report: each model's accuracy on the eval split
    (never trained on by these models), its best validation check and the epoch of it; which rows
    the shipped models train on; and whether the verify table's accuracy is on unseen rows."""
    n = cfg.data.max_length
    refit = cfg.finetune.refit
    models = {}
    for name, stage in (("teacher", teacher), ("student", student)):
        correct = correct_predictions(stage.model, data.eval.texts, data.eval.labels, n)
        summary = stage.summary()
        models[name] = {
            "eval_accuracy": float(correct.mean()),
            "best_validation_accuracy": summary.get("best_validation_accuracy"),
            "chosen_epoch": stage.chosen_epoch,
            "train_rows": len(data.train),
            "train_seconds": stage.train_seconds,
            "evaluations": summary.get("evaluations", []),
        }
        log.info("selection run: %s eval accuracy %.4f (unseen rows)", name, models[name]["eval_accuracy"])
    shipped_rows = len(data.train) if refit is Refit.OFF else len(data.refit_rows(include_eval=refit is Refit.ALL))
    return {
        "refit": refit.value,
        "models": models,
        "eval_rows": len(data.eval),
        "shipped_train_rows": shipped_rows,
        "eval_trained_on": refit is Refit.ALL and data.eval_carved,
    }


def ship_verified(
    results: list[ArtifactResult],
    bundles: dict[str, Path],
    logits: dict[str, np.ndarray],
    models: dict[str, Classifier],
    data: Dataset,
    golden_count: int,
    max_length: int,
) -> tuple[str, ...]:
    """Deletes the bundles that failed verification or that the accuracy gate left out; adds
    metrics and golden examples to the rest."""
    kept = []
    for r in results:
        if r.name not in bundles:
            continue
        if not r.passed or r.skipped:  # never shipped: the report says why
            if r.skipped:
                log.warning("left out %s: %s", r.name, r.skipped)
            shutil.rmtree(bundles[r.name])
            continue
        texts = data.eval.texts[:golden_count]
        tokenizer = models[r.model].tokenizer
        golden = golden_examples(texts, logits[r.name][:golden_count], tokenizer, data.label_names, max_length)
        metrics = {key: v for key, v in dataclasses.asdict(r).items() if key not in ("failures", "skipped")}
        finish_bundle(bundles[r.name], metrics, golden)
        kept.append(r.name)
    return tuple(kept)


def ship_model(clf: Classifier, models_dir: Path) -> Classifier:
    """Copies a trained model (from the checkpoint dir) into the output's ``models/``."""
    dest = models_dir / clf.name
    shutil.copytree(clf.path, dest)
    return dataclasses.replace(clf, path=dest)


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuses to write into a non-empty directory unless ``overwrite`` is set."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} is a file; pass a directory with --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output directory {out} is not empty; choose another --out or pass --overwrite")


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A hidden sibling of ``out`` that replaces it only when the block completes.

    On an exception the staging directory is removed, so ``out`` is never half written.
    """
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)


@contextmanager
def timed(times: dict[str, float], name: str) -> Iterator[None]:
    """Logs a stage's start and end and records its wall time in ``times``."""
    log.info("stage %s: start", name)
    start = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - start, 1)
    log.info("stage %s: done in %.1f s", name, times[name])
