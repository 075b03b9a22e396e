"""Verification: every model and bundle run on labelled texts and judged against its source.

One engine for both callers. :func:`verify` checks what the pipeline just exported (it knows
each artifact's source); :func:`verify_bundles` checks bundles already on disk against
reference model folders (``python -m export verify``). Both only gather outputs and say what
each one must prove (:class:`~export.verify.judge.Checks`);
:func:`~export.verify.judge.judge` measures and decides, for every result.

Exported bundles are run through :mod:`runtime` — the code that ships — so the check covers the
tokenizer, input binding and padding as well as the model file. An fp32 export must match its
PyTorch source's logits within the architecture's tolerance; a quantized one faces the accuracy
gate (``max_drop`` points and, when set, ``min_agreement`` against its source), whose failure
either fails the run or, with ``on_gate_fail = skip``, leaves the artifact out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from export.artifacts import Artifact, Format
from export.classifier import Classifier, torch_logits
from export.config import VerifyConfig
from export.data.dataset import Split
from export.errors import ConfigError
from export.verify.judge import ArtifactResult, Checks, Subject, judge, parity_tolerance
from export.verify.latency import Latencies, bundle_latency, torch_latency
from export.verify.outputs import LabelledTexts, Outputs
from quantize.integer_only import FloatOps, float_ops
from runtime import Manifest, TextClassifier, load_manifest

BATCH = 32
"""Texts per call of the batched run every bundle's one-text-per-call logits are compared with."""


@dataclass(frozen=True)
class BundleRun:
    """One bundle run through :class:`runtime.TextClassifier`.

    Attributes:
        logits: One text per call, as a phone classifies: what every check judges.
        batch_logits: The same texts in batches of :data:`BATCH` (mixed lengths, padded), to
            show the result of a text does not depend on its batch-mates.
    """

    manifest: Manifest
    logits: np.ndarray
    batch_logits: np.ndarray
    latency: Latencies
    size_bytes: int
    float_ops: FloatOps


def run_bundle(bundle: Path, texts: Sequence[str], sample: Sequence[str], threads: Sequence[int]) -> BundleRun:
    """Logits of ``texts`` one per call and in batches (all cores), p50 / p90 of one text per
    call over ``sample`` per thread count, and the float ops of the model graph.

    Raises:
        BundleError: the bundle is missing, invalid or tampered with.
    """
    fast = TextClassifier.load(bundle, threads=os.cpu_count() or 1)
    latency = bundle_latency(bundle, sample, threads)
    model = bundle / fast.manifest.model_file
    return BundleRun(
        fast.manifest,
        fast.logits(texts, batch_size=1),
        fast.logits(texts, batch_size=BATCH),
        latency,
        model.stat().st_size,
        float_ops(model),
    )


def verify(
    models: Sequence[Classifier],
    artifacts: Sequence[Artifact],
    bundles: Mapping[str, Path],
    data: Split,
    cfg: VerifyConfig,
    max_length: int,
    derived: Mapping[str, str] | None = None,
) -> tuple[list[ArtifactResult], dict[str, np.ndarray]]:
    """Checks every PyTorch model and bundle on the eval split; collects all failures.

    The student must lose at most ``max_student_drop`` points against the teacher, an fp32
    export match its model's logits (:func:`parity_tolerance`), a quantized one pass the
    accuracy gate against its source (``max_drop``, ``min_agreement``).

    Args:
        models: The PyTorch models; the first is the fp32 reference (the teacher).
        artifacts: Exported artifacts; each one's ``source`` names a model or another artifact.
        bundles: Artifact name → its bundle directory (run through :class:`runtime.TextClassifier`).
        data: The eval split (never trained on).
        cfg: Thresholds, the gate action and latency settings.
        max_length: Truncation length the PyTorch models are evaluated with.
        derived: Model name → the model it was made from without training (the student with a
            trimmed vocabulary → the untrimmed one): judged against it with the accuracy gate's
            thresholds (``max_drop``, ``min_agreement``), whose failure fails the run — every export
            is built on it, so ``on_gate_fail = skip`` cannot leave it out.

    Returns:
        One result per model and artifact, in order, and the eval logits of each by name.
    """
    texts = list(data.texts)
    truth = LabelledTexts(tuple(texts), tuple(str(int(y)) for y in data.labels), "eval split")
    sample = texts[: cfg.latency_samples]
    outputs = {clf.name: Outputs.indexed(torch_logits(clf, texts, max_length)) for clf in models}
    teacher, by_name = models[0], {m.name: m for m in models}
    student = Checks(max_drop=cfg.max_student_drop, drop_limit="max student drop")
    same_model = Checks(max_drop=cfg.max_drop, min_agreement=cfg.min_agreement)
    derived = derived or {}
    results: list[ArtifactResult] = []
    for clf in models:
        subject = replace(
            _torch_subject(clf, outputs[clf.name], sample, max_length, cfg), reference=outputs[teacher.name]
        )
        if clf.name in derived:
            source = derived[clf.name]
            subject = replace(subject, source=source, source_outputs=outputs[source], checks=same_model)
        elif clf is not teacher:
            subject = replace(subject, source=teacher.name, source_outputs=outputs[teacher.name], checks=student)
        results.append(judge(subject, truth, cfg))
    for art in artifacts:
        run = run_bundle(bundles[art.name], texts, sample, cfg.latency_threads)
        out = outputs[art.name] = Outputs.indexed(run.logits)
        subject = Subject(
            art.name,
            art.format.value,
            art.precision,
            art.model,
            run.size_bytes,
            run.latency,
            out,
            source=art.source,
            source_outputs=outputs[art.source],
            reference=outputs[teacher.name],
            checks=_export_checks(art, by_name[art.model], cfg),
            notes=art.notes,
            batch_outputs=Outputs.indexed(run.batch_logits),
            float_ops=run.float_ops,
        )
        results.append(judge(subject, truth, cfg))
    return results, {name: o.logits for name, o in outputs.items()}


