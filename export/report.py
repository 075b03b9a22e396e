"""report.json and report.md: the verify table, the data used and the time each stage took."""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.verify import ArtifactResult

REPORT_VERSION = 1


@dataclass(frozen=True)
class Report:
    """Everything a run proved, and what failed."""

    results: tuple[ArtifactResult, ...]
    data: Mapping[str, Any]
    config: Mapping[str, Any]
    timings_s: Mapping[str, float]
    bundles: tuple[str, ...]

    @property
    def failures(self) -> list[str]:
        return [f for r in self.results for f in r.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_version": REPORT_VERSION,
            "passed": self.passed,
            "failures": self.failures,
            "results": [dataclasses.asdict(r) | {"passed": r.passed} for r in self.results],
            "bundles": list(self.bundles),
            "data": dict(self.data),
            "timings_s": dict(self.timings_s),
            "machine": machine(),
            "config": dict(self.config),
        }


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


def table(results: Sequence[ArtifactResult]) -> str:
    """The verify table as Markdown."""
    head = (
        "| artifact | format | precision | accuracy | agreement w/ teacher | max abs logit Δ vs source (tol) "
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
        verdict = "pass" if r.passed else "**FAIL**"
        rows.append(
            f"| {r.name} | {r.format} | {r.precision} | {100 * r.accuracy:.2f}% | {100 * r.agreement:.2f}% "
            f"| {delta} | {drop} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.size_bytes / 1e6:.1f} | {verdict} |"
        )
    return head + "\n".join(rows) + "\n"


def to_markdown(report: Report) -> str:
    d = report.data
    lines = [
        "# Export report",
        "",
        f"**Result: {'PASSED' if report.passed else 'FAILED'}**",
        "",
        f"Data: {d.get('source')} — labels {d.get('labels')}; train {d.get('train')}, "
        f"validation {d.get('validation')}, eval {d.get('eval')} (eval never trained on).",
    ]
    lines += [f"- {n}" for n in d.get("notes", [])]
    m = machine()
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores. Latency: batch 1, per text, tokenization included, "
        "median (p50) and p90 over eval texts.",
        "",
        table(report.results),
    ]
    if report.failures:
        lines += ["## Failures", ""] + [f"- {f}" for f in report.failures] + [""]
    lines += ["## Bundles", ""] + [f"- `bundles/{b}`" for b in report.bundles] + [""]
    lines += ["## Stage times", ""] + [f"- {k}: {v:.1f} s" for k, v in report.timings_s.items()] + [""]
    return "\n".join(lines)


def write_report(report: Report, out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(to_markdown(report), encoding="utf-8")
