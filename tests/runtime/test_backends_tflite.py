"""TfliteBackend and TextClassifier on a tiny BERT converted by litert-torch."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from runtime import TextClassifier
from runtime.backends import TfliteBackend
from runtime.errors import InputError
from tests.builders import TinyBundle, assert_close, blocked_imports_script, require, run_python, shared_bundle

# The module's bundle is a tiny BERT converted by litert-torch (~10 s).
pytestmark = pytest.mark.slow

require("litert_torch", reason="converting the test model needs litert-torch")
require("ai_edge_litert", reason="running TFLite needs ai-edge-litert")

# fp32 TFLite (XNNPACK) vs fp32 torch: kernel reordering only, measured ~5e-7 on these logits.
TFLITE_ATOL = 1e-4
TEXTS = ["a good movie", "the plot is bad and the film was not very good at all, really bad", "中文 😀", "ok"]


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return shared_bundle(tmp_path_factory, "tflite")


def test_signature_is_read_by_name(tflite: TinyBundle) -> None:
    backend = TfliteBackend(tflite.path / "model.tflite")
    # litert-torch lists signature inputs sorted, not in forward() order.
    assert backend.input_names == ("attention_mask", "input_ids", "token_type_ids")
    assert backend.fixed_length == 16
    assert backend.input_dtypes["input_ids"] == np.int32  # int64 I/O is downcast by the converter


def test_logits_match_torch_one_invoke_per_row(tflite: TinyBundle) -> None:
    clf = TextClassifier.load(tflite.path)
    expected = tflite.torch_logits(TEXTS, clf.manifest.input_names, pad_to=16)
    assert_close(clf.logits(TEXTS), expected, TFLITE_ATOL, "TFLite vs torch")
    assert [p.truncated for p in clf.predict(TEXTS)] == [False, True, False, False]


def test_direct_invoke_equals_the_signature_runner(tflite: TinyBundle) -> None:
    # Fixed-shape signatures skip SignatureRunner.__call__ (resize + AllocateTensors per call):
    # the direct tensor calls must give the runner's logits bit for bit, call after call.
    backend = TfliteBackend(tflite.path / "model.tflite")
    sig = backend._runners[16]  # noqa: SLF001
    assert sig.direct, "the fixed [1, 16] signature should run through the direct tensor calls"
    rng = np.random.default_rng(0)
    for _ in range(3):
        ids = rng.integers(1, 50, size=(1, 16)).astype(np.int32)
        chunk = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        direct = sig(chunk)
        runner = np.asarray(next(iter(sig.runner(**chunk).values())))
        assert direct.dtype == runner.dtype and np.array_equal(direct, runner), (
            f"direct invoke differs from the runner: max |Δ| {np.abs(direct - runner).max()}"
        )


def test_wrong_sequence_length_is_an_input_error(tflite: TinyBundle) -> None:
    backend = TfliteBackend(tflite.path / "model.tflite")
    ids = np.zeros((2, 8), dtype=np.int64)
    with pytest.raises(InputError, match="exactly 16 tokens, got 8"):
        backend.run({"input_ids": ids, "attention_mask": ids, "token_type_ids": ids})


def test_selftest_passes(tflite: TinyBundle) -> None:
    assert all(delta <= 1e-3 for _, delta in TextClassifier.load(tflite.path).selftest())


def test_concurrent_calls_are_serialised_safely(tflite: TinyBundle) -> None:
    clf = TextClassifier.load(tflite.path)
    expected = clf.logits(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for got in pool.map(lambda _: clf.logits(TEXTS), range(8)):
            assert_close(got, expected, 0.0, "concurrent TFLite logits")


def test_runs_without_torch_or_transformers(tflite: TinyBundle) -> None:
    script = blocked_imports_script(
        ("torch", "transformers"),
        f"""
        import json, runtime
        pred = runtime.TextClassifier.load({str(tflite.path)!r}).predict(["a good movie"])[0]
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(json.dumps({{"label": pred.label, "leaked": leaked}}))
        """,
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["leaked"] == []
