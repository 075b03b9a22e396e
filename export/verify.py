"""Verification: every artifact against its PyTorch source and the fp32 teacher.

Exported bundles are run through :mod:`runtime` — the code that ships — so the check
covers the tokenizer, input binding and padding as well as the model file.

:func:`verify` checks what the pipeline just exported; :func:`verify_bundles` checks bundles
on disk against reference model folders (``python -m export verify``); :func:`choose` picks
the bundle for a latency / size budget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.architectures import arch_for
from export.artifacts import Artifact, Format
from export.config import VerifyConfig
from export.data import Split
from export.errors import ConfigError, DataError, ModelLoadError
from export.models import Classifier, torch_logits
from runtime import Manifest, TextClassifier, load_manifest


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
    agreement: float | None
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


@dataclass(frozen=True)
class BundleRun:
    """One bundle run through :class:`runtime.TextClassifier`."""

    manifest: Manifest
    logits: np.ndarray
    latency: tuple[float, float]
    size_bytes: int


def run_bundle(bundle: Path, texts: Sequence[str], sample: Sequence[str], threads: int) -> BundleRun:
    """Logits of ``texts`` (all cores) and p50 / p90 latency of one text per call over ``sample``.

    Raises:
        BundleError: the bundle is missing, invalid or tampered with.
    """
    fast = TextClassifier.load(bundle, threads=os.cpu_count() or 1)
    single = TextClassifier.load(bundle, threads=threads)
    latency = latency_ms(lambda t: single.logits([t]), sample)
    return BundleRun(fast.manifest, fast.logits(texts), latency, (bundle / fast.manifest.model_file).stat().st_size)


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
        run = run_bundle(bundles[art.name], texts, sample, cfg.threads)
        logits[art.name] = run.logits
        results.append(result(art.name, art, by_name[art.model], run.latency, run.size_bytes))
    return results, logits


# --- python -m export verify: bundles on disk against reference model folders ---------------


@dataclass(frozen=True)
class Gates:
    """Thresholds every bundle must meet against its reference.

    Attributes:
        max_drop: Max accuracy drop in points against the reference.
        min_agreement: Min fraction of texts labelled as the reference labels them.
        threads: Threads for the latency figures (batch 1, one text per call).
        latency_samples: Texts timed per artifact.
    """

    max_drop: float = 1.0
    min_agreement: float = 0.99
    threads: int = 1
    latency_samples: int = 50

    def __post_init__(self) -> None:
        checks = {
            "max_drop": (self.max_drop >= 0, ">= 0 (points)"),
            "min_agreement": (0 <= self.min_agreement <= 1, "a fraction in [0, 1], e.g. 0.99"),
            "threads": (self.threads >= 1, ">= 1"),
            "latency_samples": (self.latency_samples >= 1, ">= 1"),
        }
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ConfigError(f"{name}={getattr(self, name)!r} is invalid; allowed: {allowed}")


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with their label names, as read from a data file."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Outputs:
    """What one model or bundle said about every text: logits and the label of each column."""

    labels: tuple[str, ...]
    logits: np.ndarray

    def predicted(self) -> np.ndarray:
        """The predicted label of each text (canonical names, see :func:`_canonical`)."""
        return np.asarray([_canonical(x) for x in self.labels])[self.logits.argmax(-1)]


def load_reference(path: Path) -> Classifier:
    """Loads a ``save_pretrained`` classifier folder; its name is the folder name.

    Raises:
        ModelLoadError: the folder holds no loadable model and fast tokenizer.
        UnsupportedArchitectureError: its ``model_type`` is not in the architecture table.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: PLC0415

    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"reference {path} has no config.json; pass a save_pretrained folder like out/models/teacher"
        )
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load reference model {path}: {e}") from None
    arch = arch_for(model.config.model_type)
    labels = tuple(str(model.config.id2label[i]) for i in range(model.config.num_labels))
    return Classifier(path.name, model, tokenizer, path, arch, labels)


