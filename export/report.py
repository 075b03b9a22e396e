"""report.json, report.md (with charts) and JUnit XML; drift checks against an earlier report.json.

The pipeline and ``python -m export verify`` write the same format: a ``results`` list with
one entry per model or bundle, so either one's report.json can be the baseline of the other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ConfigError
from export.verify import ArtifactResult, Choice, Confusion, Outputs
from runtime.classifier import golden_atol

REPORT_VERSION = 1


@dataclass(frozen=True)
class DriftTolerance:
    """How far a result may move from the baseline before the check fails.

    Attributes:
        points: Accuracy and agreement, absolute points, either direction (a change either
            way means the outputs changed; update the baseline when that is intended).
        logits_float: Max |logit Δ| of float models, absolute (runtime selftest's 1e-3).
        logits_quantized: Same for int8 models, whose kernels differ between CPUs (5e-2).
        slowdown: Relative p50 increase allowed (0.5 = +50%); a speed-up never fails.
    """

    points: float = 1.0
    logits_float: float = golden_atol("fp32")
    logits_quantized: float = golden_atol("int8")
    slowdown: float = 0.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not value >= 0:
                raise ConfigError(f"drift tolerance {f.name}={value!r} is invalid; allowed: >= 0")


# metric → (what it is, how a value reads, how the tolerance reads)
_METRICS = {
    "accuracy": ("accuracy", "{:.2f}%", "±{:g} pts"),
    "agreement": ("agreement", "{:.2f}%", "±{:g} pts"),
    "max_abs_delta": ("max abs logit Δ vs source", "{:.3g}", "±{:g}"),
    "logits": ("max abs logit Δ vs baseline logits", "{:.3g}", "≤ {:g}"),
    "p50_ms": ("p50 latency", "{:.2f} ms", "slowdown ≤ {:.0%}"),
}


@dataclass(frozen=True)
class DriftCheck:
    """One metric of one artifact against the baseline report.

    Accuracy and agreement are in percent. For ``logits`` there is no baseline number:
    ``current`` is already the max |Δ| between this run's and the baseline's logits.
    """

    artifact: str
    metric: str
    baseline: float | None
    current: float
    tolerance: float

    @property
    def passed(self) -> bool:
        if self.baseline is None:  # "logits": current is already the distance to the baseline
            return self.current <= self.tolerance  # NaN fails
        if self.metric == "p50_ms":
            return self.current <= self.baseline * (1 + self.tolerance)
        return abs(self.current - self.baseline) <= self.tolerance

    def cells(self) -> tuple[str, str, str, str]:
        """What is checked, the baseline value, the current value and what is allowed, as text."""
        what, value, allowed = _METRICS[self.metric]
        base = "—" if self.baseline is None else value.format(self.baseline)
        return what, base, value.format(self.current), allowed.format(self.tolerance)

    @property
    def failure(self) -> str | None:
        if self.passed:
            return None
        what, base, current, allowed = self.cells()
        against = "" if self.baseline is None else f" vs baseline {base}"
        return f"{self.artifact}: {what} {current}{against} (allowed {allowed})"


@dataclass(frozen=True)
class Report:
    """Everything a run proved, and what failed.

    Attributes:
        kind: ``export`` (the pipeline) or ``verify``.
        drift: Checks against a baseline report; ``notes`` says what could not be compared.
        choice: The bundle chosen (for a budget) by ``verify``.
        confusion: Confusion matrix of the chosen bundle.
        logit_sample: The first texts' logits of every artifact, for later drift checks.
    """

    results: tuple[ArtifactResult, ...]
    data: Mapping[str, Any]
    config: Mapping[str, Any]
    timings_s: Mapping[str, float]
    bundles: tuple[str, ...]
    kind: str = "export"
    drift: tuple[DriftCheck, ...] = ()
    notes: tuple[str, ...] = ()
    choice: Choice | None = None
    confusion: Confusion | None = None
    logit_sample: Mapping[str, Any] | None = None

    @property
    def failures(self) -> list[str]:
        out = [f for r in self.results for f in r.failures]
        out += [d.failure for d in self.drift if d.failure]
        if self.choice is not None and self.choice.failure:
            out.append(f"budget: {self.choice.failure}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        out = {
            "report_version": REPORT_VERSION,
            "kind": self.kind,
            "passed": self.passed,
            "failures": self.failures,
            "results": [dataclasses.asdict(r) | {"passed": r.passed} for r in self.results],
            "bundles": list(self.bundles),
            "data": dict(self.data),
            "timings_s": dict(self.timings_s),
            "machine": machine(),
            "config": dict(self.config),
        }
        if self.drift or self.notes:
            out["drift"] = [dataclasses.asdict(d) | {"passed": d.passed} for d in self.drift]
            out["drift_notes"] = list(self.notes)
        if self.choice is not None:
            out["choice"] = dataclasses.asdict(self.choice)
        if self.confusion is not None:
            out["confusion"] = dataclasses.asdict(self.confusion)
        if self.logit_sample is not None:
            out["logit_sample"] = dict(self.logit_sample)
        return out


def machine() -> dict[str, Any]:
    """CPU model and core count, so latency figures can be read in context."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os  # noqa: PLC0415

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def table(results: Sequence[ArtifactResult], chosen: str | None = None, reference: str = "teacher") -> str:
    """The verify table as Markdown; the ``chosen`` artifact's name is marked."""
    head = (
        f"| artifact | format | precision | accuracy | agreement w/ {reference} | max abs logit Δ vs source (tol) "
        "| Δacc vs source (pts) | p50 ms (1 thr) | p90 ms | size MB | verdict |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        delta = "—" if r.max_abs_delta is None else f"{r.max_abs_delta:.2e}"
        if r.tolerance is not None:
            delta += f" (≤ {r.tolerance:g})"
        if r.source:
            delta += f" vs {r.source}"
        drop = "—" if r.accuracy_drop is None else f"{r.accuracy_drop:+.2f}"
        agreement = "—" if r.agreement is None else f"{100 * r.agreement:.2f}%"
        verdict = "pass" if r.passed else "**FAIL**"
        name = f"**{r.name}** (chosen)" if r.name == chosen else r.name
        rows.append(
            f"| {name} | {r.format} | {r.precision} | {100 * r.accuracy:.2f}% | {agreement} "
            f"| {delta} | {drop} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.size_bytes / 1e6:.1f} | {verdict} |"
        )
    return head + "\n".join(rows) + "\n"


def drift_table(checks: Sequence[DriftCheck]) -> str:
    """Drift checks as Markdown: baseline against current, and what is allowed."""
    rows = ["| artifact | check | baseline | current | allowed | verdict |", "|---|---|---|---|---|---|"]
    for d in checks:
        what, base, current, allowed = d.cells()
        rows.append(
            f"| {d.artifact} | {what} | {base} | {current} | {allowed} | {'pass' if d.passed else '**FAIL**'} |"
        )
    return "\n".join(rows) + "\n"


def to_markdown(report: Report, charts: Sequence[tuple[str, str]] = (), charts_note: str | None = None) -> str:
    """report.md; ``charts`` are (caption, file name) pairs beside it, ``charts_note`` why there are none."""
    d, m = report.data, machine()
    lines = [f"# {report.kind.capitalize()} report", "", f"**Result: {'PASSED' if report.passed else 'FAILED'}**", ""]
    if report.kind == "export":
        lines.append(
            f"Data: {d.get('source')} — labels {d.get('labels')}; train {d.get('train')}, "
            f"validation {d.get('validation')}, eval {d.get('eval')} (eval never trained on)."
        )
    else:
        lines.append(f"Data: {d.get('source')} — {d.get('rows')} rows, labels {d.get('labels')}.")
    lines += [f"- {n}" for n in d.get("notes", [])]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores. Latency: batch 1, per text, tokenization included, "
        "median (p50) and p90.",
        "",
        table(report.results, report.choice.name if report.choice else None, _reference_name(report)),
    ]
    if report.choice is not None:
        lines += ["## Chosen bundle", "", report.choice.reason, ""]
    lines += [f"![{caption}]({name})\n" for caption, name in charts]
    if charts_note:
        lines += [f"_{charts_note}_", ""]
    if report.drift or report.notes:
        lines += [f"## Drift against the baseline ({report.config.get('baseline')})", "", drift_table(report.drift)]
        lines += [f"- {n}" for n in report.notes] + [""]
    if report.failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in report.failures] + [""]
    if report.kind == "export":
        lines += ["## Bundles", ""] + [f"- `bundles/{b}`" for b in report.bundles] + [""]
    lines += ["## Stage times", ""] + [f"- {k}: {v:.1f} s" for k, v in report.timings_s.items()] + [""]
    return "\n".join(lines)


