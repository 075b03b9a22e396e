"""The quantize step: every quantized artifact made from the fp32 exports, ONNX Runtime modes
(``onnx.quantize``) and TFLite precisions (``tflite.quantize``), with the calibration the
calibrated modes need. The quantizers themselves are in :mod:`quantize`; this module feeds them
the models' own tokenizers and graphs, and names the results.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from export.architectures import model_input_names
from export.artifacts import Artifact, Format
from export.classifier import Classifier
from export.config import OnnxConfig, QuantizeConfig, TfliteConfig, TfliteConverter
from export.convert.onnx import export_integer_onnx, export_onnx, graph_opset
from export.convert.tflite import convert_tflite, integer_flatbuffer, tflite_signatures
from export.errors import ConfigError, ConversionError
from export.preflight import resolve_onnx
from quantize import full_integer
from quantize.calibration import CalibrationTexts, encode
from quantize.flatbuffer import compact
from quantize.full_integer import Inputs
from quantize.integer_only import tflite_float_ops
from quantize.modes import OnnxQuant, TfliteQuant
from quantize.onnx import float_matmuls, quantize_onnx
from quantize.tflite import calibrate_tflite, quantize_tflite, quantize_tflite_calibrated, write_atomic
from runtime.backends import bucket_signature

_DEFAULT_QUANTIZE = QuantizeConfig()


def quantized_onnx(
    models: list[Classifier],
    fp32: list[Artifact],
    cfg: OnnxConfig,
    out_dir: Path,
    *,
    calibration: CalibrationTexts | None = None,
    quant: QuantizeConfig = _DEFAULT_QUANTIZE,
    max_length: int = 128,
    qat: QatModel | None = None,
) -> list[Artifact]:
    """Quantizes each model's fp32 export (from :func:`to_onnx`) in every mode of ``cfg.quantize``.

    The calibrated modes quantize a second export, made with the attention mask filled with
    ``quant.mask_fill`` rather than −3.4e38 (same float outputs; a constant an integer toolchain
    can represent), calibrated on ``calibration.calibration`` encoded with the model's own
    tokenizer, one unpadded text at a time as the runtime runs them: ``int8-static`` of the model
    itself, ``int8-qat`` of ``qat.model`` (the student only; its gate reference stays the fp32
    student's export).

    Args:
        models: The classifiers that ``fp32`` was exported from.
        fp32: Their fp32 ONNX artifacts.
        cfg: The ``[onnx]`` configuration (modes, opset, exporter for the bounded export).
        out_dir: Where the quantized ``.onnx`` files go.
        calibration: Texts drawn from the training split; needed for the calibrated modes.
        quant: The ``[quantize]`` configuration (mask fill).
        max_length: Truncation length for the calibration texts.
        qat: The quantization-aware-trained student, for ``int8-qat``.

    Raises:
        ConfigError: a calibrated mode is configured but no calibration texts are given, or
            ``int8-qat`` without ``qat``.
        ConversionError: a quantization (or the bounded export) failed.
    """
    cfg = resolve_onnx(cfg)  # onnx.exporter=auto / an unset opset made concrete
    calibrated = [m.value for m in cfg.quantize if m.calibrated]
    if calibrated and (calibration is None or not calibration.calibration):
        raise ConfigError(
            f"onnx.quantize includes {calibrated}, which need calibration texts, and none were "
            "given; pass calibration=draw_texts(...) (the pipeline draws quantize.calibration_samples training "
            "texts) or remove them from onnx.quantize"
        )
    if OnnxQuant.QAT_INT8 in cfg.quantize and qat is None:
        raise ConfigError(
            "onnx.quantize includes int8-qat, which exports the quantization-aware-trained student, and none was "
            "given; pass qat= (the pipeline's qat stage trains it)"
        )
    sources = {a.model: a for a in fp32 if a.precision == "fp32"}
    artifacts: list[Artifact] = []
    for clf in models:
        source_artifact = sources[clf.name]
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".onnx-bounded-") as tmp:
            for mode in cfg.quantize:
                name = f"{clf.name}-onnx-{mode.value}"
                if mode is OnnxQuant.QAT_INT8 and (qat is None or qat.student_of != clf.name):
                    continue  # the QAT model is the student's
                source, inputs, notes = source_artifact.path, None, ()
                if mode is OnnxQuant.QAT_INT8 and qat is not None and calibration is not None:
                    source = export_integer_onnx(
                        qat.model,
                        Path(tmp) / "integer.onnx",
                        cfg.opset,
                        quant.mask_fill,
                        cfg.fold_shapes,
                        first_token_only=False,  # calibrated: every row, see _EVERY_ROW
                    )
                    # Padded to the length buckets, as the QAT stage measured its ranges: the
                    # masked positions' fill is then inside the calibrated ranges, so padded
                    # batches stay right.
                    lengths = qat.lengths or (max_length,)
                    encoded = encode(
                        qat.model.tokenizer, calibration.calibration, qat.model.input_names, lengths[-1], lengths
                    )
                    inputs = [row for _, row in encoded]
                    notes = (*qat.notes, _qat_onnx_note(len(inputs)))
                elif mode.calibrated and calibration is not None:
                    source = export_onnx(
                        clf,
                        Path(tmp) / "bounded.onnx",
                        cfg.opset,
                        cfg.exporter,
                        quant.mask_fill,
                        cfg.fold_shapes,
                        first_token_only=False,  # calibrated: every row, see _EVERY_ROW
                    )
                    encoded = encode(clf.tokenizer, calibration.calibration, clf.input_names, max_length)
                    inputs = [row for _, row in encoded]
                    notes = (_static_note(source, len(inputs)),)
                qpath = quantize_onnx(source, out_dir / f"{name}.onnx", mode, inputs)
                artifacts.append(
                    Artifact(
                        name,
                        qpath,
                        Format.ONNX,
                        mode.value,
                        clf.name,
                        source_artifact.name,
                        opset=graph_opset(qpath),
                        notes=notes,
                    )
                )
    return artifacts


def _qat_onnx_note(texts: int) -> str:
    """What ``int8-qat`` (ONNX) quantized, for the report."""
    return (
        f"QDQ int8 of the quantization-aware-trained student: every op's float inputs and outputs quantized, every "
        f"MatMul/Gemm with both inputs int8 (checked), weights per channel, embedding tables int8, activation ranges "
        f"min/max over {texts} training texts padded to the length buckets as the training measured them"
    )


def _static_note(source: Path, texts: int) -> str:
    """What ``int8-static`` decided, for the report."""
    import onnx  # noqa: PLC0415 - loaded when converting, not on import

    kept = float_matmuls(onnx.load(str(source), load_external_data=False))
    return (
        f"activation ranges: min/max over {texts} training texts; kept in float: {len(kept)} MatMul/Gemm that read "
        "a GELU/tanh/ReLU output (FFN down-projections, classifier head), whose heavy-tailed inputs cost 2-4 points "
        "of label agreement in int8 on DistilBERT and MiniLM"
    )


def quantized_tflite(
    clf: Classifier,
    fp32: Artifact,
    cfg: TfliteConfig,
    out_dir: Path,
    *,
    max_length: int,
    calibration: CalibrationTexts | None = None,
    quant: QuantizeConfig | None = None,
    qat: QatModel | None = None,
) -> list[Artifact]:
    """Quantizes the fp32 flatbuffer from :func:`to_tflite` to every precision of ``cfg.quantize``;
    ``int8-qat`` is made from ``qat`` instead (:func:`_qat_tflite`).

    Args:
        clf: The classifier ``fp32`` was exported from (its tokenizer encodes calibration texts).
        fp32: Its fp32 TFLite artifact.
        cfg: Which precisions to make, and the length buckets.
        out_dir: Folder for the ``{name}-tflite-{precision}.tflite`` files.
        max_length: The longest sequence, as given to :func:`to_tflite`.
        calibration: Training texts for the calibrated modes (``int8-full``, ``int8-full-int8-io``,
            ``16x8``): ranges from ``calibration.calibration``, sensitivity search scored on
            ``calibration.sensitivity``.
        quant: Target agreement and float-group limit of the sensitivity search (default:
            :class:`QuantizeConfig` defaults).
        qat: The quantization-aware-trained student and what its training did (``int8-qat``).

    Returns:
        One artifact per precision, in ``cfg.quantize`` order; each names ``fp32`` as its source.

    Raises:
        ConfigError: a calibrated mode is configured but no calibration texts are given, or
            ``int8-qat`` but no ``qat`` model.
        TfliteQuantizationError: ai-edge-quantizer failed on the fp32 model.
        ConversionError: the ``int8-qat`` graph is not integer-only.
    """
    quant = quant or QuantizeConfig()
    searched = [m for m in cfg.quantize if m.calibrated]  # the sensitivity search scores on sensitivity texts
    calibrated = [*searched, *(m for m in cfg.quantize if m is TfliteQuant.QAT_INT8)]
    missing = calibration is None or not calibration.calibration or (searched and not calibration.sensitivity)
    if calibrated and missing:
        raise ConfigError(
            f"tflite.quantize {[m.value for m in calibrated]} need calibration"
            + (" and sensitivity" if searched else "")
            + " texts from the training split; pass calibration= (the pipeline draws "
            "quantize.calibration_samples and quantize.sensitivity_samples of them)"
        )
    fp32_name, fp32_path = fp32.name, fp32.path
    artifacts: list[Artifact] = []
    ranges: tuple[dict, Inputs] | None = None  # one calibration serves every calibrated mode
    int8_groups: tuple[str, ...] = ()  # what int8-full kept in float; int8-full-int8-io starts there
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".tflite-every-row-") as tmp:
        every_row = Path(tmp) / "every-row.tflite"  # the calibrated modes' source: see _EVERY_ROW
        for mode in cfg.quantize:
            name = f"{clf.name}-tflite-{mode.value}"
            notes: tuple[str, ...] = ()
            if mode is TfliteQuant.QAT_INT8:
                if qat is None:
                    raise ConfigError(
                        "tflite.quantize includes int8-qat, which exports the quantization-aware-trained student, "
                        "and none was given; pass qat= (the pipeline's qat stage trains it)"
                    )
                assert calibration is not None  # checked above
                path, notes = _qat_tflite(
                    qat, clf, calibration.calibration, out_dir / f"{name}.tflite", cfg, max_length
                )
            elif mode.calibrated:
                source = fp32_path
                if cfg.first_token_only and cfg.converter is TfliteConverter.LITERT_TORCH:
                    if not every_row.exists():
                        convert_tflite(
                            clf.model,
                            every_row,
                            lengths=cfg.lengths(max_length),
                            converter=cfg.converter,
                            mask_fill=quant.mask_fill,
                            first_token_only=False,
                        )
                    source = every_row
                if ranges is None:
                    assert calibration is not None  # checked above
                    calibration_rows, sensitivity_rows = _calibration_inputs(
                        clf, calibration, source, cfg.lengths(max_length)
                    )
                    ranges = calibrate_tflite(source, calibration_rows), sensitivity_rows
                path, result = quantize_tflite_calibrated(
                    source,
                    out_dir / f"{name}.tflite",
                    mode,
                    *ranges,
                    target_agreement=quant.target_agreement,
                    max_float_groups=quant.max_float_groups,
                    start_groups=int8_groups if mode is TfliteQuant.FULL_INT8_IO else (),
                )
                if mode is TfliteQuant.FULL_INT8:
                    int8_groups = result.final.float_groups
                notes = result.notes() + ((_EVERY_ROW,) if source == every_row else ())
            else:
                path = quantize_tflite(fp32_path, out_dir / f"{name}.tflite", mode)
            artifacts.append(
                Artifact(
                    name, path, Format.TFLITE, mode.value, clf.name, fp32_name, fixed_length=max_length, notes=notes
                )
            )
    return artifacts


# Calibrated static modes quantize a graph that computes every row of the last layer: on the test
# model (tests/quantize/test_tflite.py) the first-token graph's static int8 / 16x8 logits were
# further from fp32 (mean |Δ| 0.148 → 0.195, 0.119 → 0.166; one of 48 labels flipped), so those
# modes keep the every-row graph (one more conversion) and the float / dynamic modes get the rewrite.
_EVERY_ROW = (
    "calibrated on the graph that computes every row of the last layer (tflite.first_token_only applies to "
    "the float and dynamic-int8 modes only)"
)


@dataclass(frozen=True)
class QatModel:
    """The quantization-aware-trained student (``models`` folder of the qat stage) and its notes."""

    model: Classifier
    notes: tuple[str, ...] = ()
    student_of: str = "student"
    """The name of the shipped model this one was trained from (whose artifacts it joins)."""
    lengths: tuple[int, ...] = ()
    """The padded lengths its training measured activation ranges at (the TFLite buckets)."""


def _qat_tflite(
    qat: QatModel, clf: Classifier, texts: Sequence[str], out: Path, cfg: TfliteConfig, max_length: int
) -> tuple[Path, tuple[str, ...]]:
    """The integer-only int8 flatbuffer of the QAT student: traced as an integer graph, calibrated on
    ``texts`` (the texts its training calibrated on), every op quantized, checked for float ops.

    Raises:
        ConversionError: the quantized graph still has a float op (named): never shipped as int8-qat.
    """
    from transformers import AutoModelForSequenceClassification  # noqa: PLC0415 - loaded when converting

    lengths = cfg.lengths(max_length)
    model = AutoModelForSequenceClassification.from_pretrained(qat.model.path, attn_implementation="eager").eval()
    flatbuffer = integer_flatbuffer(model, lengths)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".qat-") as tmp:
        fp32 = write_atomic(flatbuffer, Path(tmp) / "fp32.tflite")
        rows, _ = _calibration_inputs(clf, CalibrationTexts(tuple(texts), (), 0), fp32, lengths)
        ranges = full_integer.calibrate(flatbuffer, rows, min_max=True)
        quantized = full_integer.quantize_with(flatbuffer, ranges, TfliteQuant.FULL_INT8, ())
    found = tflite_float_ops(quantized)
    if not found.integer_only:
        raise ConversionError(
            f"{out.stem}: the int8-qat graph of {clf.name} ({model.config.model_type}) is not integer-only — "
            f"{found.describe(limit=10)}; the kit does not ship it as int8-qat. Use int8-full (which keeps "
            "sensitive ops in float and says so), or report the op: the integer export covers "
            "BERT, DistilBERT, MobileBERT, RoBERTa and ELECTRA"
        )
    notes = (
        *qat.notes,
        f"integer-only: {found.ops} ops, none float (checked on the flatbuffer); every op int8 with "
        f"activation ranges from {len(texts)} calibration texts, weights per channel",
    )
    return write_atomic(compact(quantized), out), notes


def _calibration_inputs(
    clf: Classifier, texts: CalibrationTexts, fp32_path: Path, lengths: tuple[int, ...]
) -> tuple[Inputs, Inputs]:
    """Encodes calibration and sensitivity texts into each text's length bucket (signature).

    Every signature needs calibration data: a bucket no calibration text falls into gets
    the first texts truncated or padded to its length.
    """
    keys = set(tflite_signatures(fp32_path))
    names = model_input_names(clf.model)

    def key_of(n: int) -> str:
        key = bucket_signature(n)
        return key if key in keys or len(keys) != 1 else next(iter(keys))

    def rows(batch: tuple[str, ...]) -> Inputs:
        return [(key_of(n), row) for n, row in encode(clf.tokenizer, batch, names, lengths[-1], lengths)]

    calibration = rows(texts.calibration)
    covered = {key for key, _ in calibration}
    for n in lengths:
        if key_of(n) not in covered:
            extra = encode(clf.tokenizer, texts.calibration[:16], names, n, (n,))
            calibration += [(key_of(n), row) for _, row in extra]
    return calibration, rows(texts.sensitivity) if texts.sensitivity else []
