"""ONNX export: fp32 parity with PyTorch per architecture, dynamic axes, int8 label agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from export.architectures import ARCHITECTURES, arch_for
from export.classifier import Classifier
from export.config import OnnxConfig, OnnxExporter
from export.convert.onnx import export_onnx, to_onnx
from export.convert.quantized import quantized_onnx
from export.preflight import resolve_onnx
from quantize.modes import OnnxQuant
from quantize.onnx import weight_nodes
from runtime.backends import OnnxBackend
from tests.builders import (
    NUM_LABELS,
    TINY_MODELS,
    assert_close,
    assert_dynamic_axes,
    assert_parity,
    fixed_batch,
    model_logits,
    parity,
    require,
    tiny_classifier,
)

LABELS = tuple(str(i) for i in range(NUM_LABELS))


def weight_bytes(path: Path, dtype: int) -> int:
    """Bytes of the 2-D initializers of one dtype (the weight matrices and embeddings)."""
    model = onnx.load(str(path))
    return sum(
        int(np.prod(t.dims)) * (4 if dtype == onnx.TensorProto.FLOAT else 1)
        for t in model.graph.initializer
        if t.data_type == dtype and len(t.dims) == 2
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Classifier, list]]:
    out = {}
    for name in TINY_MODELS:
        tmp = tmp_path_factory.mktemp(f"onnx-{name}")
        clf = tiny_classifier(name, tmp / name, LABELS, save=True)
        fp32 = to_onnx([clf], OnnxConfig(), tmp / "artifacts")
        out[name] = (clf, fp32 + quantized_onnx([clf], fp32, OnnxConfig(), tmp / "artifacts"))
    return out


def test_every_architecture_has_an_onnx_parity_test() -> None:
    missing = set(ARCHITECTURES) - set(TINY_MODELS)
    assert not missing, f"Missing models: {missing}"


@pytest.mark.slow
@parity("onnx-fp32")
def test_fp32_parity_and_inputs_by_name(exported, arch: str) -> None:
    clf, arts = exported[arch]
    fp32 = next(a for a in arts if a.precision == "fp32")
    graph = onnx.load(str(fp32.path))
    assert [i.name for i in graph.graph.input] == list(arch_for(arch).inputs), [i.name for i in graph.graph.input]
    native = resolve_onnx(OnnxConfig()).opset  # 17 with optimum, 18 with dynamo (transformers 5)
    assert fp32.opset == native and any(o.version == native for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    assert_dynamic_axes(graph)
    backend = OnnxBackend(fp32.path)
    batch = fixed_batch()
    # batch 4 × 16 tokens, then batch 1 × 7 tokens: the batch and sequence axes are dynamic.
    assert_parity(arch, "onnx-fp32", backend.run(batch), model_logits(clf.model, batch), arch_for(arch).onnx_atol)
    short = {k: v[1:2, :7] for k, v in batch.items()}
    assert_close(backend.run(short), model_logits(clf.model, short), arch_for(arch).onnx_atol, f"{arch} short")


@pytest.mark.slow
@parity("onnx-int8")
def test_int8_is_smaller_and_agrees_on_labels(exported, arch: str) -> None:
    clf, arts = exported[arch]
    fp32 = next(a for a in arts if a.precision == "fp32")
    q = next(a for a in arts if a.precision == OnnxQuant.DYNAMIC_INT8.value)
    assert q.source == fp32.name and q.model == "student"
    # Weight bytes, not file size: on a 32-wide model the int8 graph's extra scale and
    # zero-point tensors outweigh what int8 saves (the pipeline test checks file sizes).
    f_bytes, q_bytes = weight_bytes(fp32.path, onnx.TensorProto.FLOAT), weight_bytes(q.path, onnx.TensorProto.INT8)
    assert 0 < q_bytes < f_bytes / 3, (q_bytes, f_bytes)
    quantized = weight_nodes(onnx.load(str(fp32.path)))
    assert not any("attention/self/MatMul" in n for n in quantized), "activation×activation MatMul quantized"
    batch = fixed_batch()
    ref = model_logits(clf.model, batch)
    got = OnnxBackend(q.path).run(batch)
    assert (got.argmax(-1) == ref.argmax(-1)).all(), f"{arch} int8 labels {got.argmax(-1)} vs fp32 {ref.argmax(-1)}"
    # Sanity bound only (catches a wrong graph, not int8 noise): logits here are O(1) and
    # measured int8 error is 0.02-0.12; labels above are the real check.
    assert_parity(arch, "onnx-int8", got, ref, 0.25)


def test_export_onnx_rejects_a_folder_without_model(tmp_path: Path) -> None:
    """optimum exports from the saved folder (the dynamo exporter exports the model in memory)."""
    from export.errors import ConversionError

    require("optimum.exporters.onnx")
    (tmp_path / "empty").mkdir()
    clf = tiny_classifier("bert", tmp_path / "empty", LABELS)
    with pytest.raises(ConversionError, match="ONNX export of student"):
        export_onnx(clf, tmp_path / "x.onnx", exporter=OnnxExporter.OPTIMUM)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_an_onnx_bundle_opens_in_optimum_with_the_runtimes_labels(arch: str, tmp_path: Path) -> None:
    """``ORTModelForSequenceClassification.from_pretrained(bundle)`` and ``AutoTokenizer`` load a
    bundle as they load an Optimum export, and predict what the kit's runtime predicts."""
    ort_model = require("optimum.onnxruntime").ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    from export.convert.bundle import make_bundle
    from runtime import TextClassifier
    from tests.builders import tokenized_classifier

    labels = ("neg", "neu", "pos")
    clf = tokenized_classifier(arch, tmp_path / "model", labels)
    (fp32,) = to_onnx([clf], OnnxConfig(quantize=()), tmp_path / "artifacts")
    bundle = tmp_path / "bundle"
    make_bundle(fp32, clf, bundle, 32)
    texts = ["a good movie", "The plot is BAD, and the acting was not very good.", "fine", "worst film ever made"]
    theirs = ort_model.from_pretrained(bundle)
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    logits = theirs(**tokenizer(texts, padding=True, return_tensors="pt")).logits.detach().numpy()
    ours = TextClassifier.load(bundle).logits(texts)
    delta = float(np.abs(logits - ours).max())
    assert delta < 1e-4, f"{arch}: Optimum's logits {delta:.3g} from the runtime's (tolerance 1e-4)"
    assert theirs.config.id2label == dict(enumerate(labels)), theirs.config.id2label
