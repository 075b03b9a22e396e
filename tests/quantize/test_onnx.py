"""ONNX static int8 (QDQ): a calibrated, smaller model that agrees with fp32; clear errors; nothing left behind."""

from __future__ import annotations

import logging
import stat
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.architectures import arch_for, model_input_names
from export.classifier import Classifier
from export.config import OnnxConfig
from export.convert.onnx import export_onnx, to_onnx
from export.convert.quantized import quantized_onnx
from export.errors import ConfigError, QuantizationError
from quantize.calibration import draw_texts
from quantize.integer_only import float_ops
from quantize.modes import OnnxQuant
from quantize.onnx import float_matmuls, quantize_onnx, quantize_selected_constants, unquantized_matmuls
from runtime.backends import OnnxBackend
from tests.builders import NUM_LABELS, SEQ_LEN, VOCAB_SIZE, fixed_batch, tiny_classifier

LABELS = tuple(str(i) for i in range(NUM_LABELS))
ARCHS = ("bert", "distilbert")
DTYPE_MIN = -3.0e38  # below this, a constant is torch.finfo(float32).min: the unbounded mask fill


def calibration_inputs(arch: str, rows: int = 32) -> list[dict[str, np.ndarray]]:
    """Unpadded batch-1 rows of random ids, 4-16 tokens, as ``encode`` returns them (int32)."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(rows):
        n = int(rng.integers(4, SEQ_LEN + 1))
        row = {
            "input_ids": rng.integers(1, VOCAB_SIZE, size=(1, n)).astype(np.int32),
            "attention_mask": np.ones((1, n), np.int32),
            "token_type_ids": (np.arange(n) >= n // 2).astype(np.int32)[None],
        }
        out.append({k: v for k, v in row.items() if k in arch_for(arch).inputs})
    return out


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each architecture's tiny model exported to fp32 ONNX."""
    out = {}
    for arch in ARCHS:
        tmp = tmp_path_factory.mktemp(f"fp32-{arch}")
        clf = tiny_classifier(arch, tmp / "model", LABELS, save=True)
        out[arch] = export_onnx(clf, tmp / "fp32.onnx")
    return out


def weight_bytes(path: Path) -> int:
    """Bytes of the 2-D initializers (weight matrices and embeddings), float32 or int8."""
    sizes = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.INT8: 1}
    graph = onnx.load(str(path)).graph
    return sum(int(np.prod(t.dims)) * sizes.get(t.data_type, 0) for t in graph.initializer if len(t.dims) == 2)


def leftovers(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_static_int8_is_qdq_smaller_and_agrees_on_labels(fp32: dict[str, Path], tmp_path: Path, arch: str) -> None:
    out = quantize_onnx(fp32[arch], tmp_path / "q" / "static.onnx", OnnxQuant.STATIC_INT8, calibration_inputs(arch))
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, f"{arch}: no QDQ pairs in {sorted(ops)}"
    int8_weights = [
        t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
    ]
    assert int8_weights, f"{arch}: no int8 weight matrices"
    # Weight bytes, not file size: on a 32-wide model the QDQ nodes and per-channel scales
    # outweigh what int8 saves (a 3-layer DistilBERT goes 69.6 → 58.7 MB, embeddings in float).
    q_bytes, f_bytes = weight_bytes(out), weight_bytes(fp32[arch])
    assert q_bytes < f_bytes, f"{arch}: static int8 weights take {q_bytes} bytes, fp32 {f_bytes}"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert leftovers(out.parent) == [str(out)], "temporary files left beside the output"
    # Rows 1-3 are padded: the attention mask stays in float, so padding must not leak.
    batch = fixed_batch()
    ref = OnnxBackend(fp32[arch]).run(batch)
    got = OnnxBackend(out).run(batch)
    agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
    delta = float(np.abs(got - ref).max())
    assert agree == 1.0, f"{arch}: labels {got.argmax(-1)} vs fp32 {ref.argmax(-1)} (agreement {agree:.2f})"
    # Sanity bound only (a wrong graph, not int8 noise): logits are O(1) here.
    assert delta < 0.25, f"{arch}: max |Δ| vs fp32 = {delta:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_matmuls_after_a_nonlinearity_stay_float_and_the_rest_are_int8(
    fp32: dict[str, Path], tmp_path: Path, arch: str
) -> None:
    source = onnx.load(str(fp32[arch]))
    kept = float_matmuls(source)
    # Per block the FFN down-projection (after GELU), plus the head (after ReLU / pooler tanh).
    assert len(kept) == 2 + 1, f"{arch}: {kept}"
    out = quantize_onnx(fp32[arch], tmp_path / "static.onnx", OnnxQuant.STATIC_INT8, calibration_inputs(arch, 8))
    model = onnx.load(str(out))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            reads_qdq = any(i in dequantized for i in node.input[:2])
            assert reads_qdq == (node.name not in kept), f"{arch}: {node.name} int8={reads_qdq}"


