"""TFLite export: fp32 parity with PyTorch, signatures, int8/fp16 derivatives, failure modes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    PreTrainedModel,
)

import export.convert.tflite as tflite_mod
import quantize.tflite as quant_mod
from export.architectures import ARCHITECTURES
from export.artifacts import Format
from export.config import TfliteConfig
from export.convert.quantized import quantized_tflite
from export.convert.tflite import TfliteConversionError, convert_tflite, model_input_names, tflite_signature, to_tflite
from export.errors import ExportError
from quantize.tflite import TfliteQuant, TfliteQuantizationError, quantize_tflite
from tests.builders import (
    NUM_LABELS,
    SEQ_LEN,
    TFLITE_FP16_ATOL,
    TFLITE_FP32_ATOL,
    TINY_MODELS,
    assert_close,
    assert_parity,
    fixed_batch,
    model_logits,
    parity,
    record_parity,
    tflite_logits,
    tiny_classifier,
    tiny_model,
)

# "core": scripts/test.sh runs this module on transformers 5 too (.venv-transformers5).
pytestmark = pytest.mark.core


@dataclass(frozen=True)
class Exported:
    model: PreTrainedModel
    reference: np.ndarray
    fp32: Path
    int8: Path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Exported]:
    """Converts each tiny model once per module, on first use."""
    cache: dict[str, Exported] = {}

    def get(name: str) -> Exported:
        if name not in cache:
            model = tiny_model(name)
            out = tmp_path_factory.mktemp(name)
            fp32 = convert_tflite(model, out / "model.tflite", lengths=SEQ_LEN)
            int8 = quantize_tflite(fp32, out / "model-int8.tflite", TfliteQuant.DYNAMIC_INT8)
            cache[name] = Exported(model, model_logits(model), fp32, int8)
        return cache[name]

    return get


def test_every_architecture_has_a_parity_case() -> None:
    missing = set(ARCHITECTURES) - set(TINY_MODELS)
    assert not missing, f"Missing models: {sorted(missing)}"


def test_model_input_names_follow_forward() -> None:
    assert model_input_names(tiny_model("bert")) == ("input_ids", "attention_mask", "token_type_ids")
    assert model_input_names(tiny_model("distilbert")) == ("input_ids", "attention_mask")


@pytest.mark.slow
@parity("tflite-fp32")
def test_fp32_matches_pytorch(exported: Callable[[str], Exported], arch: str) -> None:
    e = exported(arch)
    assert_parity(arch, "tflite-fp32", tflite_logits(e.fp32), e.reference, TFLITE_FP32_ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_signature_names_inputs_after_the_model(exported: Callable[[str], Exported], name: str) -> None:
    e = exported(name)
    sig = tflite_signature(e.fp32)
    assert set(sig["inputs"]) == set(model_input_names(e.model))
    # litert-torch downcasts the int64 sample inputs to int32.
    assert set(sig["inputs"].values()) == {((1, SEQ_LEN), "int32")}
    assert sig["outputs"] == {"output_0": ((1, NUM_LABELS), "float32")}
    assert tflite_signature(e.int8) == sig


@pytest.mark.slow
@parity("tflite-int8")
def test_int8_dynamic_is_smaller_and_keeps_labels(exported: Callable[[str], Exported], arch: str) -> None:
    e = exported(arch)
    assert e.int8.stat().st_size < e.fp32.stat().st_size
    batch = fixed_batch(extra_rows=12)
    reference = model_logits(e.model, batch)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.05  # near-ties may legitimately flip
    assert clear.sum() >= 8, f"batch too tied to test labels: margins {top2[:, 1] - top2[:, 0]}"
    logits = tflite_logits(e.int8, batch)
    np.testing.assert_array_equal(logits.argmax(axis=1)[clear], reference.argmax(axis=1)[clear])
    record_parity(arch, "tflite-int8", float(np.max(np.abs(logits - reference))))


@pytest.mark.slow
@parity("tflite-fp16")
def test_fp16_is_smaller_and_close(exported: Callable[[str], Exported], arch: str, tmp_path: Path) -> None:
    e = exported(arch)
    fp16 = quantize_tflite(e.fp32, tmp_path / "model-fp16.tflite", TfliteQuant.FP16)
    assert fp16.stat().st_size < e.fp32.stat().st_size
    assert_parity(arch, "tflite-fp16", tflite_logits(fp16), e.reference, TFLITE_FP16_ATOL)


@pytest.mark.slow
def test_convert_tflite_quantizes_in_one_call(exported: Callable[[str], Exported], tmp_path: Path) -> None:
    e = exported("distilbert")
    out = convert_tflite(e.model, tmp_path / "q.tflite", lengths=SEQ_LEN, quantization=TfliteQuant.DYNAMIC_INT8)
    assert out.stat().st_size < e.fp32.stat().st_size
    assert tflite_signature(out) == tflite_signature(e.fp32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.tflite"]  # the fp32 temp file is gone


@pytest.mark.slow
def test_to_tflite_and_quantized_tflite_write_one_artifact_per_precision(tmp_path: Path) -> None:
    clf = tiny_classifier("distilbert", tmp_path, ("a", "b", "c"))
    model = clf.model
    cfg = TfliteConfig(quantize=(TfliteQuant.DYNAMIC_INT8, TfliteQuant.FP16))
    fp32 = to_tflite(clf, cfg, tmp_path / "artifacts", max_length=SEQ_LEN)
    arts = [fp32, *quantized_tflite(clf, fp32, cfg, tmp_path / "artifacts", max_length=SEQ_LEN)]
    assert [(a.name, a.precision, a.source) for a in arts] == [
        ("student-tflite-fp32", "fp32", "student"),
        ("student-tflite-int8-dynamic", "int8-dynamic", "student-tflite-fp32"),
        ("student-tflite-fp16", "fp16", "student-tflite-fp32"),
    ]
    assert all(a.format is Format.TFLITE and a.fixed_length == SEQ_LEN and a.model == "student" for a in arts)
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == sorted(f"{a.name}.tflite" for a in arts)
    assert_close(tflite_logits(arts[0].path), model_logits(model), TFLITE_FP32_ATOL, what="to_tflite fp32")


class DataDependent(torch.nn.Module):
    """Branches on a tensor value: torch.export cannot trace it."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor]:
        if input_ids.sum().item() > 0:
            return (input_ids.float()[:, :NUM_LABELS],)
        return (attention_mask.float()[:, :NUM_LABELS],)


