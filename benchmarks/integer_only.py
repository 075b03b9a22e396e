"""Integer-only int8 on the SST-2 recipe (issue 21): fp32, int8-dynamic, int8-full (mixed) and the
quantization-aware-trained integer-only student (``int8-qat``, TFLite and ONNX QDQ), one run, side by side.

    .venv/bin/python benchmarks/integer_only.py [--config examples/sst2-qat.toml] [--out DIR]
    .venv/bin/python benchmarks/integer_only.py --from-report DIR/report.json

Runs ``python -m export`` with the config (the gate on ``skip``, so a mode that misses it is
listed instead of stopping the run) and writes into BENCHMARKS.md the verify table — integer-only
status and float-op count read from each shipped file, accuracy on the held-out sentences,
agreement with the fp32 student, size, p50 / p90 at 1 and 2 threads — the QAT wall time, and the
issue's done-when figures for ``int8-qat``: accuracy drop against the fp32 student, size against
the fp32 TFLite file, speed against TFLite fp32 at 1 thread. All from this one run, this machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from bench_md import config_label, write_section

os.environ.setdefault("USE_TF", "0")

from export.config import load_config
from export.errors import VerificationError
from export.pipeline import run
from export.report.document import saved_results, table
from export.report.machine import machine
from export.verify.engine import ArtifactResult

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- integer-only:begin -->", "<!-- integer-only:end -->"
QAT, FP32_TFLITE, STUDENT = "student-tflite-int8-qat", "student-tflite-fp32", "student"
ONNX_QAT, FP32_ONNX = "student-onnx-int8-qat", "student-onnx-fp32"


def done_when(by_name: dict[str, ArtifactResult], qat_name: str = QAT, fp32_name: str = FP32_TFLITE) -> list[str]:
    """The issue's done-when figures for an int8-qat artifact against its fp32 file, each with its verdict."""
    qat, fp32, student = by_name.get(qat_name), by_name.get(fp32_name), by_name.get(STUDENT)
    if qat is None or fp32 is None or student is None:
        return [f"- {qat_name}, {fp32_name} or {STUDENT} is missing from the run: nothing to check"]
    kind = "TFLite" if "tflite" in fp32_name else "ONNX"
    drop = 100 * (student.accuracy - qat.accuracy)
    size = fp32.size_bytes / qat.size_bytes
    speed = fp32.latency["1t"]["p50_ms"] / qat.latency["1t"]["p50_ms"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    return [
        f"- integer-only: {qat.integer} ({verdict(qat.float_ops == 0)})",
        f"- accuracy {100 * qat.accuracy:.2f}% against the fp32 student's {100 * student.accuracy:.2f}%: "
        f"{drop:+.2f} points lost (≤ 1.0: {verdict(drop <= 1.0)})",
        f"- size {qat.size_bytes / 1e6:.1f} MB = 1/{size:.2f} of the fp32 {kind} file "
        f"({fp32.size_bytes / 1e6:.1f} MB; ≤ 1/3.5: {verdict(size >= 3.5)})",
        f"- p50 at 1 thread {qat.latency['1t']['p50_ms']:.2f} ms against {kind} fp32's "
        f"{fp32.latency['1t']['p50_ms']:.2f} ms: {speed:.2f}× (≥ 1.3×: {verdict(speed >= 1.3)})",
    ]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "sst2-qat.toml")
    p.add_argument("--out", default="/tmp/bmk-integer-only")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--from-report", type=Path, help="render an earlier run's report.json instead of running")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    report_json = args.from_report
    if report_json is None:
        os.chdir(ROOT)  # the config's data and checkpoint paths are relative to the repo root
        cfg = load_config(
            args.config, [f"out={args.out}", "overwrite=true", "verify.on_gate_fail=skip", *args.overrides]
        )
        try:
            run(cfg)
        except VerificationError as e:  # still render the table: failures are part of the result
            logging.error("verification failed: %s", e)
        report_json = Path(args.out) / "report.json"
    saved = json.loads(report_json.read_text(encoding="utf-8"))
    config = config_label(args.config, args.overrides)
    results = saved_results(saved)
    by_name = {r.name: r for r in results}
    m = saved.get("machine") or machine()
    qat = saved.get("training", {}).get("student-qat", {})
    qat_line = (
        f"Quantization-aware training: {qat.get('steps')} steps, {qat.get('train_seconds', 0) / 60:.1f} min "
        f"on {m['cores']} cores"
        + (" (reused from the stage cache; the time is the original run's)" if qat.get("reused") else "")
        if qat
        else "No QAT stage in this run."
    )
    notes = [f"- **{r.name}**: " + "; ".join(r.notes) for r in results if r.notes]
    section = "\n".join(
        [
            BEGIN,
            "## Integer-only int8 (issue 21): quantization-aware training against post-training int8",
            "",
            f"Command: `python benchmarks/integer_only.py --config {config}`",
            f"Machine: {m['cpu']}, {m['cores']} cores, no GPU. Data: {saved['data']['source'].split('/')[-1]}; "
            f"{saved['data']['eval']} eval sentences never trained on (refit except-eval). {qat_line}.",
            "",
            table(results),
            "",
            "int8-qat against the done-when (TFLite):",
            "",
            *done_when(by_name),
            "",
            "The same QAT student as an ONNX QDQ graph (every op quantized), the same figures against ONNX fp32:",
            "",
            *done_when(by_name, ONNX_QAT, FP32_ONNX),
            "",
            "What each quantizer decided:",
            "",
            *(notes or ["- nothing"]),
            END,
        ]
    )
    write_section(section, BEGIN, END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
