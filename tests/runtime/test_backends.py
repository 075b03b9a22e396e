"""The runtime never imports torch or transformers, and imports its engine only when needed."""

from __future__ import annotations

import json

import pytest

from tests.builders import TinyBundle, blocked_imports_script, run_python, shared_bundle


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return shared_bundle(tmp_path_factory, "bert")


def test_onnx_bundle_runs_with_torch_and_transformers_blocked(bert: TinyBundle) -> None:
    script = blocked_imports_script(
        ("torch", "transformers"),
        f"""
        import json, runtime
        lazy = sorted(m for m in ("onnxruntime", "ai_edge_litert") if m in sys.modules)
        pred = runtime.TextClassifier.load({str(bert.path)!r}).predict(["a good movie"])[0]
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(json.dumps({{"label": pred.label, "leaked": leaked, "imported_on_import": lazy}}))
        """,
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["leaked"] == []
    assert report["imported_on_import"] == [], "engines must be imported lazily"
    assert report["label"] in ("negative", "neutral", "positive")


@pytest.mark.parametrize(("blocked", "extra"), [("onnxruntime", "onnx"), ("ai_edge_litert", "tflite")])
def test_missing_engine_names_the_pip_extra(bert: TinyBundle, blocked: str, extra: str) -> None:
    backend, model = ("OnnxBackend", "model.onnx") if extra == "onnx" else ("TfliteBackend", "model.tflite")
    script = blocked_imports_script(
        (blocked,),
        f"""
        from runtime.backends import {backend}
        from runtime.errors import BackendUnavailableError
        try:
            {backend}({str(bert.path / model)!r})  # the import fails before the file is opened
        except BackendUnavailableError as exc:
            print(exc)
        """,
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert f"pip install 'bert-mobile-kit[{extra}]'" in result.stdout
