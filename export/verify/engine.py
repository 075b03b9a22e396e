"""Verification of what the pipeline just exported: every artifact against its source.

Exported bundles are run through :mod:`runtime` — the code that ships — so the check
covers the tokenizer, input binding and padding as well as the model file. fp32 exports must
match their PyTorch source's logits within the architecture's tolerance; quantized ones face
the accuracy gate (``max_drop`` points against their fp32 source), whose failure either fails
the run or, with ``on_gate_fail = skip``, leaves the artifact out (:func:`apply_gate`).

:mod:`export.verify.bundles` checks bundles already on disk (``python -m export verify``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.artifacts import Artifact, Format
from export.classifier import Classifier, torch_logits
from export.config import VerifyConfig
from export.data.dataset import Split
from export.verify.latency import Latencies, bundle_latency, latency_key, torch_latency
from quantize.modes import GateAction
from runtime import Manifest, TextClassifier


@dataclass(frozen=True)
class ArtifactResult:
    """Verify's numbers for one artifact (or PyTorch model).

    Attributes:
        accuracy: Fraction correct on the eval split.
        agreement: Fraction of eval texts where its label equals the reference's (the fp32
            teacher in the pipeline); None when there is no reference to agree with.
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

    @property
    def passed(self) -> bool:
        """No check failed. A skipped artifact passed: it is left out, not shipped broken."""
        return not self.failures

    @property
    def status(self) -> str:
        """``fail``, ``skipped`` or ``pass``."""
        return "fail" if self.failures else "skipped" if self.skipped else "pass"


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


def latency_figures(lat: Latencies, threads: Sequence[int]) -> dict[str, object]:
    """The ArtifactResult fields of one artifact's latency: all of it, and the first thread count's."""
    first = lat[latency_key(threads[0])]
    return {"p50_ms": first["p50_ms"], "p90_ms": first["p90_ms"], "threads": threads[0], "latency": lat}


@dataclass(frozen=True)
class BundleRun:
    """One bundle run through :class:`runtime.TextClassifier`."""

    manifest: Manifest
    logits: np.ndarray
    latency: Latencies
    size_bytes: int


def run_bundle(bundle: Path, texts: Sequence[str], sample: Sequence[str], threads: Sequence[int]) -> BundleRun:
    """Logits of ``texts`` (all cores) and p50 / p90 of one text per call over ``sample`` per thread count.

    Raises:
        BundleError: the bundle is missing, invalid or tampered with.
    """
    fast = TextClassifier.load(bundle, threads=os.cpu_count() or 1)
    latency = bundle_latency(bundle, sample, threads)
    return BundleRun(fast.manifest, fast.logits(texts), latency, (bundle / fast.manifest.model_file).stat().st_size)


def verify(
    models: Sequence[Classifier],
    artifacts: Sequence[Artifact],
    bundles: Mapping[str, Path],
    data: Split,
    cfg: VerifyConfig,
    max_length: int,
) -> tuple[list[ArtifactResult], dict[str, np.ndarray]]:
    """Checks every PyTorch model and bundle on the eval split; collects all failures.

    Args:
        models: The PyTorch models; the first is the fp32 reference (the teacher).
        artifacts: Exported artifacts; each one's ``source`` names a model or another artifact.
        bundles: Artifact name → its bundle directory (run through :class:`runtime.TextClassifier`).
        data: The eval split (never trained on).
        cfg: Thresholds, the gate action and latency settings.
        max_length: Truncation length the PyTorch models are evaluated with.

    Returns:
        One result per model and artifact, in order, and the eval logits of each by name.
    """
    texts, labels = list(data.texts), data.labels
    sample = texts[: cfg.latency_samples]
    logits: dict[str, np.ndarray] = {}
    results: list[ArtifactResult] = []
    by_name = {m.name: m for m in models}
    reference = models[0]
    for clf in models:
        logits[clf.name] = torch_logits(clf, texts, max_length)
    ref_labels = logits[reference.name].argmax(-1)

    def result(name: str, art: Artifact | None, clf: Classifier, lat: Latencies, size: int) -> ArtifactResult:
        got = logits[name]
        acc = float((got.argmax(-1) == labels).mean())
        source = art.source if art else ("" if clf is reference else reference.name)
        delta = drop = tol = source_agreement = None
        failures: list[str] = []
        gate: list[str] = []
        if source:
            delta = float(np.max(np.abs(got - logits[source])))
            drop = 100.0 * (float((logits[source].argmax(-1) == labels).mean()) - acc)
            source_agreement = float((got.argmax(-1) == logits[source].argmax(-1)).mean())
        if art is not None and not art.quantized:
            tol = clf.arch.onnx_atol if art.format is Format.ONNX else clf.arch.tflite_atol
            if not delta <= tol:  # NaN fails too
                failures.append(f"{name}: max |logit Δ| vs {source} = {delta:.3g} > tolerance {tol:g}")
        if art is not None and art.quantized and not drop <= cfg.max_drop:
            gate.append(f"accuracy {100 * acc:.2f}% is {drop:.2f} points below {source} (max drop {cfg.max_drop:g})")
        if art is None and source and cfg.max_student_drop is not None and not drop <= cfg.max_student_drop:
            failures.append(
                f"{name}: accuracy {100 * acc:.2f}% is {drop:.2f} points below {source} "
                f"(max student drop {cfg.max_student_drop:g})"
            )
        final, skipped = apply_gate(name, failures, gate, cfg.on_gate_fail)
        return ArtifactResult(
            name=name,
            format=art.format.value if art else Format.PYTORCH.value,
            precision=art.precision if art else "fp32",
            model=clf.name,
            source=source,
            size_bytes=size,
            accuracy=acc,
            agreement=float((got.argmax(-1) == ref_labels).mean()),
            max_abs_delta=delta,
            tolerance=tol,
            accuracy_drop=drop,
            failures=final,
            skipped=skipped,
            notes=art.notes if art else (),
            source_agreement=source_agreement,
            **latency_figures(lat, cfg.latency_threads),
        )

    for clf in models:
        lat = torch_latency(clf, sample, max_length, cfg.latency_threads)
        results.append(result(clf.name, None, clf, lat, (clf.path / "model.safetensors").stat().st_size))
    for art in artifacts:
        run = run_bundle(bundles[art.name], texts, sample, cfg.latency_threads)
        logits[art.name] = run.logits
        results.append(result(art.name, art, by_name[art.model], run.latency, run.size_bytes))
    return results, logits