@pytest.mark.slow
def test_static_int8_without_calibration_says_what_to_pass(fp32: dict[str, Path], tmp_path: Path) -> None:
    for calibration in (None, []):
        with pytest.raises(QuantizationError, match="needs calibration inputs.*pass calibration="):
            quantize_onnx(fp32["bert"], tmp_path / "q.onnx", OnnxQuant.STATIC_INT8, calibration)
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.slow
def test_calibration_without_a_model_input_names_it(fp32: dict[str, Path], tmp_path: Path) -> None:
    rows = [{"input_ids": r["input_ids"]} for r in calibration_inputs("bert", 2)]
    with pytest.raises(QuantizationError, match=r"lack \['attention_mask', 'token_type_ids'\]"):
        quantize_onnx(fp32["bert"], tmp_path / "q.onnx", OnnxQuant.STATIC_INT8, rows)
    assert leftovers(tmp_path) == []


@pytest.fixture
def clean_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """(output folder, working directory, system temp folder), all empty; the test runs in the second."""
    out, cwd, system_tmp = tmp_path / "out", tmp_path / "cwd", tmp_path / "tmp"
    for d in (out, cwd, system_tmp):
        d.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    return out, cwd, system_tmp


def test_a_corrupt_model_fails_clearly_and_leaves_nothing(
    clean_dirs: tuple[Path, Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, cwd, system_tmp = clean_dirs
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model" * 100)
    with caplog.at_level(logging.WARNING, logger="quantize.onnx"):
        with pytest.raises(QuantizationError, match="int8-static quantization of corrupt.onnx failed"):
            quantize_onnx(corrupt, out / "q.onnx", OnnxQuant.STATIC_INT8, calibration_inputs("bert", 2))
    assert "pre-processing of corrupt.onnx failed" in caplog.text
    assert leftovers(out, cwd, system_tmp) == []


@pytest.mark.slow
def test_a_failing_quantizer_leaves_no_partial_output(
    fp32: dict[str, Path], clean_dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime.quantization as ortq

    def half_written(model_input: Path, model_output: Path, *args: object, **kwargs: object) -> None:
        Path(model_output).write_bytes(b"partial")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(ortq, "quantize_static", half_written)
    out, cwd, system_tmp = clean_dirs
    (out / "q.onnx").write_bytes(b"previous")
    with pytest.raises(QuantizationError, match="RuntimeError: killed mid-write"):
        quantize_onnx(fp32["bert"], out / "q.onnx", OnnxQuant.STATIC_INT8, calibration_inputs("bert", 2))
    assert (out / "q.onnx").read_bytes() == b"previous", "the old file was replaced by a partial one"
    assert leftovers(out, cwd, system_tmp) == [str(out / "q.onnx")]


@pytest.mark.slow
def test_falls_back_to_the_exported_model_when_pre_processing_fails(
    fp32: dict[str, Path], clean_dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    import onnxruntime.quantization as ortq

    def failing(*args: object, **kwargs: object) -> None:
        raise ValueError("symbolic shape inference gave up")

    monkeypatch.setattr(ortq, "quant_pre_process", failing)
    out, cwd, system_tmp = clean_dirs
    with caplog.at_level(logging.WARNING, logger="quantize.onnx"):
        q = quantize_onnx(fp32["distilbert"], out / "q.onnx", OnnxQuant.STATIC_INT8, calibration_inputs("distilbert"))
    assert "pre-processing of fp32.onnx failed (ValueError: symbolic shape inference gave up)" in caplog.text
    batch = fixed_batch()
    ref, got = OnnxBackend(fp32["distilbert"]).run(batch), OnnxBackend(q).run(batch)
    assert (got.argmax(-1) == ref.argmax(-1)).all(), f"labels {got.argmax(-1)} vs fp32 {ref.argmax(-1)}"
    assert leftovers(out, cwd, system_tmp) == [str(q)]


def test_quantized_onnx_static_without_calibration_is_a_config_error(tmp_path: Path) -> None:
    clf = tiny_classifier("bert", tmp_path / "unused", LABELS)
    cfg = OnnxConfig(quantize=(OnnxQuant.DYNAMIC_INT8, OnnxQuant.STATIC_INT8))
    with pytest.raises(ConfigError, match=r"\['int8-static'\], which need calibration texts.*remove them from onnx"):
        quantized_onnx([clf], [], cfg, tmp_path / "artifacts")
    assert not (tmp_path / "artifacts").exists()


def test_quantized_onnx_qat_without_the_qat_student_is_a_config_error(tmp_path: Path) -> None:
    clf = tiny_classifier("bert", tmp_path / "unused", LABELS)
    cfg = OnnxConfig(quantize=(OnnxQuant.QAT_INT8,))
    calibration = draw_texts([f"text {i}" for i in range(8)], 4, 0, seed=0)
    with pytest.raises(ConfigError, match="int8-qat, which exports the quantization-aware-trained student.*qat="):
        quantized_onnx([clf], [], cfg, tmp_path / "artifacts", calibration=calibration)
    assert not (tmp_path / "artifacts").exists()


def _qdq_graph(tmp_path: Path) -> Path:
    """x → MatMul(x, DQ(int8 W)) → Where(x0 > 0, −30, 0)-style selection of float constants → Q → DQ: one
    MatMul with a float input, one Where reading float constants on a quantized output."""
    from onnx import TensorProto, helper

    w = numpy_helper.from_array(np.arange(-4, 4, dtype=np.int8).reshape(2, 4), "w_q")
    inits = [
        w,
        numpy_helper.from_array(np.float32(0.5), "w_scale"),
        numpy_helper.from_array(np.int8(0), "w_zero"),
        numpy_helper.from_array(np.float32(-30.0), "fill"),
        numpy_helper.from_array(np.float32(0.0), "zero"),
        numpy_helper.from_array(np.float32(30 / 255), "sel_scale"),
        numpy_helper.from_array(np.uint8(255), "sel_zero"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="w_DQ"),
        helper.make_node("MatMul", ["x", "w"], ["y"], name="float_matmul"),
        helper.make_node("Greater", ["mask", "zero_i"], ["keep"], name="keep"),
        helper.make_node("Where", ["keep", "zero", "fill"], ["sel"], name="select"),
        helper.make_node("QuantizeLinear", ["sel", "sel_scale", "sel_zero"], ["sel_q"], name="sel_Q"),
        helper.make_node("DequantizeLinear", ["sel_q", "sel_scale", "sel_zero"], ["sel_out"], name="sel_DQ"),
    ]
    inits.append(numpy_helper.from_array(np.int64(0), "zero_i"))
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, [1, 3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("sel_out", TensorProto.FLOAT, [1, 3]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path


def test_unquantized_matmuls_names_a_matmul_with_a_float_input(tmp_path: Path) -> None:
    model = onnx.load(str(_qdq_graph(tmp_path)))
    assert unquantized_matmuls(model) == ["float_matmul (float input 1)"]
    model.graph.node[1].input[0] = "w"  # both sides dequantized now
    assert unquantized_matmuls(model) == []


def test_the_selected_constants_are_quantized_exactly_on_the_output_scale(tmp_path: Path) -> None:
    import onnxruntime as ort

    path = _qdq_graph(tmp_path)
    before = float_ops(path)
    assert before.float_ops == {"MatMul": 1, "Where": 1}, before.describe()
    feeds = {"x": np.ones((1, 2), np.float32), "mask": np.array([[1, 0, 1]], np.int64)}
    expected = ort.InferenceSession(str(path)).run(["sel_out"], feeds)[0]
    model = onnx.load(str(path))
    assert quantize_selected_constants(model) == 2
    onnx.checker.check_model(model, full_check=True)
    after_path = tmp_path / "after.onnx"
    onnx.save(model, str(after_path))
    after = float_ops(after_path)
    assert "Where" not in after.float_ops, f"the Where still reads float constants: {after.describe()}"
    got = ort.InferenceSession(str(after_path)).run(["sel_out"], feeds)[0]
    assert np.array_equal(got, expected), f"selection changed: {got} vs {expected}"
    assert sorted(i.name for i in model.graph.initializer if i.name in ("fill", "zero")) == [], "float constants left"


@pytest.mark.slow
def test_quantized_onnx_static_calibrates_on_texts_and_leaves_fp32(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=NUM_LABELS).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    clf = Classifier("student", model, tokenizer, tmp_path / "model", arch_for("bert"), LABELS)
    texts = [f"text number {i} is {'good' if i % 2 else 'bad'} and {'long ' * (i % 7)}" for i in range(40)]
    calibration = draw_texts(texts, 16, 8, seed=0)
    out = tmp_path / "artifacts"
    cfg = OnnxConfig(quantize=(OnnxQuant.STATIC_INT8,))
    (fp32,) = to_onnx([clf], cfg, out)
    (static,) = quantized_onnx([clf], [fp32], cfg, out, calibration=calibration, max_length=32)
    assert (static.precision, static.source, static.path.name) == (
        "int8-static",
        fp32.name,
        "student-onnx-int8-static.onnx",
    )
    assert static.notes and "min/max over 16 training texts" in static.notes[0], static.notes
    assert leftovers(out) == sorted(str(a.path) for a in (fp32, static)), "temporary exports left behind"

    def mask_constants(path: Path) -> list[float]:
        graph = onnx.load(str(path)).graph
        tensors = [a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
        values = [numpy_helper.to_array(t) for t in [*tensors, *graph.initializer]]
        return [float(v.min()) for v in values if v.dtype == np.float32 and v.size and v.min() < -10]

    # The shipped fp32 graph is the plain export (dtype-min mask fill) and matches PyTorch;
    # the static model was made from the bounded-fill export.
    assert any(c < DTYPE_MIN for c in mask_constants(fp32.path)), mask_constants(fp32.path)
    assert mask_constants(static.path) and all(c >= -30.0 for c in mask_constants(static.path))
    batch = {k: v for k, v in fixed_batch().items() if k in model_input_names(model)}
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    fp32_delta = float(np.abs(OnnxBackend(fp32.path).run(batch) - ref).max())
    assert fp32_delta <= 1e-5, f"shipped fp32 max |Δ| vs PyTorch = {fp32_delta:.3g}"
    got = OnnxBackend(static.path).run(batch)
    assert (got.argmax(-1) == ref.argmax(-1)).all(), f"labels {got.argmax(-1)} vs fp32 {ref.argmax(-1)}"
