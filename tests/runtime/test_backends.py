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


def test_onnx_sessions_leave_out_the_skip_layernorm_fusion(bert: TinyBundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # ORT fuses residual add + LayerNorm into SkipLayerNormalization at load; its kernel measured
    # 14-17 % slower on int8 bundles (runtime/backends.py). The runtime's sessions must not fuse it,
    # and must give the fused session's logits.
    import numpy as np
    import onnx
    import onnxruntime as ort

    from quantize.modes import OnnxQuant
    from quantize.onnx import quantize_onnx
    from runtime.backends import OnnxBackend, session_options

    # ORT fuses SkipLayerNormalization where the residual meets a dynamically quantized MatMul.
    model = quantize_onnx(bert.path / "model.onnx", tmp_path / "int8.onnx", OnnxQuant.DYNAMIC_INT8)

    def optimized_ops(options: ort.SessionOptions, name: str) -> set[str]:
        options.optimized_model_filepath = str(tmp_path / name)
        options.log_severity_level = 3
        ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        return {n.op_type for n in onnx.load(str(tmp_path / name)).graph.node}

    assert "SkipLayerNormalization" in optimized_ops(ort.SessionOptions(), "default.onnx"), (
        "ORT no longer fuses SkipLayerNormalization by default: the setting may be obsolete"
    )
    ours = optimized_ops(session_options(1), "ours.onnx")
    assert "SkipLayerNormalization" not in ours, sorted(ours)
    ids = np.array([[2, 15, 27, 33, 3]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    fused = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = fused.run(["logits"], {i.name: feeds[i.name] for i in fused.get_inputs()})[0]
    got = OnnxBackend(model).run(feeds)
    # int8 tolerance: a re-rounded activation may move one quantization step (golden_atol("int8") = 5e-2)
    assert np.abs(got - expected).max() <= 5e-2, f"max |Δ| {np.abs(got - expected).max():.3g} vs the fused session"
