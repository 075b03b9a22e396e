"""TextClassifier on tiny real ONNX bundles (BERT and DistilBERT) against torch."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from runtime import TextClassifier, classifier
from runtime.backends import OnnxBackend, open_backend
from runtime.classifier import _softmax_row
from runtime.errors import BundleError, GoldenMismatchError, InputError
from runtime.tokenizer import BundleTokenizer
from tests.builders import LABELS, TinyBundle, assert_close, copy_bundle, reseal, seal_again, shared_bundle

ONNX_ATOL = 1e-4  # fp32 ONNX Runtime vs fp32 torch: only kernel reordering noise
TEXTS = [
    "a good movie",
    "the plot is bad, the film was not very good and the acting was bad too " * 4,  # truncates at 32
    "café 中文 😀",
    "ok",
    "great",
]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return shared_bundle(tmp_path_factory, "bert")


@pytest.fixture(scope="module")
def distilbert(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return shared_bundle(tmp_path_factory, "distilbert")


@pytest.fixture(scope="module")
def bert_clf(bert: TinyBundle) -> TextClassifier:
    return TextClassifier.load(bert.path)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_logits_match_torch(kind: str, request: pytest.FixtureRequest) -> None:
    bundle: TinyBundle = request.getfixturevalue(kind)
    clf = TextClassifier.load(bundle.path)
    expected = bundle.torch_logits(TEXTS, clf.manifest.input_names)
    assert_close(clf.logits(TEXTS), expected, ONNX_ATOL, f"{kind} ONNX vs torch")
    # Smaller batches pad differently (dynamic padding) but must give the same logits.
    by_two = np.array([[p.probabilities[label] for label in LABELS] for p in clf.predict(TEXTS, batch_size=2)])
    assert_close(by_two, _softmax(expected), ONNX_ATOL, f"{kind} batch_size=2 probabilities")


def test_inputs_are_bound_by_name(bert: TinyBundle, distilbert: TinyBundle) -> None:
    # The BERT graph declares attention_mask first, the manifest input_ids first: the parity
    # test above only passes because feeds are matched by name.
    assert OnnxBackend(bert.path / "model.onnx").input_names == ("attention_mask", "input_ids", "token_type_ids")
    assert TextClassifier.load(bert.path).manifest.input_names[0] == "input_ids"
    # A manifest naming token_type_ids for a model that does not take it: dropped, not fed.
    clf = TextClassifier.load(distilbert.path)
    tokenizer = BundleTokenizer(distilbert.path / "tokenizer.json", clf.manifest.max_length)
    widened = dataclasses.replace(clf.manifest, input_names=("input_ids", "attention_mask", "token_type_ids"))
    widened_clf = TextClassifier(widened, tokenizer, open_backend(distilbert.path / "model.onnx"))
    assert_close(widened_clf.logits(TEXTS), clf.logits(TEXTS), 0.0, "distilbert with token_type_ids listed")


def test_manifest_lacking_a_model_input_is_refused(bert: TinyBundle, bert_clf: TextClassifier) -> None:
    narrowed = dataclasses.replace(bert_clf.manifest, input_names=("input_ids", "attention_mask"))
    tokenizer = BundleTokenizer(bert.path / "tokenizer.json", 32)
    with pytest.raises(BundleError, match="takes token_type_ids, which manifest input_names"):
        TextClassifier(narrowed, tokenizer, open_backend(bert.path / "model.onnx"))


def test_backend_run_reports_missing_inputs_and_ignores_extra(bert: TinyBundle) -> None:
    backend = OnnxBackend(bert.path / "model.onnx")
    ids = np.array([[2, 30, 3]], dtype=np.int64)
    with pytest.raises(InputError, match="missing model input.*token_type_ids"):
        backend.run({"input_ids": ids, "attention_mask": np.ones_like(ids)})
    out = backend.run({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids, "extra": ids})
    assert out.shape == (1, 3) and out.dtype == np.float32


def test_predictions(bert_clf: TextClassifier) -> None:
    preds = bert_clf.predict(TEXTS)
    logits = bert_clf.logits(TEXTS)
    assert len(preds) == len(TEXTS)
    for pred, row in zip(preds, logits, strict=True):
        assert list(pred.probabilities) == list(LABELS)
        assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
        assert pred.label == LABELS[int(np.argmax(row))]
        assert pred.score == max(pred.probabilities.values())
    assert [p.truncated for p in preds] == [False, True, False, False, False]


def test_softmax_is_stable_for_huge_logits() -> None:
    probs = [_softmax_row(row) for row in ([1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4])]
    assert np.all(np.isfinite(probs))
    assert_close(probs, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], 1e-12, "softmax")


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Reference softmax over rows, in numpy."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ("a good movie", "got a single str; pass \\[text\\]"),
        ([], "texts is empty"),
        (["fine", ""], r"texts\[1\] is empty or whitespace-only"),
        (["fine", " \n\t"], r"texts\[1\] is empty or whitespace-only"),
        (["fine", "ok", 3], r"texts\[2\] is a int, expected str"),
        ([None], r"texts\[0\] is a NoneType"),
        (b"bytes", "got bytes"),
    ],
)
def test_bad_predict_input(bert_clf: TextClassifier, texts: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        bert_clf.predict(texts)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # InputError is also a ValueError
        bert_clf.logits(texts)  # type: ignore[arg-type]


def test_bad_batch_size(bert_clf: TextClassifier) -> None:
    with pytest.raises(InputError, match="batch_size must be a positive int"):
        bert_clf.predict(["ok"], batch_size=0)


def test_backend_choice_must_match_the_bundle(bert: TinyBundle) -> None:
    assert TextClassifier.load(bert.path, backend="onnx").manifest.backend == "onnx"
    assert TextClassifier.load(bert.path / "manifest.json").manifest.name == "tiny-bert-onnx"
    with pytest.raises(BundleError, match="holds a onnx model .*backend='tflite' was requested"):
        TextClassifier.load(bert.path, backend="tflite")
    with pytest.raises(InputError, match="backend must be one of auto, onnx, tflite"):
        TextClassifier.load(bert.path, backend="torch")
    with pytest.raises(BundleError, match="unknown suffix '.bin'"):
        open_backend(bert.path / "model.bin")


def test_label_count_mismatch_is_a_bundle_error(bert: TinyBundle, bert_clf: TextClassifier) -> None:
    two = dataclasses.replace(bert_clf.manifest, labels=("a", "b"), golden=())
    clf = TextClassifier(two, BundleTokenizer(bert.path / "tokenizer.json", 32), open_backend(bert.path / "model.onnx"))
    with pytest.raises(BundleError, match=r"logits of shape \(1, 3\), expected \(1, 2\)"):
        clf.predict(["ok"])


def test_corrupt_model_file_is_a_bundle_error(bert: TinyBundle, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(BundleError, match="cannot load ONNX model"):
        OnnxBackend(path)


def test_selftest_passes_and_reports_deltas(bert_clf: TextClassifier) -> None:
    results = bert_clf.selftest()
    assert [text for text, _ in results] == [g["text"] for g in bert_clf.manifest.golden]
    assert all(delta <= 1e-4 for _, delta in results)


def test_selftest_lists_each_failing_example(bert: TinyBundle, tmp_path: Path) -> None:
    path = copy_bundle(bert, tmp_path / "b")
    golden = [dict(g) for g in TextClassifier.load(path).manifest.golden]
    golden[0]["logits"] = [golden[0]["logits"][0] + 0.01, *golden[0]["logits"][1:]]
    golden[2]["input_ids"] = [*golden[2]["input_ids"][:-1], 7, golden[2]["input_ids"][-1]]
    reseal(path, golden=golden)
    with pytest.raises(GoldenMismatchError) as info:
        TextClassifier.load(path).selftest()
    message = str(info.value)
    assert "2 golden check(s) failed of 3" in message
    assert "golden[0] 'a good movie': max |Δ| logits 0.01 > atol 0.001" in message
    assert "golden[2]" in message and "input_ids differ" in message


def test_int8_precision_gets_the_looser_tolerance(bert: TinyBundle, tmp_path: Path) -> None:
    path = copy_bundle(bert, tmp_path / "b")
    golden = [dict(g) for g in TextClassifier.load(path).manifest.golden]
    golden[0]["logits"] = [golden[0]["logits"][0] + 0.01, *golden[0]["logits"][1:]]
    reseal(path, golden=golden, precision="int8-dynamic")
    assert TextClassifier.load(path).selftest()[0][1] == pytest.approx(0.01, abs=1e-4)


def test_selftest_without_golden_examples(bert: TinyBundle, tmp_path: Path) -> None:
    path = copy_bundle(bert, tmp_path / "b")
    reseal(path, golden=())
    with pytest.raises(BundleError, match="no golden examples"):
        TextClassifier.load(path).selftest()


def test_predict_is_thread_safe(bert_clf: TextClassifier) -> None:
    expected = bert_clf.logits(TEXTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: bert_clf.logits(TEXTS), range(8)))
    for got in results:
        assert_close(got, expected, 0.0, "concurrent logits")


def test_onnx_dynamic_int8_gives_a_text_the_same_result_whatever_its_batch(
    bert: TinyBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ORT's dynamic int8 takes one activation scale over the whole call, so the runtime runs such
    a bundle one text per call: logits at batch 32 equal batch 1 exactly. Without that rule the
    same texts, batched with a long one, move (measured here: max |Δ| printed below)."""
    from quantize.modes import OnnxQuant
    from quantize.onnx import quantize_onnx

    path = copy_bundle(bert, tmp_path / "b")
    quantize_onnx(path / "model.onnx", path / "model.onnx", OnnxQuant.DYNAMIC_INT8)
    seal_again(path, precision="int8-dynamic")
    texts = TEXTS * 4
    clf = TextClassifier.load(path)
    alone = clf.logits(texts, batch_size=1)
    batched = clf.logits(texts, batch_size=32)
    assert np.array_equal(alone, batched), f"max |Δ| {np.abs(alone - batched).max():.3g} between batch 1 and 32"

    monkeypatch.setattr(classifier, "_PER_CALL_SCALES", frozenset())
    shared_scale = TextClassifier.load(path).logits(texts, batch_size=32)
    moved = float(np.abs(shared_scale - alone).max())
    assert moved > 1e-4, f"batching without the rule moved logits by only {moved:.3g}: the test shows nothing"