def verify_bundles(
    bundles: Sequence[Path], references: Sequence[Classifier], data: LabelledTexts, gates: Gates
) -> tuple[list[ArtifactResult], dict[str, Outputs]]:
    """Checks bundles on disk on labelled texts, each against the reference it was exported from.

    A bundle's reference is the one whose folder name is the manifest's ``source_model``, or
    the only reference given. Every bundle must label the texts like its reference
    (``min_agreement``) and lose at most ``max_drop`` points of accuracy; an fp32 bundle of
    the reference model itself must also match its logits within the architecture's
    tolerance. Manifest labels must equal the reference's ``id2label`` in order. Labels are
    compared by name, so a label-order mix-up also collapses accuracy and agreement.

    Args:
        bundles: Bundle directories; each one's name is the artifact name.
        references: PyTorch reference models (may be empty: then accuracy is all that is measured).
        data: Texts with label names matching the bundles' labels.
        gates: Thresholds and latency settings.

    Returns:
        One result per reference, then one per bundle, and the outputs of each by name.

    Raises:
        ConfigError: two artifacts share a name, or a bundle has no matching reference.
        DataError: a label in the data is not one of a model's labels.
        BundleError: a bundle is missing, invalid or tampered with.
    """
    names = [r.name for r in references] + [b.name for b in bundles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two artifacts are named {dupes[0]!r}; bundle and reference folder names must be unique")
    manifests = [load_manifest(b) for b in bundles]
    pairs = [_reference_for(b.name, m, references) for b, m in zip(bundles, manifests, strict=True)]
    truth = np.asarray([_canonical(x) for x in data.labels])
    sample = data.texts[: gates.latency_samples]
    outputs: dict[str, Outputs] = {}
    ref_logits: dict[tuple[str, int], np.ndarray] = {}

    def reference_outputs(ref: Classifier, max_length: int) -> Outputs:
        if (ref.name, max_length) not in ref_logits:
            ref_logits[ref.name, max_length] = torch_logits(ref, data.texts, max_length)
        return Outputs(ref.label_names, ref_logits[ref.name, max_length])

    results: list[ArtifactResult] = []
    for ref in references:
        n = next((m.max_length for m, r in zip(manifests, pairs, strict=True) if r is ref), manifests[0].max_length)
        out = outputs[ref.name] = reference_outputs(ref, n)
        p50, p90 = _torch_latency(ref, sample, n, gates.threads)
        size = sum(f.stat().st_size for f in ref.path.iterdir() if f.suffix in (".safetensors", ".bin"))
        acc = _accuracy(out, truth, ref.name, data.source)
        results.append(
            ArtifactResult(
                name=ref.name,
                format=Format.PYTORCH.value,
                precision="fp32",
                model=ref.name,
                source="",
                size_bytes=size,
                accuracy=acc,
                agreement=None,
                max_abs_delta=None,
                tolerance=None,
                accuracy_drop=None,
                p50_ms=p50,
                p90_ms=p90,
                threads=gates.threads,
            )
        )
    for bundle, m, ref in zip(bundles, manifests, pairs, strict=True):
        run = run_bundle(bundle, data.texts, sample, gates.threads)
        out = outputs[bundle.name] = Outputs(m.labels, run.logits)
        acc = _accuracy(out, truth, bundle.name, data.source)
        agreement = delta = tol = drop = None
        failures: list[str] = []
        if ref is not None:
            ref_out = reference_outputs(ref, m.max_length)
            agreement, delta, failures = _against_reference(bundle.name, m, out, ref, ref_out, gates)
            drop = 100.0 * (_accuracy(ref_out, truth, ref.name, data.source) - acc)
            if m.precision == "fp32" and m.source_model == ref.name and m.model_type == ref.model_type:
                tol = ref.arch.onnx_atol if m.backend == Format.ONNX.value else ref.arch.tflite_atol
                if delta is not None and not delta <= tol:  # NaN fails too
                    failures.append(f"{bundle.name}: max |logit Δ| vs {ref.name} = {delta:.3g} > tolerance {tol:g}")
            if not drop <= gates.max_drop:
                failures.append(
                    f"{bundle.name}: accuracy {100 * acc:.2f}% is {drop:.2f} points below {ref.name} "
                    f"(max drop {gates.max_drop:g})"
                )
        results.append(
            ArtifactResult(
                name=bundle.name,
                format=m.backend,
                precision=m.precision,
                model=m.source_model or (ref.name if ref else ""),
                source=ref.name if ref else "",
                size_bytes=run.size_bytes,
                accuracy=acc,
                agreement=agreement,
                max_abs_delta=delta,
                tolerance=tol,
                accuracy_drop=drop,
                p50_ms=run.latency[0],
                p90_ms=run.latency[1],
                threads=gates.threads,
                failures=tuple(failures),
            )
        )
    return results, outputs


def _reference_for(name: str, m: Manifest, references: Sequence[Classifier]) -> Classifier | None:
    if not references:
        return None
    by_name = {r.name: r for r in references}
    if m.source_model in by_name:
        return by_name[m.source_model]
    if len(references) == 1:
        return references[0]
    raise ConfigError(
        f"bundle {name} was exported from {m.source_model!r}, but no reference folder has that name "
        f"(given: {', '.join(by_name)}); pass the folder it was exported from with --reference"
    )


def _against_reference(
    name: str, m: Manifest, out: Outputs, ref: Classifier, ref_out: Outputs, gates: Gates
) -> tuple[float, float | None, list[str]]:
    """Agreement and max |logit Δ| (columns matched by label name) against the reference."""
    failures = []
    if m.labels != ref.label_names:
        same_set = sorted(m.labels) == sorted(ref.label_names)
        failures.append(
            f"{name}: manifest labels {list(m.labels)} differ from {ref.name}'s id2label {list(ref.label_names)}"
            + (" (same labels in another order: a label-order mix-up)" if same_set else "")
        )
    delta = None
    if sorted(m.labels) == sorted(ref.label_names):
        columns = [m.labels.index(label) for label in ref.label_names]
        delta = float(np.max(np.abs(out.logits[:, columns] - ref_out.logits)))
    agreement = float((out.predicted() == ref_out.predicted()).mean())
    if not agreement >= gates.min_agreement:
        failures.append(
            f"{name}: agreement with {ref.name} is {100 * agreement:.2f}% < minimum {100 * gates.min_agreement:.2f}%"
        )
    return agreement, delta, failures


def _canonical(label: str) -> str:
    """Label names compare as integers when they are integers ("01" is "1")."""
    text = label.strip()
    try:
        return str(int(text))
    except ValueError:
        return text


def _accuracy(out: Outputs, truth: np.ndarray, who: str, source: str) -> float:
    known = {_canonical(x) for x in out.labels}
    unknown = sorted(set(truth.tolist()) - known)
    if unknown:
        raise DataError(
            f"{source}: label {unknown[0]!r} is not one of {who}'s labels {list(out.labels)}; "
            "pass data labelled like the model (or the right --label-column)"
        )
    return float((out.predicted() == truth).mean())


@dataclass(frozen=True)
class Confusion:
    """Counts of (true label, predicted label) for one artifact; rows are true labels."""

    artifact: str
    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


def confusion(artifact: str, out: Outputs, labels: Sequence[str]) -> Confusion:
    """The confusion matrix of ``out`` against the true ``labels`` (names), in the model's label order."""
    names = [_canonical(x) for x in out.labels]
    index = {n: i for i, n in enumerate(names)}
    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    for t, p in zip(labels, out.predicted(), strict=True):
        counts[index[_canonical(t)], index[p]] += 1
    return Confusion(artifact, out.labels, tuple(tuple(int(x) for x in row) for row in counts))


@dataclass(frozen=True)
class Choice:
    """The bundle picked for a budget (``name`` None when none qualifies) and why."""

    name: str | None
    reason: str
    budget_ms: float | None = None
    budget_mb: float | None = None

    @property
    def failure(self) -> str | None:
        """The reason, when a budget was set and no verified bundle meets it."""
        budgeted = self.budget_ms is not None or self.budget_mb is not None
        return self.reason if self.name is None and budgeted else None


def choose(
    results: Sequence[ArtifactResult],
    bundles: Collection[str],
    failed: Collection[str],
    budget_ms: float | None = None,
    budget_mb: float | None = None,
) -> Choice:
    """Picks the most accurate verified bundle with p50 ≤ ``budget_ms`` and size ≤ ``budget_mb``.

    Ties go to the faster, then the smaller one. "Verified" means it is in ``bundles`` and not
    in ``failed`` (threshold and drift failures). Latency is the p50 measured here, at
    ``ArtifactResult.threads`` threads.
    """
    limits = [f"p50 ≤ {budget_ms:g} ms" if budget_ms is not None else "", f"≤ {budget_mb:g} MB" if budget_mb else ""]
    within = "within " + " and ".join(x for x in limits if x) if any(limits) else "(no budget given)"
    fits, left_out = [], []
    for r in results:
        if r.name not in bundles:
            continue
        why = ["failed verification"] if r.name in failed else []
        if budget_ms is not None and not r.p50_ms <= budget_ms:
            why.append(f"p50 {r.p50_ms:.2f} ms > {budget_ms:g}")
        if budget_mb is not None and not r.size_bytes / 1e6 <= budget_mb:
            why.append(f"{r.size_bytes / 1e6:.1f} MB > {budget_mb:g}")
        (left_out.append(f"{r.name} ({', '.join(why)})") if why else fits.append(r))
    rest = f"; left out: {'; '.join(left_out)}" if left_out else ""
    if not fits:
        return Choice(None, f"no verified bundle {within}{rest}", budget_ms, budget_mb)
    best = max(fits, key=lambda r: (r.accuracy, -r.p50_ms, -r.size_bytes))
    reason = (
        f"{best.name}: the most accurate ({100 * best.accuracy:.2f}%) of {len(fits)} verified bundle(s) "
        f"{within}, at p50 {best.p50_ms:.2f} ms ({best.threads} thread) and {best.size_bytes / 1e6:.1f} MB{rest}"
    )
    return Choice(best.name, reason, budget_ms, budget_mb)
