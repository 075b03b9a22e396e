"""TensorFlow as the second TFLite converter: the litert-torch parity tests, per architecture.

Needs the ``tf`` extra. Without it the tests skip, except under CI (``CI`` set), where CI
installs the extra and a missing TensorFlow fails them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import export.convert.tflite_tensorflow as tflite_tf
from export.architectures import model_input_names
from export.config import TfliteConfig, TfliteConverter, load_config
from export.convert.bundle import make_bundle
from export.convert.tflite import tflite_signatures, to_tflite
from export.convert.tflite_tensorflow import TfJob, convert_with_tensorflow, tensorflow_installed
from export.errors import ConfigError
from quantize.tflite import TfliteQuant, quantize_tflite
from runtime import TextClassifier
from tests.builders import (
    SEQ_LEN,
    TEXTS,
    TFLITE_FP16_ATOL,
    TFLITE_FP32_ATOL,
    TINY_MODELS,
    assert_parity,
    fixed_batch,
    model_logits,
    parity,
    record_parity,
    require,
    tflite_logits,
    tiny_model,
    tokenized_classifier,
)


def require_tensorflow() -> None:
    """The tf extra, or a skip (a failure under CI on transformers 4; see tests.builders.require)."""
    if not tensorflow_installed():
        require("tensorflow", reason="TensorFlow is not installed (pip install 'bert-mobile-kit[tf]')")
        require("tf_keras", reason="tf-keras is not installed (pip install 'bert-mobile-kit[tf]')")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every tiny model converted by TensorFlow in one child process (one TF start-up)."""
    require_tensorflow()
    jobs = []
    for arch in sorted(TINY_MODELS):
        directory = tmp_path_factory.mktemp(f"tf-{arch}")
        model = tiny_model(arch)
        model.save_pretrained(directory)
        jobs.append(TfJob(directory, directory / "model.tflite", model_input_names(model), (SEQ_LEN,)))
    convert_with_tensorflow(jobs)
    return {arch: job.out for arch, job in zip(sorted(TINY_MODELS), jobs, strict=True)}


def test_converter_is_chosen_in_config() -> None:
    assert TfliteConfig().converter is TfliteConverter.LITERT_TORCH  # the default stays litert-torch
    assert load_config(None, ["tflite.converter=tensorflow"]).tflite.converter is TfliteConverter.TENSORFLOW


def test_missing_tensorflow_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tflite_tf, "tensorflow_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"tflite.converter=tensorflow needs TensorFlow: pip install"):
        convert_with_tensorflow([TfJob(tmp_path, tmp_path / "m.tflite", ("input_ids",), (8,))])


@pytest.mark.slow
@parity("tflite-tf-fp32")
def test_tf_fp32_matches_pytorch(converted: dict[str, Path], arch: str) -> None:
    signature = next(iter(tflite_signatures(converted[arch]).values()))
    model = tiny_model(arch)
    assert set(signature["inputs"]) == set(model_input_names(model))
    assert set(signature["inputs"].values()) == {((1, SEQ_LEN), "int32")}
    assert_parity(arch, "tflite-tf-fp32", tflite_logits(converted[arch]), model_logits(model), TFLITE_FP32_ATOL)


@pytest.mark.slow
@parity("tflite-tf-fp16")
def test_tf_fp16_is_smaller_and_close(converted: dict[str, Path], arch: str, tmp_path: Path) -> None:
    fp16 = quantize_tflite(converted[arch], tmp_path / "fp16.tflite", TfliteQuant.FP16)
    assert fp16.stat().st_size < converted[arch].stat().st_size
    assert_parity(arch, "tflite-tf-fp16", tflite_logits(fp16), model_logits(tiny_model(arch)), TFLITE_FP16_ATOL)


@pytest.mark.slow
@parity("tflite-tf-int8")
def test_tf_int8_is_smaller_and_keeps_labels(converted: dict[str, Path], arch: str, tmp_path: Path) -> None:
    int8 = quantize_tflite(converted[arch], tmp_path / "int8.tflite", TfliteQuant.DYNAMIC_INT8)
    assert int8.stat().st_size < converted[arch].stat().st_size
    batch = fixed_batch(extra_rows=12)
    reference = model_logits(tiny_model(arch), batch)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.05  # near-ties may legitimately flip
    assert clear.sum() >= 8, f"batch too tied to test labels: margins {top2[:, 1] - top2[:, 0]}"
    logits = tflite_logits(int8, batch)
    np.testing.assert_array_equal(logits.argmax(axis=1)[clear], reference.argmax(axis=1)[clear])
    record_parity(arch, "tflite-tf-int8", float(np.max(np.abs(logits - reference))))


@pytest.mark.slow
def test_to_tflite_with_tensorflow_buckets_and_bundle(tmp_path: Path) -> None:
    """The pipeline's entry point with converter=tensorflow: buckets, a sealed bundle, runtime parity."""
    require_tensorflow()
    from export.classifier import torch_logits as hf_logits

    clf = tokenized_classifier("roberta", tmp_path / "model", ("a", "b", "c"))
    cfg = TfliteConfig(converter=TfliteConverter.TENSORFLOW, quantize=(), buckets=(8,))
    art = to_tflite(clf, cfg, tmp_path / "artifacts", max_length=16)
    assert set(tflite_signatures(art.path)) == {"len_8", "len_16"}
    manifest = make_bundle(art, clf, tmp_path / "bundle", 16)
    assert manifest.buckets == (8, 16)
    texts = list(TEXTS[:24])
    got = TextClassifier.load(tmp_path / "bundle").logits(texts)
    np.testing.assert_allclose(got, hf_logits(clf, texts, 16), atol=TFLITE_FP32_ATOL)