def _reference_name(report: Report) -> str:
    if report.kind == "export":
        return "teacher"
    refs = report.config.get("references") or []
    return Path(refs[0]).name if len(refs) == 1 else "reference"


def write_report(report: Report, out_dir: Path) -> None:
    """Writes report.json and report.md, and the charts it shows when matplotlib is installed."""
    charts, note = draw_charts(report, out_dir)
    (out_dir / "report.json").write_text(dumps(report.to_dict()), encoding="utf-8")
    (out_dir / "report.md").write_text(to_markdown(report, charts, note), encoding="utf-8")


def dumps(data: Mapping[str, Any]) -> str:
    """Indented JSON with every list of numbers on one line (logit rows, confusion rows)."""
    text = json.dumps(data, indent=2)
    return re.sub(r"\[\s+([-+\d.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def draw_charts(report: Report, out_dir: Path) -> tuple[list[tuple[str, str]], str | None]:
    """pareto.png (and confusion.png for a chosen bundle); returns (caption, file) pairs or why not."""
    from export import charts  # noqa: PLC0415 - matplotlib is an optional extra

    missing = charts.unavailable()
    if missing:
        return [], f"Charts skipped: {missing}"
    choice = report.choice or Choice(None, "")
    pareto = charts.pareto(report.results, out_dir / "pareto.png", choice.name, choice.budget_ms, choice.budget_mb)
    drawn = [("Accuracy against 1-thread p50 latency; marker area is file size", pareto.name)]
    if report.confusion is not None:
        path = charts.confusion_matrix(report.confusion, out_dir / "confusion.png")
        drawn.append((f"Confusion matrix of {report.confusion.artifact}", path.name))
    return drawn, None


def junit_xml(report: Report) -> str:
    """JUnit XML: one test case per artifact (its threshold and drift failures), plus the budget."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    cases: list[tuple[str, list[str]]] = []
    for r in report.results:
        drift = [d.failure for d in report.drift if d.artifact == r.name and d.failure]
        cases.append((r.name, [*r.failures, *drift]))
    if report.choice is not None and (report.choice.budget_ms is not None or report.choice.budget_mb is not None):
        cases.append(("budget", [report.choice.failure] if report.choice.failure else []))
    failed = sum(1 for _, f in cases if f)
    suites = ET.Element("testsuites", name="bert-mobile-kit", tests=str(len(cases)), failures=str(failed))
    suite = ET.SubElement(
        suites, "testsuite", name=f"export {report.kind}", tests=str(len(cases)), failures=str(failed), errors="0"
    )
    for name, failures in cases:
        case = ET.SubElement(suite, "testcase", classname=f"export.{report.kind}", name=name)
        if failures:
            ET.SubElement(case, "failure", message=failures[0], type="threshold").text = "\n".join(failures)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def load_report(path: Path) -> dict[str, Any]:
    """Reads a report.json (the pipeline's or verify's) to use as a baseline.

    Raises:
        ConfigError: the file is missing, not JSON, of a newer version, or has no results.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"baseline {path} does not exist; pass a report.json written by the pipeline or verify"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"baseline {path} is not valid JSON ({e})") from None
    version = data.get("report_version") if isinstance(data, dict) else None
    if not isinstance(version, int) or version > REPORT_VERSION:
        raise ConfigError(f"baseline {path}: report_version {version!r} is not supported (this kit writes 1)")
    results = data.get("results")
    if not isinstance(results, list) or not all(isinstance(r, dict) and "name" in r for r in results):
        raise ConfigError(f"baseline {path} has no 'results' list of named results; is it a report.json?")
    return data


