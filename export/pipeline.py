"""The whole chain: data → teacher → student → ONNX / TFLite → bundles → verify → report."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from export.artifacts import Artifact, Format
from export.classifier import Classifier, correct_predictions
from export.config import PipelineConfig, Refit, to_dict
from export.convert.bundle import finish_bundle, golden_examples, make_bundle
from export.convert.onnx import to_onnx
from export.convert.quantized import QatModel, quantized_onnx, quantized_tflite
from export.convert.tflite import to_tflite
from export.convert.vocab import (
    changed_word_rate,
    check_trimmable_source,
    read_texts,
    trim_vocabulary,
    unknown_word_rate,
)
from export.data.dataset import Dataset, Split, load_data
from export.errors import VerificationError
from export.preflight import check_output_dir, resolve_toolchain
from export.report.document import Report, write_report
from export.train.cache import (
    StageResult,
    leave_launch,
    qat_stage,
    refit_student_stage,
    refit_teacher_stage,
    student_stage,
    teacher_stage,
)
from export.verify.engine import ArtifactResult, verify
from quantize.calibration import CalibrationTexts, draw_texts
from quantize.modes import OnnxQuant, TfliteQuant

log = logging.getLogger(__name__)


def run(cfg: PipelineConfig, data: Dataset | None = None, log_file: str | None = None) -> Report:
    """Runs every stage and writes ``cfg.out`` (bundles, models, report.md, report.json).

    Training is a selection run (teacher and student on the train split, the best validation
    check kept; their eval accuracy is the unseen-data figure) and then, unless ``finetune.refit
    = off``, a refit of both on more rows up to the epochs validation chose: the refit models
    are the ones exported, verified and shipped.

    With ``verify.on_gate_fail = skip`` a quantized artifact that fails only the accuracy gate
    is left out of ``bundles/`` and listed under "Left out" in the report; the run passes.

    ``data``: the dataset :func:`export.preflight.preflight` already read (else read here).
    ``log_file``: where the caller will put the run's log, relative to ``cfg.out`` (the report links it).

    Raises:
        ExportError: bad input (before anything is written) or a failing stage.
        VerificationError: an artifact failed parity or the accuracy gate (``on_gate_fail =
            fail``); ``cfg.out`` then holds the report and only the bundles that passed.
    """
    started = time.perf_counter()
    check_output_dir(cfg.out, cfg.overwrite)
    cfg = resolve_toolchain(cfg)
    if cfg.vocab.trim:
        check_trimmable_source(cfg.distill.student_model or cfg.model.name_or_path)
    if data is None:
        data = load_data(cfg.data, cfg.seed)
    for note in data.notes:
        log.info("data: %s", note)
    max_length = cfg.data.max_length
    times: dict[str, float] = {}
    stage = functools.partial(timed, times)
    with staging_dir(cfg.out) as work:
        trained = train(cfg, data, stage)
        teacher, student = (ship_model(r.model, work / "models") for r in (trained.teacher, trained.student))
        references, derived, vocab = [teacher, student], {}, {}
        if cfg.vocab.trim:
            with stage("vocab"):
                untrimmed, student, vocab = trim_student(cfg, data, student)
            references, derived = [teacher, untrimmed, student], {student.name: untrimmed.name}
        models = {m.name: m for m in (teacher, student)}
        calibration = calibration_texts(cfg, data)
        qat: StageResult | None = None
        if wants_qat(cfg):
            with stage("qat"):
                qat = qat_stage(
                    cfg, data, trained.teacher, student, trained.student.fingerprint, calibration.calibration
                )
        with stage("convert"):
            fp32 = convert(cfg, teacher, student, work / "artifacts")
        with stage("quantize"):
            quantized = quantize(
                cfg, models, fp32, work / "artifacts", calibration, qat_model(qat, cfg.tflite.lengths(max_length))
            )
        exported = in_report_order(fp32, quantized)
        bundles = make_bundles(exported, models, work / "bundles", max_length)
        with stage("verify"):
            results, logits = verify(references, exported, bundles, data.eval, cfg.verify, max_length, derived)
        kept = ship_verified(results, bundles, logits, models, data, cfg.verify.golden_examples, max_length)
        shutil.rmtree(work / "models" / "checkpoints", ignore_errors=True)
        shutil.rmtree(work / "artifacts", ignore_errors=True)
        times["total"] = round(time.perf_counter() - started, 1)
        report = Report(
            tuple(results),
            data.summary(),
            to_dict(cfg),
            dict(times),
            tuple(kept),
            training={r.model.name: r.summary() for r in (trained.teacher, trained.student, qat) if r is not None},
            selection=trained.selection,
            vocab=vocab,
            log=log_file,
        )
        write_report(report, work)
    if not report.passed:
        raise VerificationError(report.failures, str(cfg.out / "report.md"))
    return report


@dataclasses.dataclass(frozen=True)
class Trained:
    """The training step's result: the models to ship (the refit ones unless ``refit = off``) and
    what the selection run measured."""

    teacher: StageResult
    student: StageResult
    selection: dict[str, Any]


def train(cfg: PipelineConfig, data: Dataset, stage: Callable[[str], AbstractContextManager[None]]) -> Trained:
    """Fine-tunes the teacher (after domain adaptation when configured) and distills the student
    on the train split, keeping the best validation check (the selection run), then refits both
    on more rows up to the epochs validation chose, unless ``finetune.refit = off``. Every stage
    is cached and resumable (:mod:`export.train.cache`)."""
    with stage("finetune" if not cfg.adapt.enabled else "adapt+finetune"):
        teacher = teacher_stage(cfg, data)
    with stage("distill"):
        student = student_stage(cfg, data, teacher)
    selection = selection_run(cfg, data, teacher, student)
    if cfg.finetune.refit is not Refit.OFF:
        with stage("refit"):
            refit_teacher = refit_teacher_stage(cfg, data, teacher)
            student = refit_student_stage(cfg, data, refit_teacher, student)
            teacher = refit_teacher
    leave_launch()  # torchrun / accelerate launch: as train_worker does in the other processes
    return Trained(teacher, student, selection)


def trim_student(
    cfg: PipelineConfig, data: Dataset, student: Classifier
) -> tuple[Classifier, Classifier, dict[str, Any]]:
    """``vocab.trim``: the student with only the word pieces of ``vocab.texts`` (default: the texts
    the student trained on, never eval: :func:`trained_on`), shipped as ``models/student`` and exported; the
    untrimmed one moves to ``models/student-untrimmed``, the model verify gates the trimmed one
    against. Also returns what was kept, the eval words that become [UNK] before and after, and
    those cut into other pieces than before.

    Raises:
        ConfigError: the student's tokenizer is not WordPiece.
        DataError: ``vocab.texts`` is missing, not UTF-8 or empty.
    """
    name = f"{student.name}-untrimmed"
    untrimmed = dataclasses.replace(student, name=name, path=student.path.rename(student.path.with_name(name)))
    texts = read_texts(cfg.vocab.texts) if cfg.vocab.texts is not None else list(trained_on(cfg, data).texts)
    trimmed, kept = trim_vocabulary(untrimmed, texts, cfg.vocab, student.path)
    trimmed = dataclasses.replace(trimmed, name=student.name)
    summary = kept.summary() | {
        "texts": str(cfg.vocab.texts) if cfg.vocab.texts is not None else texts_name(cfg),
        "min_count": cfg.vocab.min_count,
        "keep_characters": cfg.vocab.keep_characters,
        "eval_unknown_words_before": unknown_word_rate(untrimmed.tokenizer, data.eval.texts),
        "eval_unknown_words_after": unknown_word_rate(trimmed.tokenizer, data.eval.texts),
        "eval_changed_words": changed_word_rate(untrimmed.tokenizer, trimmed.tokenizer, data.eval.texts),
        "source_changed_words": changed_word_rate(untrimmed.tokenizer, trimmed.tokenizer, texts),
    }
    log.info(
        "vocab: kept %d of %d pieces; eval words that become [UNK]: %.2f%% -> %.2f%%, re-cut: %.2f%%",
        kept.summary()["pieces_kept"],
        kept.original_size,
        100 * summary["eval_unknown_words_before"],
        100 * summary["eval_unknown_words_after"],
        100 * summary["eval_changed_words"],
    )
    return untrimmed, trimmed, summary


def trained_on(cfg: PipelineConfig, data: Dataset) -> Split:
    """The rows the shipped student learned from, eval excluded: the refit's rows (train, validation
    and the dropped phrases outside eval) or, without a refit, the train split."""
    return data.train if cfg.finetune.refit is Refit.OFF else data.refit_rows(include_eval=False)


def texts_name(cfg: PipelineConfig) -> str:
    return "the train split" if cfg.finetune.refit is Refit.OFF else "the refit rows outside eval"


def convert(cfg: PipelineConfig, teacher: Classifier, student: Classifier, out_dir: Path) -> list[Artifact]:
    """The fp32 exports: ONNX of the student (and of the teacher when ``onnx.teacher``), TFLite of
    the student when ``tflite.enabled``."""
    fp32 = to_onnx([student, teacher] if cfg.onnx.teacher else [student], cfg.onnx, out_dir)
    if cfg.tflite.enabled:
        fp32.append(
            to_tflite(student, cfg.tflite, out_dir, max_length=cfg.data.max_length, mask_fill=cfg.quantize.mask_fill)
        )
    return fp32


def calibration_texts(cfg: PipelineConfig, data: Dataset) -> CalibrationTexts:
    """The calibration and sensitivity texts: training texts (never eval), seeded, with lengths like
    the validation texts' (only their word counts are used)."""
    return draw_texts(
        data.train.texts,
        cfg.quantize.calibration_samples,
        cfg.quantize.sensitivity_samples,
        cfg.seed,
        like=data.validation.texts,
    )


