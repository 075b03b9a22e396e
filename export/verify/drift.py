"""Drift checks: a run's results (and logit sample) against an earlier report.json.

Accuracy, agreement, max |logit Δ|, the first texts' logits and the p50 latency at the
baseline's thread count are compared, artifact by artifact, each against its tolerance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from export.errors import ConfigError
from runtime.classifier import golden_atol

if TYPE_CHECKING:
    from export.report.document import Report
    from export.verify.outputs import Outputs


@dataclass(frozen=True)
class DriftTolerance:
    """How far a result may move from the baseline before the check fails.

    Attributes:
        points: Accuracy and agreement, absolute points, either direction (a change either
            way means the outputs changed; update the baseline when that is intended).
        logits_float: Max |logit Δ| of float models, absolute (runtime selftest's 1e-3).
        logits_quantized: Same for int8 models (1e-2: above the drift of int8 logits across CPUs,
            below the int8-vs-fp32 error it must detect; measured in tests/baselines/README.md).
        slowdown: Relative p50 increase allowed (0.5 = +50%); a speed-up never fails.
    """

    points: float = 1.0
    logits_float: float = golden_atol("fp32")
    logits_quantized: float = 1e-2
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


def drift_table(checks: Sequence[DriftCheck]) -> str:
    """Drift checks as Markdown: baseline against current, and what is allowed."""
    rows = ["| artifact | check | baseline | current | allowed | verdict |", "|---|---|---|---|---|---|"]
    for d in checks:
        what, base, current, allowed = d.cells()
        rows.append(
            f"| {d.artifact} | {what} | {base} | {current} | {allowed} | {'pass' if d.passed else '**FAIL**'} |"
        )
    return "\n".join(rows) + "\n"


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
