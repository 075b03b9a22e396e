"""The parity matrix (architecture × path) with the max |Δ| each test measured, into BENCHMARKS.md.

    .venv/bin/python benchmarks/parity_matrix.py            # runs the parity tests, then writes
    .venv/bin/python benchmarks/parity_matrix.py --log FILE # tabulates an earlier PARITY_LOG run

The parity tests (``@parity(cell)`` in tests/) append what they measure to ``$PARITY_LOG``
(see ``tests/builders.py``); this script runs them with it set and keeps, per cell, the
largest max |Δ| over everything that cell's test compared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench_md import write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.builders import CELLS  # noqa: E402

BEGIN, END = "<!-- parity:begin -->", "<!-- parity:end -->"
TEST_FILES = (
    "tests/export/test_architectures.py",
    "tests/export/convert/test_onnx.py",
    "tests/export/convert/test_onnx_dynamo.py",
    "tests/export/convert/test_tflite.py",
    "tests/export/convert/test_tflite_tensorflow.py",
)
WHAT = {
    "finetune": "fine-tuned checkpoint reloaded vs in memory",
    "teacher": "student distilled from it, reloaded vs in memory",
    "student": "student initialised from teacher layers, full depth, vs teacher (DistilBERT from BERT: encoder output)",
    "onnx-fp32": "optimum ONNX vs PyTorch",
    "onnx-int8": "ONNX int8-dynamic vs PyTorch (labels must agree; bound 0.25)",
    "onnx-dynamo-fp32": "torch.onnx.export(dynamo=True) ONNX vs PyTorch",
    "tflite-fp32": "litert-torch TFLite vs PyTorch",
    "tflite-fp16": "fp16 weights vs PyTorch",
    "tflite-int8": "int8-dynamic vs PyTorch (clear-margin labels must agree)",
    "tflite-tf-fp32": "TensorFlow-converted TFLite vs PyTorch",
    "tflite-tf-fp16": "TensorFlow-converted, fp16 weights",
    "tflite-tf-int8": "TensorFlow-converted, int8-dynamic",
    "runtime": "sealed ONNX + TFLite bundles through runtime.TextClassifier vs PyTorch on real text",
}


def run_tests(log: Path) -> int:
    env = {**os.environ, "PARITY_LOG": str(log), "USE_TF": "0"}
    argv = [sys.executable, "-m", "pytest", "-q", *TEST_FILES]
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--log", type=Path, help="an existing PARITY_LOG file (JSON lines) instead of running the tests")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "parity.jsonl"
        status = 0 if args.log else run_tests(log)
        worst: dict[tuple[str, str], float] = defaultdict(float)
        for line in log.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            key = (r["arch"], r["cell"])
            worst[key] = max(worst[key], r["max_abs_delta"])
    archs = sorted({a for a, _ in worst})
    cells = [c for c in CELLS if any((a, c) in worst for a in archs)]
    lines = [
        BEGIN,
        "## Parity matrix (issue 4): max |Δ logits| per architecture × path",
        "",
        f"Command: `python benchmarks/parity_matrix.py` (the tests in {', '.join(TEST_FILES)}). Tiny random "
        "models (hidden 32, 2 layers, initializer_range 0.2, so logits are O(1)); each cell is the largest max |Δ| "
        "its test measured; the test's tolerance is the architecture table's (or the test's, commented there). "
        "— = not run (TensorFlow cells need the tf extra).",
        "",
        "| path | " + " | ".join(archs) + " |",
        "|---|" + "---|" * len(archs),
    ]
    for cell in cells:
        row = " | ".join(f"{worst[(a, cell)]:.1e}" if (a, cell) in worst else "—" for a in archs)
        lines.append(f"| {cell} | {row} |")
    lines += ["", *(f"- {c}: {WHAT[c]}" for c in cells), END]
    section = "\n".join(lines)
    write_section(section, BEGIN, END)
    print(section)
    return status


if __name__ == "__main__":
    sys.exit(main())