@pytest.mark.parametrize("module", [DataDependent(), torch.nn.Linear(4, 2)], ids=["data-dependent", "no-token-inputs"])
def test_unconvertible_module_raises_typed_error(module: torch.nn.Module, tmp_path: Path) -> None:
    out = tmp_path / "model.tflite"
    with pytest.raises(TfliteConversionError, match="DataDependent|Linear") as info:
        convert_tflite(module, out, lengths=SEQ_LEN)  # type: ignore[arg-type]
    assert isinstance(info.value, ExportError)
    assert not out.exists()


def test_bad_arguments_raise_config_errors(tmp_path: Path) -> None:
    model = tiny_model("distilbert")
    with pytest.raises(ValueError, match="lengths"):
        convert_tflite(model, tmp_path / "m.tflite", lengths=0)
    with pytest.raises(ValueError, match="quantization"):
        convert_tflite(model, tmp_path / "m.tflite", lengths=SEQ_LEN, quantization="int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        quantize_tflite(tmp_path / "m.tflite", tmp_path / "q.tflite", TfliteQuant.FP32)
    assert list(tmp_path.iterdir()) == []


def test_failed_conversion_leaves_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(tflite_mod.litert_torch, "signature", boom)
    with pytest.raises(TfliteConversionError, match="DistilBertForSequenceClassification.*converter crashed"):
        convert_tflite(tiny_model("distilbert"), tmp_path / "model.tflite", lengths=SEQ_LEN)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_crash_before_rename_keeps_old_file(
    exported: Callable[[str], Exported], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "model-int8.tflite"
    out.write_bytes(b"previous model")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(quant_mod.os, "replace", crash)
    with pytest.raises(OSError, match="disk went away"):
        quantize_tflite(exported("distilbert").fp32, out, TfliteQuant.DYNAMIC_INT8)
    assert out.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left behind


def test_quantizing_garbage_raises_typed_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(TfliteQuantizationError):
        quantize_tflite(bad, tmp_path / "q.tflite", TfliteQuant.DYNAMIC_INT8)
    with pytest.raises(TfliteConversionError):
        tflite_signature(bad)
    assert not (tmp_path / "q.tflite").exists()
