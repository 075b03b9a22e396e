"""What each model or bundle must prove against its source, and the one place that is decided.

:func:`judge` measures accuracy, agreement, max |logit Δ| and the accuracy drop of one
:class:`Subject` and turns its :class:`Checks` into failures, or — for a quantized artifact that
fails only the accuracy gate under ``on_gate_fail = skip`` — into the reason it is left out
(:func:`apply_gate`). It builds every :class:`ArtifactResult`, for the pipeline and for
``python -m export verify`` alike (:mod:`export.verify.engine` gathers the subjects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from export.architectures import Arch
from export.artifacts import Format
from export.config import VerifyConfig
from export.verify.latency import Latencies, latency_key
from export.verify.outputs import LabelledTexts, Outputs, accuracy, agreement, max_abs_delta
from quantize.integer_only import FloatOps
from quantize.modes import GateAction
from runtime.classifier import golden_atol


@dataclass(frozen=True)
class ArtifactResult:
    """Verify's numbers for one artifact (or PyTorch model).

    Attributes:
        accuracy: Fraction correct on the eval split.
        agreement: Fraction of eval texts where its label equals the reference's (the fp32
            teacher in the pipeline, the source in ``python -m export verify``); None when
            there is no reference to agree with.
        max_abs_delta: Max |logit Δ| against ``source`` over the eval split (None for sources).
        tolerance: The parity bound ``max_abs_delta`` must meet (fp32 exports), else None.
        accuracy_drop: Points lost against ``source`` (positive = worse), None for sources.
        p50_ms / p90_ms: Per-text latency at batch 1 with ``threads`` threads (the first of
            the thread counts measured), tokenization included; the figure drift checks and
            budgets use.
        failures: Why it failed; empty when it passed (or was skipped).
        latency: p50 / p90 at every thread count measured, keyed ``"1t"``, ``"2t"``, ...
        skipped: Why the accuracy gate left it out (``on_gate_fail = skip``); empty otherwise.
        notes: What the quantizer decided (e.g. op groups kept in float), from the artifact.
        source_agreement: Fraction of eval texts where its label equals ``source``'s (for a
            quantized artifact: label agreement with its fp32 model); None for sources.
        batch_max_delta: Max |logit Δ| of a bundle's eval texts between one text per call and
            batches of mixed lengths; None for PyTorch models.
        batch_label_changes: How many eval texts that batching relabels; None as above.
        integer: ``integer-only`` or ``mixed: N of M ops float (op types)``, counted from the
            bundle's model graph (:mod:`quantize.integer_only`); None for PyTorch models.
        float_ops: The N of ``integer``; None as above.
    """

    name: str
    format: str
    precision: str
    model: str
    source: str
    size_bytes: int
    accuracy: float
    agreement: float | None
    max_abs_delta: float | None
    tolerance: float | None
    accuracy_drop: float | None
    p50_ms: float
    p90_ms: float
    threads: int
    failures: tuple[str, ...] = field(default_factory=tuple)
    latency: Latencies = field(default_factory=dict)
    skipped: str = ""
    notes: tuple[str, ...] = ()
    source_agreement: float | None = None
    batch_max_delta: float | None = None
    batch_label_changes: int | None = None
    integer: str | None = None
    float_ops: int | None = None

    @property
    def passed(self) -> bool:
        """No check failed. A skipped artifact passed: it is left out, not shipped broken."""
        return not self.failures

    @property
    def status(self) -> str:
        """``fail``, ``skipped`` or ``pass``."""
        return "fail" if self.failures else "skipped" if self.skipped else "pass"


@dataclass(frozen=True)
class Checks:
    """What one model or bundle must prove against its source; None: not checked.

    Attributes:
        tolerance: Max |logit Δ| (fp32 exports of the source model: :func:`parity_tolerance`).
        max_drop: Max accuracy drop, points.
        min_agreement: Min fraction of texts labelled as the source labels them.
        gated: The drop and agreement checks are the accuracy gate (quantized artifacts):
            ``on_gate_fail`` decides what their failure does. Otherwise they simply fail.
        drop_limit: How ``max_drop`` reads in a failure message.
    """

    tolerance: float | None = None
    max_drop: float | None = None
    min_agreement: float | None = None
    gated: bool = False
    drop_limit: str = "max drop"


@dataclass(frozen=True)
class Subject:
    """One model or bundle, what it said, and what it is judged against.

    Attributes:
        outputs: Its logits on the texts, with their label names.
        source: What it must match ("" for a source itself); ``source_outputs`` its logits.
        reference: Whose labels the ``agreement`` figure counts against; None: not reported.
        report_source_agreement: False where ``reference`` is the source already
            (``python -m export verify``), so the same figure is not reported twice.
        failures: Failures found before judging (manifest labels), already naming it.
        batch_outputs: A bundle's logits on the same texts run in batches (``outputs`` are one
            text per call); they must give every text the same label and logits within
            :func:`runtime.classifier.golden_atol` of its precision. None: not checked.
        float_ops: The float ops of a bundle's model graph; None for PyTorch models.
    """

    name: str
    format: str
    precision: str
    model: str
    size_bytes: int
    latency: Latencies
    outputs: Outputs
    source: str = ""
    source_outputs: Outputs | None = None
    reference: Outputs | None = None
    report_source_agreement: bool = True
    checks: Checks = field(default_factory=Checks)
    notes: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    batch_outputs: Outputs | None = None
    float_ops: FloatOps | None = None


def parity_tolerance(arch: Arch, backend: str) -> float:
    """The max |logit Δ| an fp32 export for ``backend`` (``onnx`` / ``tflite``) may show against PyTorch."""
    return arch.onnx_atol if backend == Format.ONNX.value else arch.tflite_atol


def judge(s: Subject, data: LabelledTexts, cfg: VerifyConfig) -> ArtifactResult:
    """Measures one model or bundle against its source and decides whether it passes.

    Raises:
        DataError: a label in the data is not one of its (or its source's) labels.
    """
    acc = accuracy(s.outputs, data, s.name)
    delta = drop = with_source = None
    failures = list(s.failures)
    gate: list[str] = []
    if s.source_outputs is not None:
        delta = max_abs_delta(s.outputs, s.source_outputs)
        drop = 100.0 * (accuracy(s.source_outputs, data, s.source) - acc)
        with_source = agreement(s.outputs, s.source_outputs)
        tol = s.checks.tolerance
        if tol is not None and delta is not None and not delta <= tol:  # NaN fails too
            failures.append(f"{s.name}: max |logit Δ| vs {s.source} = {delta:.3g} > tolerance {tol:g}")
        missed = limit_failures(acc, drop, with_source, s.source, s.checks)
        if s.checks.gated:
            gate = missed
        else:
            failures += [f"{s.name}: {m}" for m in missed]
    batch_delta, batch_changes = _batch_invariance(s, failures)
    final, skipped = apply_gate(s.name, failures, gate, cfg.on_gate_fail)
    first = cfg.latency_threads[0]
    return ArtifactResult(
        name=s.name,
        format=s.format,
        precision=s.precision,
        model=s.model,
        source=s.source,
        size_bytes=s.size_bytes,
        accuracy=acc,
        agreement=None if s.reference is None else agreement(s.outputs, s.reference),
        max_abs_delta=delta,
        tolerance=s.checks.tolerance,
        accuracy_drop=drop,
        p50_ms=s.latency[latency_key(first)]["p50_ms"],
        p90_ms=s.latency[latency_key(first)]["p90_ms"],
        threads=first,
        failures=final,
        latency=s.latency,
        skipped=skipped,
        notes=s.notes,
        source_agreement=with_source if s.report_source_agreement else None,
        batch_max_delta=batch_delta,
        batch_label_changes=batch_changes,
        integer=None if s.float_ops is None else s.float_ops.describe(limit=3),
        float_ops=None if s.float_ops is None else s.float_ops.count,
    )


def _batch_invariance(s: Subject, failures: list[str]) -> tuple[float | None, int | None]:
    """Max |logit Δ| and label changes between batched and one-per-call outputs; appends the failure.

    Not an accuracy-gate failure: a result that depends on batch-mates is wrong whatever its
    accuracy, so ``on_gate_fail = skip`` does not waive it.
    """
    if s.batch_outputs is None:
        return None, None
    delta = float(np.max(np.abs(s.batch_outputs.logits - s.outputs.logits)))  # one model: same label order
    changes = int((s.batch_outputs.predicted() != s.outputs.predicted()).sum())
    tol = golden_atol(s.precision)
    if changes or not delta <= tol:  # NaN fails too
        failures.append(
            f"{s.name}: its result depends on what a text is batched with — {changes} of "
            f"{len(s.outputs.logits)} texts change label and max |logit Δ| is {delta:.3g} (tolerance {tol:g}) "
            f"between one text per call and batches of mixed lengths; a phone classifying one text at a "
            f"time would not get what the batched run measures (runtime.classifier.batch_dependent lists "
            f"the models the runtime must run one text per call)"
        )
    return delta, changes


def limit_failures(acc: float, drop: float, with_source: float, source: str, checks: Checks) -> list[str]:
    """Agreement and accuracy-drop failures against ``source`` (without the artifact's name)."""
    out = []
    if checks.min_agreement is not None and not with_source >= checks.min_agreement:
        out.append(f"agreement with {source} is {100 * with_source:.2f}% < minimum {100 * checks.min_agreement:.2f}%")
    if checks.max_drop is not None and not drop <= checks.max_drop:
        out.append(
            f"accuracy {100 * acc:.2f}% is {drop:.2f} points below {source} ({checks.drop_limit} {checks.max_drop:g})"
        )
    return out


def apply_gate(
    name: str, failures: Sequence[str], gate: Sequence[str], action: GateAction
) -> tuple[tuple[str, ...], str]:
    """Decides what an artifact's accuracy-gate failures do.

    Args:
        name: The artifact (failure messages start with it).
        failures: Failures no action can waive (parity, labels); already prefixed with ``name``.
        gate: Accuracy-gate failures of a quantized artifact (without the name).
        action: ``fail`` makes gate failures ordinary failures; ``skip`` turns them into the
            reason the artifact is left out — but only when nothing else failed, so skip never
            hides a parity failure.

    Returns:
        The failures and the skip reason (empty when not skipped).
    """
    if gate and not failures and action is GateAction.SKIP:
        return (), "accuracy gate: " + "; ".join(gate)
    return (*failures, *(f"{name}: {g}" for g in gate)), ""
