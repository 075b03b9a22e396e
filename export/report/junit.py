"""JUnit XML of a report, for CI test reports (``python -m export verify --junit``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from export.report.document import Report


def junit_xml(report: Report) -> str:
    """JUnit XML: one test case per artifact (its threshold and drift failures, or why the gate
    left it out, as a skipped case), plus the budget."""
    cases: list[tuple[str, list[str], str]] = []
    for r in report.results:
        drift = [d.failure for d in report.drift if d.artifact == r.name and d.failure]
        cases.append((r.name, [*r.failures, *drift], r.skipped))
    if report.choice is not None and (report.choice.budget_ms is not None or report.choice.budget_mb is not None):
        cases.append(("budget", [report.choice.failure] if report.choice.failure else [], ""))
    failed = sum(1 for _, f, _ in cases if f)
    skipped = sum(1 for _, f, s in cases if s and not f)
    counts = {"tests": str(len(cases)), "failures": str(failed), "skipped": str(skipped)}
    suites = ET.Element("testsuites", name="bert-mobile-kit", **counts)
    suite = ET.SubElement(suites, "testsuite", name=f"export {report.kind}", errors="0", **counts)
    for name, failures, skip in cases:
        case = ET.SubElement(suite, "testcase", classname=f"export.{report.kind}", name=name)
        if failures:
            ET.SubElement(case, "failure", message=failures[0], type="threshold").text = "\n".join(failures)
        elif skip:
            ET.SubElement(case, "skipped", message=skip)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