def verify_bundles(
    bundles: Sequence[Path], references: Sequence[Classifier], data: LabelledTexts, cfg: VerifyConfig
) -> tuple[list[ArtifactResult], dict[str, Outputs]]:
    """Checks bundles on disk on labelled texts, each against the reference it was exported from.

    A bundle's reference is the one whose folder name is the manifest's ``source_model``, or
    the only reference given. Every bundle must label the texts like its reference
    (``min_agreement``) and lose at most ``max_drop`` points of accuracy — for a quantized
    bundle that is the accuracy gate, subject to ``on_gate_fail``; an fp32 bundle of the
    reference model itself must also match its logits within the architecture's tolerance.
    Manifest labels must equal the reference's ``id2label`` in order. Labels are compared by
    name, so a label-order mix-up also collapses accuracy and agreement.

    Args:
        bundles: Bundle directories; each one's name is the artifact name.
        references: PyTorch reference models (may be empty: then accuracy is all that is measured).
        data: Texts with label names matching the bundles' labels.
        cfg: Thresholds, the gate action and latency settings (``max_student_drop`` is not used).

    Returns:
        One result per reference, then one per bundle, and the outputs of each by name.

    Raises:
        ConfigError: two artifacts share a name, or a bundle has no matching reference.
        DataError: a label in the data is not one of a model's labels.
        BundleError: a bundle is missing, invalid or tampered with.
    """
    manifests, pairs = _pair(bundles, references)
    sample = data.texts[: cfg.latency_samples]
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
        results.append(judge(_torch_subject(ref, out, sample, n, cfg), data, cfg))
    for bundle, m, ref in zip(bundles, manifests, pairs, strict=True):
        run = run_bundle(bundle, data.texts, sample, cfg.latency_threads)
        out = outputs[bundle.name] = Outputs(m.labels, run.logits)
        notes = tuple(str(n) for n in m.metrics.get("notes") or ())
        model = m.source_model or (ref.name if ref else "")
        subject = Subject(
            bundle.name,
            m.backend,
            m.precision,
            model,
            run.size_bytes,
            run.latency,
            out,
            notes=notes,
            batch_outputs=Outputs(m.labels, run.batch_logits),
            float_ops=run.float_ops,
        )
        if ref is not None:
            subject = _against_reference(subject, m, ref, reference_outputs(ref, m.max_length), cfg)
        results.append(judge(subject, data, cfg))
    return results, outputs


def _torch_subject(clf: Classifier, out: Outputs, sample: Sequence[str], max_length: int, cfg: VerifyConfig) -> Subject:
    """A PyTorch model as a :class:`Subject` (a source: judged against nothing yet), with its latency and size."""
    size = sum(f.stat().st_size for f in clf.path.iterdir() if f.suffix in (".safetensors", ".bin"))
    latency = torch_latency(clf, sample, max_length, cfg.latency_threads)
    return Subject(clf.name, Format.PYTORCH.value, "fp32", clf.name, size, latency, out)


def _export_checks(art: Artifact, model: Classifier, cfg: VerifyConfig) -> Checks:
    """An fp32 export must match its model's logits; a quantized one must pass the accuracy gate."""
    if art.quantized:
        return Checks(max_drop=cfg.max_drop, min_agreement=cfg.min_agreement, gated=True)
    return Checks(tolerance=parity_tolerance(model.arch, art.format.value))


def _against_reference(subject: Subject, m: Manifest, ref: Classifier, ref_out: Outputs, cfg: VerifyConfig) -> Subject:
    """A bundle on disk judged against its reference: labels, parity (fp32 of that model) and gate."""
    failures = []
    if m.labels != ref.label_names:
        same_set = sorted(m.labels) == sorted(ref.label_names)
        failures.append(
            f"{subject.name}: manifest labels {list(m.labels)} differ from {ref.name}'s id2label "
            f"{list(ref.label_names)}" + (" (same labels in another order: a label-order mix-up)" if same_set else "")
        )
    own_export = m.precision == "fp32" and m.source_model == ref.name and m.model_type == ref.model_type
    checks = Checks(
        tolerance=parity_tolerance(ref.arch, m.backend) if own_export else None,
        max_drop=cfg.max_drop,
        min_agreement=cfg.min_agreement,
        gated=m.precision != "fp32",  # only a quantized bundle's loss is a gate decision
    )
    return replace(
        subject,
        source=ref.name,
        source_outputs=ref_out,
        reference=ref_out,
        report_source_agreement=False,
        checks=checks,
        failures=tuple(failures),
    )


def _pair(bundles: Sequence[Path], references: Sequence[Classifier]) -> tuple[list[Manifest], list[Classifier | None]]:
    """Each bundle's manifest and reference (:func:`_reference_for`); names must be unique.

    Raises:
        ConfigError: two artifacts share a name, or a bundle has no matching reference.
        BundleError: a manifest is missing, invalid or tampered with.
    """
    names = [r.name for r in references] + [b.name for b in bundles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two artifacts are named {dupes[0]!r}; bundle and reference folder names must be unique")
    manifests = [load_manifest(b) for b in bundles]
    return manifests, [_reference_for(b.name, m, references) for b, m in zip(bundles, manifests, strict=True)]


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
