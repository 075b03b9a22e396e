"""TFLite length buckets: one signature per length in one file; the runtime picks the smallest that fits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from export.classifier import Classifier, torch_logits
from export.config import TfliteConfig, load_config
from export.convert.bundle import make_bundle
from export.convert.quantized import quantized_tflite
from export.convert.tflite import tflite_signatures, to_tflite
from export.errors import ConfigError
from quantize.modes import TfliteQuant
from runtime import TextClassifier, load_manifest
from runtime.backends import TfliteBackend
from runtime.bundle import Manifest
from runtime.errors import BundleError, InputError
from tests.builders import TEXTS, assert_close, reseal, tokenized_classifier

BUCKETS = (8, 16)
MAX_LENGTH = 16
FP32_ATOL = 1e-4  # measured ~3e-7: XNNPACK reorders float sums, nothing more


def test_default_buckets_are_capped_by_max_length() -> None:
    cfg = TfliteConfig()
    assert cfg.buckets == (16, 32, 48, 64, 96, 128)
    assert cfg.lengths(64) == (16, 32, 48, 64)
    assert cfg.lengths(100) == (16, 32, 48, 64, 96, 100)  # the longest input always fits
    assert cfg.lengths(8) == (8,)
    assert TfliteConfig(buckets=()).lengths(64) == (64,)
    assert load_config(None, ["tflite.buckets=8,24"]).tflite.buckets == (8, 24)
    assert load_config(None, ["tflite.buckets="]).tflite.buckets == ()


@pytest.mark.parametrize("buckets", [(32, 16), (16, 16), (2,), (1024,)])
def test_bad_buckets_are_rejected(buckets: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="tflite.buckets=.*strictly increasing sequence lengths in 4..512"):
        TfliteConfig(buckets=buckets)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Classifier, dict[str, Path]]:
    """A tiny BERT exported once with buckets 8 and 16, fp32 and int8, as sealed bundles."""
    directory = tmp_path_factory.mktemp("bucket-model")
    clf = tokenized_classifier("bert", directory, ("a", "b", "c"))
    cfg = TfliteConfig(quantize=(TfliteQuant.DYNAMIC_INT8,), buckets=BUCKETS[:-1])
    bundles = {}
    fp32 = to_tflite(clf, cfg, directory / "artifacts", max_length=MAX_LENGTH)
    for art in (fp32, *quantized_tflite(clf, fp32, cfg, directory / "artifacts", max_length=MAX_LENGTH)):
        bundles[art.precision] = directory / "bundles" / art.name
        make_bundle(art, clf, bundles[art.precision], MAX_LENGTH)
    return clf, bundles


@pytest.mark.slow
def test_one_file_has_a_signature_per_bucket(exported: tuple[Classifier, dict[str, Path]]) -> None:
    clf, bundles = exported
    for precision, bundle in bundles.items():
        manifest = load_manifest(bundle)
        assert manifest.buckets == BUCKETS and manifest.fixed_length == MAX_LENGTH, precision
        signatures = tflite_signatures(bundle / "model.tflite")
        assert set(signatures) == {f"len_{n}" for n in BUCKETS}
        for n in BUCKETS:
            assert set(signatures[f"len_{n}"]["inputs"].values()) == {((1, n), "int32")}


@pytest.mark.slow
@pytest.mark.parametrize("bucket", BUCKETS)
def test_each_bucket_matches_pytorch(exported: tuple[Classifier, dict[str, Path]], bucket: int) -> None:
    clf, bundles = exported
    rng = np.random.default_rng(bucket)
    ids = rng.integers(5, len(clf.tokenizer), size=(3, bucket))
    mask = np.ones_like(ids)
    mask[1, bucket // 2 :] = 0  # a padded row
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    with torch.no_grad():
        want = clf.model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    assert_close(TfliteBackend(bundles["fp32"] / "model.tflite").run(feeds), want, FP32_ATOL, f"len_{bucket} fp32")
    got = TfliteBackend(bundles["int8-dynamic"] / "model.tflite").run(feeds)
    assert_close(got, want, 0.25, f"len_{bucket} int8")  # a sanity bound; labels are checked below


def token_counts(clf: Classifier, texts: list[str]) -> np.ndarray:
    return np.asarray([len(clf.tokenizer(t, truncation=True, max_length=MAX_LENGTH)["input_ids"]) for t in texts])


@pytest.mark.slow
def test_runtime_pads_each_text_to_the_smallest_bucket(exported: tuple[Classifier, dict[str, Path]]) -> None:
    clf, bundles = exported
    texts = list(TEXTS[:40])
    counts = token_counts(clf, texts)
    assert (counts <= 8).sum() >= 5 and (counts > 8).sum() >= 5, counts  # both buckets are used
    runtime = TextClassifier.load(bundles["fp32"])
    widths: list[tuple[int, int]] = []
    run = runtime._backend.run  # noqa: SLF001 - spying on what the backend is fed

    def spy(feeds: dict[str, np.ndarray]) -> np.ndarray:
        widths.append(feeds["input_ids"].shape)
        return run(feeds)

    runtime._backend.run = spy  # type: ignore[method-assign]  # noqa: SLF001
    got = runtime.logits(texts)  # one batch of 32, then 8: rows grouped per bucket
    expected = []
    for start in (0, 32):
        batch = counts[start : start + 32]
        expected += [(int(sel.sum()), b) for b, sel in ((8, batch <= 8), (16, batch > 8)) if sel.any()]
    assert widths == expected
    assert_close(got, torch_logits(clf, texts, MAX_LENGTH), FP32_ATOL, "bucketed runtime vs torch")
    widths.clear()
    runtime.predict(["ok"])
    assert widths == [(1, 8)]
    int8 = TextClassifier.load(bundles["int8-dynamic"])
    agree = (int8.logits(texts).argmax(-1) == got.argmax(-1)).mean()
    assert agree >= 0.9, f"int8 agrees with fp32 on {agree:.0%} of labels"


@pytest.mark.slow
def test_backend_names_its_buckets_on_a_wrong_length(exported: tuple[Classifier, dict[str, Path]]) -> None:
    _, bundles = exported
    backend = TfliteBackend(bundles["fp32"] / "model.tflite")
    assert backend.buckets == BUCKETS and backend.fixed_length == MAX_LENGTH
    ids = np.zeros((1, 12), dtype=np.int64)
    with pytest.raises(InputError, match="exactly 8 or 16 tokens, got 12; pad to the smallest that fits"):
        backend.run({"input_ids": ids, "attention_mask": ids, "token_type_ids": ids})


@pytest.mark.slow
def test_manifest_buckets_must_match_the_model(exported: tuple[Classifier, dict[str, Path]], tmp_path: Path) -> None:
    import shutil

    _, bundles = exported
    bundle = Path(shutil.copytree(bundles["fp32"], tmp_path / "b"))
    reseal(bundle, buckets=(4, 16))
    with pytest.raises(BundleError, match=r"takes sequences of \[8, 16\] tokens but the manifest says buckets"):
        TextClassifier.load(bundle)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"buckets": (16, 8)}, "strictly increasing"),
        ({"buckets": (8, 12)}, "last bucket 12 must equal fixed_length 16"),
        ({"buckets": (8, 16), "backend": "onnx", "model_file": "model.onnx", "fixed_length": None}, "are TFLite"),
        ({"buckets": [8, True]}, "list of positive ints"),
    ],
)
def test_manifest_rejects_bad_buckets(
    exported: tuple[Classifier, dict[str, Path]], changes: dict, message: str
) -> None:
    _, bundles = exported
    manifest = load_manifest(bundles["fp32"])
    fields = {f.name: getattr(manifest, f.name) for f in dataclasses.fields(Manifest)}
    files = {**manifest.files, "model.onnx": "0" * 64}
    with pytest.raises(BundleError, match=message):
        Manifest(**{**fields, "files": files, **changes})
