"""The report's charts: the pipeline report gets the Pareto chart, or says why not."""

from __future__ import annotations

from pathlib import Path


def test_the_pipeline_report_gets_the_pareto_chart_or_says_why_not(tmp_path: Path, monkeypatch) -> None:
    from export.report import charts
    from export.report.document import Report, write_report
    from export.verify.judge import ArtifactResult

    def result(name: str, fmt: str, precision: str, accuracy: float, p50: float, mb: float) -> ArtifactResult:
        source = "" if fmt == "pytorch" else "student"
        return ArtifactResult(
            name, fmt, precision, "student", source, int(mb * 1e6), accuracy, 1.0, None, None, None, p50, p50, 1
        )

    results = (
        result("student", "pytorch", "fp32", 0.80, 10.0, 60),
        result("student-onnx-fp32", "onnx", "fp32", 0.80, 6.0, 60),
        result("student-onnx-int8-dynamic", "onnx", "int8-dynamic", 0.79, 4.0, 15),
    )
    data = {"source": "sst2", "labels": ["0", "1"], "train": 10, "validation": 10, "eval": 10}
    report = Report(results, data, {}, {"total": 1.0}, ("student-onnx-fp32", "student-onnx-int8-dynamic"))
    write_report(report, tmp_path)
    assert "](pareto.png)" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "pareto.png").stat().st_size > 10_000 and not (tmp_path / "confusion.png").exists()

    monkeypatch.setattr(charts, "unavailable", lambda: "matplotlib is not installed")
    (tmp_path / "pareto.png").unlink()
    write_report(report, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Charts skipped: matplotlib is not installed" in md and "pareto.png" not in md, md
    assert not (tmp_path / "pareto.png").exists()