@pytest.mark.parametrize(
    ("precision", "per_call"), [("int8-dynamic", True), ("int8-static", True), ("int8-qat", True), ("fp32", False)]
)
def test_onnx_int8_bundles_run_one_text_per_call(
    bert: TinyBundle, tmp_path: Path, precision: str, per_call: bool
) -> None:
    """Static ONNX int8 too: a padded row's float Softmax sums exp(−30) terms that can flip an int8
    rounding (0.18 in logits measured on SST-2), so every ONNX int8 precision runs one text per call."""
    path = copy_bundle(bert, tmp_path / "b")
    seal_again(path, precision=precision)
    manifest = TextClassifier.load(path).manifest
    assert classifier.batch_dependent(manifest) is per_call, (manifest.backend, manifest.precision)


def test_a_backend_without_input_dtypes_still_runs(bert: TinyBundle) -> None:
    # Backends written against the protocol before input_dtypes existed: the runtime feeds int64.
    class Older:
        def __init__(self, inner: OnnxBackend) -> None:
            self.inner = inner
            self.input_names, self.fixed_length, self.buckets = inner.input_names, inner.fixed_length, inner.buckets
            self.fed: list[np.dtype] = []

        def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
            self.fed += [a.dtype for a in feeds.values()]
            return self.inner.run(feeds)

    manifest = TextClassifier.load(bert.path).manifest
    older = Older(OnnxBackend(bert.path / "model.onnx"))
    clf = TextClassifier(manifest, BundleTokenizer(bert.path / "tokenizer.json", manifest.max_length), older)
    expected = TextClassifier.load(bert.path).logits(["a good movie"])
    assert_close(clf.logits(["a good movie"]), expected, 0.0, "older backend vs the bundle's own")
    assert older.fed and all(d == np.int64 for d in older.fed), older.fed
