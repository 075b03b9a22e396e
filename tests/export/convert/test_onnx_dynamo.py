"""The second ONNX exporter, ``torch.onnx.export(dynamo=True)``: parity per architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import export.preflight as preflight
from export.architectures import arch_for
from export.artifacts import Artifact
from export.classifier import Classifier
from export.config import OnnxConfig, OnnxExporter, load_config
from export.convert.onnx import to_onnx
from export.convert.quantized import quantized_onnx
from export.errors import ConfigError
from runtime.backends import OnnxBackend
from tests.builders import (
    NUM_LABELS,
    assert_close,
    assert_dynamic_axes,
    assert_parity,
    fixed_batch,
    model_logits,
    parity,
    tiny_classifier,
)

# "core": scripts/test.sh runs this module on transformers 5 too (.venv-transformers5).
pytestmark = pytest.mark.core

LABELS = tuple(str(i) for i in range(NUM_LABELS))

# 18 is the exporter's own opset; below it ONNX's version converter must rewrite the graph,
# which fails for some ops (MobileBERT's Pad) - export_onnx then refuses, see the last test.
CONFIG = OnnxConfig(exporter=OnnxExporter.DYNAMO, opset=18, teacher=False)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """Exports each tiny model once per module, on first use: fp32 and int8."""
    cache: dict[str, tuple[Classifier, list[Artifact]]] = {}

    def get(arch: str) -> tuple[Classifier, list[Artifact]]:
        if arch not in cache:
            tmp = tmp_path_factory.mktemp(f"dynamo-{arch}")
            clf = tiny_classifier(arch, tmp / arch, LABELS, save=True)
            fp32 = to_onnx([clf], CONFIG, tmp / "artifacts")
            cache[arch] = (clf, fp32 + quantized_onnx([clf], fp32, CONFIG, tmp / "artifacts"))
        return cache[arch]

    return get


def test_exporter_is_chosen_in_config() -> None:
    assert OnnxConfig().exporter is OnnxExporter.AUTO and OnnxConfig().opset is None
    assert load_config(None, ["onnx.exporter=dynamo"]).onnx.exporter is OnnxExporter.DYNAMO
    with pytest.raises(ConfigError, match="onnx.exporter='jit' is invalid; allowed: auto, optimum, dynamo"):
        load_config(None, ["onnx.exporter=jit"])


@pytest.mark.parametrize(
    ("optimum", "transformers", "want"),
    [("0.1.0", "4.57.6", ("optimum", 17)), (None, "4.57.6", ("dynamo", 18)), (None, "5.25.0", ("dynamo", 18))],
)
def test_auto_picks_optimum_only_where_it_is_installed(
    monkeypatch: pytest.MonkeyPatch, optimum: str | None, transformers: str, want: tuple[str, int]
) -> None:
    versions = {"optimum-onnx": optimum, "transformers": transformers}
    monkeypatch.setattr(preflight, "installed", versions.get)
    got = preflight.resolve_onnx(OnnxConfig())
    assert (got.exporter.value, got.opset) == want, f"optimum-onnx {optimum}, transformers {transformers}: {got}"
    # An explicit opset stays, whichever exporter auto picks.
    assert preflight.resolve_onnx(OnnxConfig(opset=19)).opset == 19
    if optimum is None:
        with pytest.raises(
            ConfigError, match=r"onnx.exporter=optimum needs optimum-onnx, which needs transformers 4.57"
        ):
            preflight.resolve_onnx(OnnxConfig(exporter=OnnxExporter.OPTIMUM))


def test_tensorflow_converter_on_transformers_5_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "installed", {"transformers": "5.25.0"}.get)
    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: object())  # "TensorFlow is installed"
    cfg = load_config(None, ["tflite.converter=tensorflow"])
    with pytest.raises(ConfigError, match=r"tflite.converter=tensorflow needs transformers 4.x \(installed: 5.25.0"):
        preflight.resolve_toolchain(cfg)


@pytest.mark.slow
@parity("onnx-dynamo-fp32")
def test_dynamo_fp32_parity_and_inputs_by_name(exported, arch: str) -> None:
    clf, (fp32, int8) = exported(arch)
    graph = onnx.load(str(fp32.path))
    assert [i.name for i in graph.graph.input] == list(arch_for(arch).inputs)
    assert fp32.opset == CONFIG.opset
    assert any(o.version == CONFIG.opset for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    assert_dynamic_axes(graph)
    onnx.checker.check_model(graph, full_check=True)
    backend = OnnxBackend(fp32.path)
    batch = fixed_batch()
    assert_parity(
        arch, "onnx-dynamo-fp32", backend.run(batch), model_logits(clf.model, batch), arch_for(arch).onnx_atol
    )
    short = {k: v[1:2, :7] for k, v in batch.items()}  # batch 1 × 7 tokens: both axes are dynamic
    assert_close(backend.run(short), model_logits(clf.model, short), arch_for(arch).onnx_atol, f"{arch} short")
    # The int8 quantizer finds this exporter's weight MatMuls too.
    assert int8.path.stat().st_size < fp32.path.stat().st_size
    got, ref = OnnxBackend(int8.path).run(batch), model_logits(clf.model, batch)
    assert (got.argmax(-1) == ref.argmax(-1)).all(), f"{arch} int8 labels {got.argmax(-1)} vs {ref.argmax(-1)}"
    assert float(np.max(np.abs(got - ref))) < 0.25


@pytest.mark.slow
def test_an_opset_the_converter_cannot_reach_is_refused(tmp_path: Path) -> None:
    from export.convert.onnx import export_onnx
    from export.errors import ConversionError

    clf = tiny_classifier("mobilebert", tmp_path / "mobilebert", LABELS, save=True)
    with pytest.raises(ConversionError, match=r"\(mobilebert\) with dynamo produced opset 18, not onnx.opset=17"):
        export_onnx(clf, tmp_path / "x.onnx", 17, OnnxExporter.DYNAMO)
    assert not (tmp_path / "x.onnx").exists()
