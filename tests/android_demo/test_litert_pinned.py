"""The LiteRT version the Android app pins reads the kit's TFLite files and computes their logits.

No Android runtime runs here, so the evidence is LiteRT's Python interpreter of the same minor
version (``ai-edge-litert`` on PyPI; the app pins Android LiteRT 1.4.1, PyPI has 1.4.0), installed
into a fresh venv: it loads the kit's fp32 and int8 files (the int8 ones written by
ai-edge-quantizer, weights inside the flatbuffer — quantize/flatbuffer.py) and gives the logits the
kit's own ai-edge-litert gives. Needs a package index (CI has one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from quantize.flatbuffer import offset_buffers
from tests.builders import REPO, assert_close, fixed_batch, tflite_logits, tiny_model

pytestmark = pytest.mark.slow

RUN = """
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
batch = {k: np.asarray(v) for k, v in json.loads(sys.argv[2]).items()}
runner = Interpreter(model_path=sys.argv[1], num_threads=1).get_signature_runner()
details = runner.get_input_details()
rows = [runner(**{n: batch[n][i : i + 1].astype(d["dtype"]) for n, d in details.items()})["output_0"][0].tolist()
        for i in range(len(batch["input_ids"]))]
print(json.dumps(rows))
"""


def pinned_litert() -> str:
    """The app's LiteRT version (android_demo/gradle/libs.versions.toml)."""
    versions = tomllib.loads((REPO / "android_demo" / "gradle" / "libs.versions.toml").read_text())["versions"]
    return str(versions["litert"])


def test_the_pinned_litert_runs_the_kits_int8_and_fp32_files(tmp_path: Path) -> None:
    from export.convert.tflite import convert_tflite
    from quantize.tflite import TfliteQuant, quantize_tflite

    major, minor = (int(x) for x in pinned_litert().split(".")[:2])
    spec = f"ai-edge-litert>={major}.{minor},<{major}.{minor + 1}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", spec],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert pip.returncode == 0, f"pip install {spec!r} failed:\n{pip.stderr[-2000:]}"
    fp32 = convert_tflite(tiny_model("bert"), tmp_path / "fp32.tflite", lengths=16)
    int8 = quantize_tflite(fp32, tmp_path / "int8.tflite", TfliteQuant.DYNAMIC_INT8)
    batch = {k: v.tolist() for k, v in fixed_batch().items()}
    for model, atol in ((fp32, 1e-5), (int8, 1e-5)):
        assert offset_buffers(model.read_bytes()) == 0, f"{model.name}: weights outside the flatbuffer"
        proc = subprocess.run(
            [str(python), "-c", RUN, str(model), json.dumps(batch)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, f"{spec} cannot run {model.name}:\n{proc.stderr[-2000:]}"
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
        assert_close(theirs, tflite_logits(model), atol=atol, what=f"{model.name}: {spec} vs the kit's ai-edge-litert")
