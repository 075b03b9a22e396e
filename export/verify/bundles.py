"""``python -m export verify``'s checks: bundles on disk against reference model folders.

Every bundle runs through :mod:`runtime` on labelled texts and is compared, by label name,
with the PyTorch model it was exported from. A quantized bundle's accuracy drop and label
agreement against that reference are its accuracy gate: with ``on_gate_fail = skip`` a bundle
that fails only the gate is reported as left out instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.architectures import arch_for
from export.artifacts import Format
from export.classifier import Classifier, torch_logits
from export.errors import ConfigError, DataError, ModelLoadError
from export.verify.engine import ArtifactResult, apply_gate, latency_figures, run_bundle
from export.verify.latency import torch_latency
from quantize.modes import GateAction
from runtime import Manifest, load_manifest


@dataclass(frozen=True)
class Gates:
    """Thresholds every bundle must meet against its reference.

    Attributes:
        max_drop: Max accuracy drop in points against the reference.
        min_agreement: Min fraction of texts labelled as the reference labels them.
        latency_threads: Thread counts the latency figures are measured at (batch 1, one
            text per call); the first one's p50 is what budgets and drift checks use.
        latency_samples: Texts timed per artifact.
        on_gate_fail: What a quantized bundle beyond ``max_drop`` / ``min_agreement`` does:
            ``fail`` the run, or ``skip`` (reported as left out, exit 0).
    """

    max_drop: float = 1.0
    min_agreement: float = 0.99
    latency_threads: tuple[int, ...] = (1, 2)
    latency_samples: int = 50
    on_gate_fail: GateAction = GateAction.FAIL

    def __post_init__(self) -> None:
        checks = {
            "max_drop": (self.max_drop >= 0, ">= 0 (points)"),
            "min_agreement": (0 <= self.min_agreement <= 1, "a fraction in [0, 1], e.g. 0.99"),
            "latency_threads": (
                bool(self.latency_threads) and all(n >= 1 for n in self.latency_threads),
                "one or more thread counts >= 1, e.g. 1,2",
            ),
            "latency_samples": (self.latency_samples >= 1, ">= 1"),
            "on_gate_fail": (self.on_gate_fail in tuple(GateAction), ", ".join(GateAction)),
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
    (``min_agreement``) and lose at most ``max_drop`` points of accuracy — for a quantized
    bundle that is the accuracy gate, subject to ``on_gate_fail``; an fp32 bundle of the
    reference model itself must also match its logits within the architecture's tolerance.
    Manifest labels must equal the reference's ``id2label`` in order. Labels are compared by
    name, so a label-order mix-up also collapses accuracy and agreement.

    Args:
        bundles: Bundle directories; each one's name is the artifact name.
        references: PyTorch reference models (may be empty: then accuracy is all that is measured).
        data: Texts with label names matching the bundles' labels.
        gates: Thresholds, the gate action and latency settings.

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
        lat = torch_latency(ref, sample, n, gates.latency_threads)
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
                **latency_figures(lat, gates.latency_threads),
            )
        )
    for bundle, m, ref in zip(bundles, manifests, pairs, strict=True):
        run = run_bundle(bundle, data.texts, sample, gates.latency_threads)
        out = outputs[bundle.name] = Outputs(m.labels, run.logits)
        acc = _accuracy(out, truth, bundle.name, data.source)
        agreement = delta = tol = drop = None
        failures: list[str] = []
        gate: list[str] = []
        if ref is not None:
            ref_out = reference_outputs(ref, m.max_length)
            agreement, delta, failures = _against_reference(bundle.name, m, out, ref, ref_out)
            drop = 100.0 * (_accuracy(ref_out, truth, ref.name, data.source) - acc)
            if m.precision == "fp32" and m.source_model == ref.name and m.model_type == ref.model_type:
                tol = ref.arch.onnx_atol if m.backend == Format.ONNX.value else ref.arch.tflite_atol
                if delta is not None and not delta <= tol:  # NaN fails too
                    failures.append(f"{bundle.name}: max |logit Δ| vs {ref.name} = {delta:.3g} > tolerance {tol:g}")
            gate = _gate(agreement, drop, acc, ref.name, gates)
            if m.precision == "fp32":  # only a quantized bundle's loss is a gate decision
                failures += [f"{bundle.name}: {g}" for g in gate]
                gate = []
        final, skipped = apply_gate(bundle.name, failures, gate, gates.on_gate_fail)
        notes = m.metrics.get("notes") or ()
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
                failures=final,
                skipped=skipped,
                notes=tuple(str(n) for n in notes),
                **latency_figures(run.latency, gates.latency_threads),
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
    name: str, m: Manifest, out: Outputs, ref: Classifier, ref_out: Outputs
) -> tuple[float, float | None, list[str]]:
    """Agreement, max |logit Δ| (columns matched by label name) and label failures against the reference."""
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
    return agreement, delta, failures


def _gate(agreement: float, drop: float, acc: float, ref: str, gates: Gates) -> list[str]:
    """Agreement and accuracy-drop failures against the reference (without the artifact's name)."""
    out = []
    if not agreement >= gates.min_agreement:
        out.append(f"agreement with {ref} is {100 * agreement:.2f}% < minimum {100 * gates.min_agreement:.2f}%")
    if not drop <= gates.max_drop:
        out.append(f"accuracy {100 * acc:.2f}% is {drop:.2f} points below {ref} (max drop {gates.max_drop:g})")
    return out


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
