"""Quantization-aware training and the integer-only export (``int8-qat``): the int8 simulation is
the float model when it does not round, rounds when it does and passes gradients; the integer
graph keeps float outputs; and QAT + conversion gives 0 float ops on BERT, DistilBERT and
MobileBERT, while ALBERT (which casts its mask inline) is refused with the op named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.architectures import model_input_names
from export.config import OnnxConfig, QatConfig, TfliteConfig
from export.convert.integer_graph import integer_graph
from export.convert.onnx import export_integer_onnx, to_onnx
from export.convert.quantized import QatModel, quantized_onnx, quantized_tflite
from export.convert.tflite import to_tflite
from export.data.dataset import Split
from export.errors import ConversionError
from export.train.qat import quantization_aware
from quantize.calibration import CalibrationTexts, encode
from quantize.integer_only import float_ops
from quantize.modes import OnnxQuant, TfliteQuant
from quantize.onnx import unquantized_matmuls
from quantize.qat import ActivationRanges, int8_simulation
from tests.builders import TEXTS, fixed_batch, tiny_model, tokenized_classifier, transformers_major

# "core": scripts/test.sh runs this module on transformers 5 too (.venv-transformers5).
pytestmark = pytest.mark.core


def _feeds(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: torch.as_tensor(fixed_batch()[n]) for n in model_input_names(model)}


@pytest.mark.parametrize("arch", ["bert", "distilbert", "mobilebert"])
def test_simulation_without_rounding_is_the_float_model_and_rounds_when_asked(arch: str) -> None:
    model = tiny_model(arch, attn_implementation="eager")
    feeds = _feeds(model)
    ranges = ActivationRanges()
    with torch.no_grad(), integer_graph(model):
        plain = model(**feeds).logits
        with int8_simulation(model, ranges, observe=True, quantize=False):
            observed = model(**feeds).logits
        with int8_simulation(model, ranges, observe=False):
            rounded = model(**feeds).logits
    delta = float((observed - plain).abs().max())  # LayerNorm runs decomposed: float rounding only
    assert delta < 1e-5, f"{arch}: observing without rounding changed the logits by {delta:.3g}"
    moved = float((rounded - plain).abs().max())
    assert 1e-3 < moved < 1.0 and torch.isfinite(rounded).all(), f"{arch}: int8 rounding moved logits by {moved:.3g}"
    assert len(ranges.ops) > 20 and "linear" in ranges.ops, ranges.ops


def test_simulation_refuses_a_forward_with_another_op_sequence() -> None:
    bert, distilbert = tiny_model("bert", attn_implementation="eager"), tiny_model("distilbert")
    ranges = ActivationRanges()
    with torch.no_grad(), int8_simulation(bert, ranges, observe=True, quantize=False):
        bert(**_feeds(bert))
    with (
        torch.no_grad(),
        int8_simulation(distilbert, ranges, observe=True),
        pytest.raises(RuntimeError, match=r"different sequence of ops"),
    ):
        distilbert(**_feeds(distilbert))


def test_gradients_pass_the_rounding() -> None:
    """Straight-through: every weight matrix gets a gradient through its int8 rounding."""
    model = tiny_model("distilbert", attn_implementation="eager").train()
    ranges = ActivationRanges()
    feeds = _feeds(model)
    with integer_graph(model):
        with torch.no_grad(), int8_simulation(model, ranges, observe=True, quantize=False):
            model(**feeds)
        with int8_simulation(model, ranges, observe=False):
            logits = model(**feeds).logits
        logits.logsumexp(-1).sum().backward()
    linear = [(n, p) for n, p in model.named_parameters() if n.endswith(".weight") and p.dim() == 2]
    dead = [n for n, p in linear if p.grad is None or float(p.grad.abs().sum()) == 0.0]
    assert linear and not dead, f"no gradient through the int8 rounding for {dead}"


@pytest.mark.parametrize("arch", ["bert", "distilbert", "mobilebert", "roberta", "electra"])
def test_integer_graph_keeps_the_float_outputs(arch: str) -> None:
    model = tiny_model(arch, attn_implementation="eager")
    feeds = _feeds(model)
    with torch.no_grad():
        plain = model(**feeds).logits
        with integer_graph(model):
            integer = model(**feeds).logits
        again = model(**feeds).logits
    delta = float((integer - plain).abs().max())
    assert delta < 1e-5, f"{arch}: logits moved by {delta:.3g} under integer_graph (mask fill -30, gathers)"
    assert torch.equal(again, plain), f"{arch}: integer_graph left a patch behind"


def _qat_student(arch: str, tmp_path: Path, cfg: TfliteConfig):
    """A tiny student of ``arch``, its QAT copy (trained for 1 epoch on 64 texts) and calibration texts."""
    labels = ("neg", "neu", "pos")
    clf = tokenized_classifier(arch, tmp_path / "student", labels)
    texts = tuple(TEXTS[:64])
    rng = np.random.default_rng(0)
    train = Split(texts, rng.integers(0, 3, size=len(texts)).astype(np.int64))
    empty = Split((), np.zeros(0, dtype=np.int64))
    calibration = CalibrationTexts(texts[:16], (), 0)
    qat_cfg = QatConfig(epochs=1, batch_size=16, learning_rate=1e-3, recalibrate_every=2)
    trained = quantization_aware(
        clf, clf, train, empty, labels, calibration.calibration, qat_cfg, tmp_path / "qat",
        lengths=cfg.lengths(32), max_length=32, mask_fill=-30.0, seed=0,
    )  # fmt: skip
    return clf, trained, calibration


def _qat_artifact(arch: str, tmp_path: Path):
    cfg = TfliteConfig(quantize=(TfliteQuant.QAT_INT8,), buckets=(16,))
    clf, trained, calibration = _qat_student(arch, tmp_path, cfg)
    fp32 = to_tflite(clf, cfg, tmp_path, max_length=32)
    return quantized_tflite(clf, fp32, cfg, tmp_path, max_length=32, calibration=calibration, qat=QatModel(trained))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "distilbert", "mobilebert"])
def test_qat_and_conversion_give_an_integer_only_graph(arch: str, tmp_path: Path) -> None:
    (artifact,) = _qat_artifact(arch, tmp_path)
    found = float_ops(artifact.path)
    assert found.integer_only, f"{arch}: int8-qat graph is {found.describe(limit=10)}"
    assert artifact.precision == "int8-qat" and artifact.source == "student-tflite-fp32", artifact
    assert any(n.startswith("integer-only: ") for n in artifact.notes), artifact.notes


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "distilbert", "mobilebert"])
def test_onnx_qat_is_a_qdq_graph_with_every_op_quantized(arch: str, tmp_path: Path) -> None:
    """ONNX ``int8-qat``: QDQ around every op (0 float ops), every MatMul / Gemm reads int8 on both
    sides; a padded row gives the logits of the same text unpadded (the mask's fill value sits
    inside the calibrated ranges), and the int8 graph stays near the float QAT model."""
    import onnxruntime as ort

    cfg = OnnxConfig(quantize=(OnnxQuant.QAT_INT8,))
    clf, trained, calibration = _qat_student(arch, tmp_path, TfliteConfig(buckets=(16,)))
    fp32 = to_onnx([clf], cfg, tmp_path)
    qat = QatModel(trained, lengths=(16, 32))
    (artifact,) = quantized_onnx([clf], fp32, cfg, tmp_path, calibration=calibration, qat=qat, max_length=32)
    assert artifact.precision == "int8-qat" and artifact.source == "student-onnx-fp32", artifact
    found = float_ops(artifact.path)
    assert found.integer_only, f"{arch}: ONNX int8-qat graph is {found.describe(limit=10)}"
    assert unquantized_matmuls(onnx.load(str(artifact.path))) == []
    reference = ort.InferenceSession(str(export_integer_onnx(trained, tmp_path / "float.onnx", 18, -30.0)))
    session = ort.InferenceSession(str(artifact.path))
    texts = TEXTS[64:96]
    unpadded = encode(clf.tokenizer, texts, clf.input_names, 32)
    padded = encode(clf.tokenizer, texts, clf.input_names, 32, (32,))
    worst_pad = worst_float = 0.0
    for (_, row), (_, long_row) in zip(unpadded, padded, strict=True):
        feeds = {k: v.astype(np.int64) for k, v in row.items()}
        logits = session.run(None, feeds)[0]
        long_logits = session.run(None, {k: v.astype(np.int64) for k, v in long_row.items()})[0]
        worst_pad = max(worst_pad, float(np.abs(logits - long_logits).max()))
        worst_float = max(worst_float, float(np.abs(logits - reference.run(None, feeds)[0]).max()))
    assert worst_pad < 1e-4, f"{arch}: padding to 32 moved the int8 logits by {worst_pad:.3g} (tolerance 1e-4)"
    assert worst_float < 0.75, f"{arch}: int8 logits {worst_float:.3g} from the float QAT model (tolerance 0.75)"


@pytest.mark.slow
def test_albert_is_refused_naming_its_float_op(tmp_path: Path) -> None:
    """transformers 4: ALBERT builds its additive mask inline with a cast to float (modeling_albert,
    not get_extended_attention_mask): the export says so rather than ship a mixed graph as int8-qat.
    transformers 5 builds ALBERT's mask in masking_utils like the others': integer-only there."""
    if transformers_major() >= 5:
        (artifact,) = _qat_artifact("albert", tmp_path)
        found = float_ops(artifact.path)
        assert found.integer_only, f"albert on transformers 5: int8-qat graph is {found.describe(limit=10)}"
        return
    with pytest.raises(ConversionError, match=r"not integer-only — mixed: 1 of \d+ ops float \(CAST ×1\)"):
        _qat_artifact("albert", tmp_path)