def wants_qat(cfg: PipelineConfig) -> bool:
    """Whether a configured mode exports the quantization-aware-trained student (``int8-qat``)."""
    return OnnxQuant.QAT_INT8 in cfg.onnx.quantize or (
        cfg.tflite.enabled and TfliteQuant.QAT_INT8 in cfg.tflite.quantize
    )


def qat_model(stage: StageResult | None, lengths: tuple[int, ...] = ()) -> QatModel | None:
    """The QAT stage's student with a note of what its training did, for ``int8-qat``."""
    if stage is None:
        return None
    info = stage.training_info
    note = f"quantization-aware training: {info.get('steps', '?')} steps in {stage.train_seconds:.0f} s" + (
        " (reused from the stage cache)" if stage.reused else ""
    )
    best = info.get("best_validation_accuracy")
    if best is not None:
        note += f"; best simulated-int8 validation accuracy {100 * best:.2f}%"
    return QatModel(stage.model, (note,), student_of="student", lengths=lengths)


def quantize(
    cfg: PipelineConfig,
    models: dict[str, Classifier],
    fp32: list[Artifact],
    out_dir: Path,
    calibration: CalibrationTexts,
    qat: QatModel | None = None,
) -> list[Artifact]:
    """Every quantized artifact (``onnx.quantize``, ``tflite.quantize``) made from the fp32 exports
    (``int8-qat`` from the QAT student); the calibrated modes calibrate on ``calibration``."""
    onnx_fp32 = [a for a in fp32 if a.format is Format.ONNX]
    quantized = quantized_onnx(
        [models[a.model] for a in onnx_fp32],
        onnx_fp32,
        cfg.onnx,
        out_dir,
        calibration=calibration,
        quant=cfg.quantize,
        max_length=cfg.data.max_length,
        qat=qat,
    )
    for a in (a for a in fp32 if a.format is Format.TFLITE):
        quantized += quantized_tflite(
            models[a.model],
            a,
            cfg.tflite,
            out_dir,
            max_length=cfg.data.max_length,
            calibration=calibration,
            quant=cfg.quantize,
            qat=qat,
        )
    return quantized


