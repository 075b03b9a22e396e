"""Verification: every artifact against its PyTorch source and the fp32 teacher.

Exported bundles are run through :mod:`runtime` — the code that ships — so the check
covers the tokenizer, input binding and padding as well as the model file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.artifacts import Artifact, Format
from export.config import VerifyConfig
from export.data import Split
from export.models import Classifier, torch_logits
from runtime import TextClassifier


@dataclass(frozen=True)
class ArtifactResult:
    """Verify's numbers for one artifact (or PyTorch model).

    Attributes:
        accuracy: Fraction correct on the eval split.
        agreement: Fraction of eval texts where its label equals the fp32 teacher's.
        max_abs_delta: Max |logit Δ| against ``source`` over the eval split (None for sources).
        tolerance: The parity bound ``max_abs_delta`` must meet (fp32 exports), else None.
        accuracy_drop: Points lost against ``source`` (positive = worse), None for sources.
        p50_ms / p90_ms: Per-text latency at batch 1 with ``threads`` threads, tokenization included.
        failures: Why it failed; empty when it passed.
    """

    name: str
    format: str
    precision: str
    model: str
    source: str
    size_bytes: int
    accuracy: float
    agreement: float
    max_abs_delta: float | None
    tolerance: float | None
    accuracy_drop: float | None
    p50_ms: float
    p90_ms: float
    threads: int
    failures: tuple[str, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return not self.failures


def latency_ms(predict_one: Callable[[str], Any], texts: Sequence[str]) -> tuple[float, float]:
    """p50 and p90 wall time in ms of ``predict_one(text)`` over ``texts`` after 3 warm-up calls."""
    for t in texts[:3]:
        predict_one(t)
    times = []
    for t in texts:
        start = time.perf_counter()
        predict_one(t)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def _torch_latency(clf: Classifier, texts: Sequence[str], max_length: int, threads: int) -> tuple[float, float]:
    import torch  # noqa: PLC0415

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return latency_ms(lambda t: torch_logits(clf, [t], max_length), texts)
    finally:
        torch.set_num_threads(previous)


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
        cfg: Thresholds and latency settings.
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

    def result(name: str, art: Artifact | None, clf: Classifier, lat: tuple[float, float], size: int) -> ArtifactResult:
        got = logits[name]
        acc = float((got.argmax(-1) == labels).mean())
        source = art.source if art else ("" if clf is reference else reference.name)
        delta = drop = tol = None
        failures: list[str] = []
        if source:
            delta = float(np.max(np.abs(got - logits[source])))
            drop = 100.0 * (float((logits[source].argmax(-1) == labels).mean()) - acc)
        if art is not None and not art.quantized:
            tol = clf.arch.onnx_atol if art.format is Format.ONNX else clf.arch.tflite_atol
            if not delta <= tol:  # NaN fails too
                failures.append(f"{name}: max |logit Δ| vs {source} = {delta:.3g} > tolerance {tol:g}")
        if art is not None and art.quantized and not drop <= cfg.max_drop:
            failures.append(
                f"{name}: accuracy {100 * acc:.2f}% is {drop:.2f} points below {source} (max drop {cfg.max_drop:g})"
            )
        if art is None and source and cfg.max_student_drop is not None and not drop <= cfg.max_student_drop:
            failures.append(
                f"{name}: accuracy {100 * acc:.2f}% is {drop:.2f} points below {source} "
                f"(max student drop {cfg.max_student_drop:g})"
            )
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
            p50_ms=lat[0],
            p90_ms=lat[1],
            threads=cfg.threads,
            failures=tuple(failures),
        )

    for clf in models:
        lat = _torch_latency(clf, sample, max_length, cfg.threads)
        results.append(result(clf.name, None, clf, lat, (clf.path / "model.safetensors").stat().st_size))
    for art in artifacts:
        bundle = bundles[art.name]
        fast = TextClassifier.load(bundle, threads=os.cpu_count() or 1)
        logits[art.name] = fast.logits(texts)
        single = TextClassifier.load(bundle, threads=cfg.threads)
        lat = latency_ms(lambda t, c=single: c.logits([t]), sample)
        size = (bundle / fast.manifest.model_file).stat().st_size
        results.append(result(art.name, art, by_name[art.model], lat, size))
    return results, logits