def logit_sample(texts: Sequence[str], outputs: Mapping[str, Outputs], count: int) -> dict[str, Any]:
    """The logits of the first ``count`` texts for every artifact (6 significant digits: enough for 1e-3)."""
    head = list(texts[:count])
    return {
        "texts": len(head),
        "texts_sha256": hashlib.sha256("\n".join(head).encode()).hexdigest(),
        "logits": {
            name: [[float(f"{x:.6g}") for x in row] for row in o.logits[: len(head)]] for name, o in outputs.items()
        },
    }


def drift_checks(
    report: Report, baseline: Mapping[str, Any], tol: DriftTolerance
) -> tuple[list[DriftCheck], list[str]]:
    """Compares a report's results (and logit sample) with a baseline report.json.

    Artifacts are matched by name. Returns the checks and notes on what was not compared.

    Raises:
        ConfigError: the baseline was measured on other texts, or shares no artifact with this run.
    """
    old_data = baseline.get("data") or {}
    if old_data.get("sha256") and report.data.get("sha256") and old_data["sha256"] != report.data["sha256"]:
        raise ConfigError(
            f"the baseline was measured on other texts ({old_data.get('source')}, {old_data.get('rows')} rows); "
            "pass the same --data, columns and --max-samples"
        )
    old = {r["name"]: r for r in baseline["results"]}
    old_logits, new_logits = baseline.get("logit_sample") or {}, report.logit_sample or {}
    same_texts = bool(old_logits) and old_logits.get("texts_sha256") == new_logits.get("texts_sha256")
    checks: list[DriftCheck] = []
    notes = [
        f"{name}: in the baseline, not checked now" for name in old if name not in {r.name for r in report.results}
    ]
    for r in report.results:
        b = old.get(r.name)
        if b is None:
            notes.append(f"{r.name}: not in the baseline (not compared)")
            continue
        logit_tol = tol.logits_float if r.precision == "fp32" else tol.logits_quantized
        checks.append(DriftCheck(r.name, "accuracy", 100 * b["accuracy"], 100 * r.accuracy, tol.points))
        if r.agreement is not None and b.get("agreement") is not None:
            checks.append(DriftCheck(r.name, "agreement", 100 * b["agreement"], 100 * r.agreement, tol.points))
        if r.max_abs_delta is not None and b.get("max_abs_delta") is not None:
            if b.get("source") == r.source:
                checks.append(DriftCheck(r.name, "max_abs_delta", b["max_abs_delta"], r.max_abs_delta, logit_tol))
            else:
                notes.append(f"{r.name}: max abs logit Δ not compared (vs {b.get('source')} there, vs {r.source} here)")
        if same_texts and r.name in old_logits.get("logits", {}) and r.name in new_logits.get("logits", {}):
            delta = _max_abs_diff(old_logits["logits"][r.name], new_logits["logits"][r.name])
            checks.append(DriftCheck(r.name, "logits", None, delta, logit_tol))
        if b.get("threads") == r.threads and b.get("p50_ms") is not None:
            checks.append(DriftCheck(r.name, "p50_ms", b["p50_ms"], r.p50_ms, tol.slowdown))
        else:
            notes.append(f"{r.name}: latency not compared ({b.get('threads')} thread(s) there, {r.threads} here)")
    if old_logits and not same_texts:
        notes.append("logits not compared: the baseline's logit sample comes from other texts")
    if not checks:
        raise ConfigError(
            f"the baseline shares no artifact with this run (baseline: {', '.join(old) or 'none'}; "
            f"now: {', '.join(r.name for r in report.results)})"
        )
    return checks, notes


def _max_abs_diff(a: Any, b: Any) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(x - y))) if x.shape == y.shape else math.inf
