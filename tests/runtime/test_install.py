"""The runtime installs alone: ``pip install ".[onnx]"`` (or ``[tflite]``) into a fresh venv brings
numpy, tokenizers and one engine — no torch, no transformers — and ``python -m runtime predict``
classifies a bundle there with the logits the full kit computes. Needs a package index (CI has one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import TextClassifier
from tests.builders import TinyBundle, shared_bundle

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["a good movie", "the plot is bad"]
HEAVY = ("torch", "transformers", "optimum", "onnx", "litert_torch", "tensorflow")


def _source_copy(tmp_path: Path) -> Path:
    """The package's files only, so the build writes nothing into the repo and sees nothing stale."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("export", "quantize", "runtime"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, src / name)
    return src


def _venv_with(tmp_path: Path, extra: str, python: str = sys.executable) -> Path:
    src = _source_copy(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{src}[{extra}]"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert pip.returncode == 0, f"pip install .[{extra}] failed:\n{pip.stderr[-3000:]}"
    return venv / "bin" / "python"


@pytest.mark.parametrize(("extra", "kind"), [("onnx", "bert"), ("tflite", "tflite")])
def test_the_runtime_installs_alone_and_classifies(
    extra: str, kind: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bundle: TinyBundle = shared_bundle(tmp_path_factory, kind)
    python = _venv_with(tmp_path, extra)
    present = subprocess.run(
        [str(python), "-c", f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert present.stdout.strip() == "[]", f"[{extra}] installed {present.stdout.strip()} ({present.stderr[-500:]})"
    proc = subprocess.run(
        [str(python), "-m", "runtime", "predict", str(bundle.path), *TEXTS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repo: the installed package must be the one imported
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    expected = TextClassifier.load(bundle.path).predict(TEXTS)
    assert [g["label"] for g in got] == [p.label for p in expected], (got, expected)
    delta = max(
        abs(g["probabilities"][k] - p.probabilities[k])
        for g, p in zip(got, expected, strict=True)
        for k in g["probabilities"]
    )
    assert delta < 1e-5, f"[{extra}] probabilities {delta:.3g} from the full kit's (tolerance 1e-5)"
    assert np.isfinite(delta)