def in_report_order(fp32: list[Artifact], quantized: list[Artifact]) -> list[Artifact]:
    """Each fp32 artifact followed by the artifacts quantized from it: the order of the report."""
    return [a for f in fp32 for a in (f, *(q for q in quantized if q.source == f.name))]


def make_bundles(
    artifacts: list[Artifact], models: dict[str, Classifier], out_dir: Path, max_length: int
) -> dict[str, Path]:
    """A bundle folder per artifact (model file, tokenizer, manifest); verification adds metrics
    and golden examples to those that pass (:func:`ship_verified`)."""
    bundles = {a.name: out_dir / a.name for a in artifacts}
    for a in artifacts:
        make_bundle(a, models[a.model], bundles[a.name], max_length)
    return bundles


def selection_run(cfg: PipelineConfig, data: Dataset, teacher: StageResult, student: StageResult) -> dict[str, Any]:
    """What the selection run measured, for the report: each model's accuracy on the eval split
    (never trained on by these models), its best validation check and the epoch of it; which rows
    the shipped models train on; and whether the verify table's accuracy is on unseen rows."""
    max_length = cfg.data.max_length
    refit = cfg.finetune.refit
    models = {}
    for name, stage in (("teacher", teacher), ("student", student)):
        correct = correct_predictions(stage.model, data.eval.texts, data.eval.labels, max_length)
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
