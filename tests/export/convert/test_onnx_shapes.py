"""Shape folding at ONNX export (``onnx.fold_shapes``): fewer kernels, the same logits, per
architecture and exporter; a fold that changes the logits fails the export."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import sympy

import export.convert.onnx_shapes as onnx_shapes
from export.config import OnnxConfig, OnnxExporter, load_config
from export.convert.onnx import export_onnx
from export.errors import ConversionError
from export.preflight import resolve_onnx
from tests.builders import NUM_LABELS, TINY_MODELS, assert_same_onnx_logits, tiny_classifier

LABELS = tuple(str(i) for i in range(NUM_LABELS))
B, S = sympy.Symbol("batch_size", integer=True, positive=True), sympy.Symbol("sequence_length", integer=True)


def _graph_facts(path: Path) -> tuple[int, int, int]:
    """(nodes, Shape nodes, Reshape nodes whose target is not an initializer)."""
    graph = onnx.load(str(path)).graph
    inits = {i.name for i in graph.initializer}
    reshapes = [n for n in graph.node if n.op_type == "Reshape" and n.input[1] not in inits]
    return len(graph.node), sum(n.op_type == "Shape" for n in graph.node), len(reshapes)


def _export_both(arch: str, exporter: OnnxExporter, tmp: Path) -> tuple[Path, Path]:
    clf = tiny_classifier(arch, tmp / arch, LABELS, save=True)
    # The last layer left whole in both (onnx.first_token_only has its own tests).
    plain = export_onnx(clf, tmp / "plain.onnx", exporter=exporter, fold_shapes=False, first_token_only=False)
    folded = export_onnx(clf, tmp / "folded.onnx", exporter=exporter, first_token_only=False)
    return plain, folded


@pytest.mark.slow
@pytest.mark.parametrize("exporter", [OnnxExporter.OPTIMUM, OnnxExporter.DYNAMO])
@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_folding_removes_shape_kernels_and_keeps_the_logits(
    arch: str, exporter: OnnxExporter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="export.convert.onnx"):
        plain, folded = _export_both(arch, exporter, tmp_path)
    assert not [r for r in caplog.records if "left unfolded" in r.message], caplog.text
    (n0, shapes0, dyn0), (n1, shapes1, dyn1) = _graph_facts(plain), _graph_facts(folded)
    # Every layer's head-split reshapes get constant targets (2 layers: at least 2 × 3 of them).
    assert dyn1 <= dyn0 - 6, f"{arch}/{exporter.value}: Reshapes with computed targets {dyn0} → {dyn1}"
    assert n1 < n0 and shapes1 <= shapes0, f"{arch}/{exporter.value}: nodes {n0} → {n1}, Shape {shapes0} → {shapes1}"
    assert_same_onnx_logits(plain, folded, f"{arch}/{exporter.value}")
    _assert_fold_knows_its_shapes(onnx.load(str(plain)), f"{arch}/{exporter.value}")


def _assert_fold_knows_its_shapes(model: onnx.ModelProto, what: str) -> None:
    """The shapes fold_shapes returns (which the first-token walk then uses) are what symbolic
    inference says of the folded graph."""
    folded, _, shapes = onnx_shapes.fold_shapes(model)
    fresh = onnx_shapes.symbolic_shapes(folded)
    wrong = {k: (shapes.get(k), v) for k, v in fresh.items() if shapes.get(k) != v}
    assert not wrong, f"{what}: {len(wrong)} tensors' shapes (returned, inferred): {list(wrong.items())[:3]}"


def test_bert_folds_every_layers_shape_chain(tmp_path: Path) -> None:
    # The installed exporter: optimum on transformers 4, dynamo on transformers 5 (scripts/test.sh runs both).
    exporter = resolve_onnx(OnnxConfig()).exporter
    plain, folded = _export_both("bert", OnnxExporter.AUTO, tmp_path)
    (n0, shapes0, dyn0), (n1, shapes1, dyn1) = _graph_facts(plain), _graph_facts(folded)
    what = f"{exporter.value}: nodes {n0} → {n1}, computed Reshape targets {dyn0} → {dyn1}"
    assert dyn1 <= dyn0 - 6, what  # each of the 2 layers' Q, K, V head splits
    if exporter is OnnxExporter.OPTIMUM:  # TorchScript traces every size: far more to fold than dynamo's graph
        assert n1 <= 0.6 * n0 and dyn1 <= 1 and shapes1 <= 4, f"{what}, Shape nodes {shapes0} → {shapes1}"
    expands = [sum(n.op_type == "Expand" for n in onnx.load(str(p)).graph.node) for p in (plain, folded)]
    # transformers 4's attention mask has one Expand, to [batch, 1, seq, seq]; transformers 5 builds it otherwise.
    expected = expands[0] == 1 and expands[1] == 0 if exporter is OnnxExporter.OPTIMUM else expands[1] <= expands[0]
    assert expected, f"{exporter.value}: Expands (plain, folded): {expands}"
    assert_same_onnx_logits(plain, folded, "bert")


def test_a_fold_that_changes_the_logits_fails_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnx_shapes.reshape_target

    def heads_swapped(value: np.ndarray, data_shape: object, allowzero: bool) -> np.ndarray | None:
        target = real(value, data_shape, allowzero)  # [0, 0, heads, head_size] → [0, 0, head_size, heads]
        return target[[0, 1, 3, 2]] if target is not None and len(target) == 4 else target

    monkeypatch.setattr(onnx_shapes, "reshape_target", heads_swapped)
    clf = tiny_classifier("bert", tmp_path / "bert", LABELS, save=True)
    # optimum's graph runs and gives other logits; dynamo's declares each tensor's shape, so the
    # checker already refuses the swapped heads.
    logits = r"changed the logits \(max \|Δ\| .* on a \d+x\d+ batch\)"
    changed = rf"(?s)({logits}|folding its shape arithmetic made an invalid graph).*fold_shapes = false"
    with pytest.raises(ConversionError, match=changed) as failed:
        export_onnx(clf, tmp_path / "model.onnx")
    assert "first_token_only" not in str(failed.value), f"the error blames the row rewrite: {failed.value}"
    assert not (tmp_path / "model.onnx").exists(), "a failed fold left a model behind"


def test_reshape_targets() -> None:
    target = onnx_shapes.reshape_target
    heads = np.asarray([B, S, 4, 8], dtype=object)
    assert target(heads, (B, S, 32), False).tolist() == [0, 0, 4, 8]
    # An entry that is not the data's own dimension there becomes the one inferred axis.
    assert target(np.asarray([B, S, 32], dtype=object), (B, 4, S, 8), False).tolist() == [0, -1, 32]
    assert target(np.asarray([S, B, 32], dtype=object), (B, S, 32), False) is None, "two -1s"
    assert target(np.asarray([B, -1, 4, 8], dtype=object), (B, S, 32), True).tolist() == [0, -1, 4, 8]
    assert target(np.asarray([B, 0, 8], dtype=object), (B, S, 32), True) is None, "allowzero's literal 0"
    assert target(np.asarray([2, 4], dtype=np.int64), (2, 4), False) is None, "already constant"


def test_fold_shapes_is_a_config_switch(tmp_path: Path) -> None:
    assert OnnxConfig().fold_shapes is True
    cfg = tmp_path / "c.toml"
    cfg.write_text('[onnx]\nfold_shapes = false\n[data]\ntrain = "x.tsv"\n')
    assert load_config(cfg).onnx.fold_shapes is False


@pytest.mark.parametrize("fails", ["symbolic_shapes", "fold_shapes"])
def test_a_graph_shape_inference_cannot_read_is_exported_unfolded_with_a_warning(
    fails: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(*args: object) -> None:
        raise RuntimeError("Incomplete symbolic shape inference")

    monkeypatch.setattr(onnx_shapes, fails, failing)
    clf = tiny_classifier("bert", tmp_path / "bert", LABELS, save=True)
    with caplog.at_level(logging.WARNING, logger="export.convert.onnx"):
        path = export_onnx(clf, tmp_path / "model.onnx", first_token_only=False)
    assert "shape arithmetic left unfolded" in caplog.text and "Incomplete symbolic" in caplog.text, caplog.text
    nodes, shapes, computed = _graph_facts(path)
    assert computed >= 6, f"the graph should be the exporter's own: {computed} computed Reshape targets"


def _mask_graph(reader: str) -> onnx.ModelProto:
    """mask [b, 1, 1, s] → Expand to [b, 1, s, s] → Cast → ``reader`` (with scores [b, 2, s, s])."""
    from onnx import TensorProto, helper

    h = helper
    nodes = [
        h.make_node("Shape", ["scores"], ["full"]),
        h.make_node("Gather", ["full", "zero"], ["b"]),
        h.make_node("Gather", ["full", "three"], ["s"]),
        h.make_node("Unsqueeze", ["b", "axis0"], ["b1"]),
        h.make_node("Unsqueeze", ["s", "axis0"], ["s1"]),
        h.make_node("Concat", ["b1", "one", "s1", "s1"], ["target"], axis=0),
        h.make_node("Expand", ["mask", "target"], ["expanded"]),
        h.make_node("Cast", ["expanded"], ["cast"], to=TensorProto.FLOAT),
    ]
    if reader == "Add":
        nodes.append(h.make_node("Add", ["scores", "cast"], ["out"]))
    elif reader == "MatMul":
        nodes.append(h.make_node("MatMul", ["cast", "scores"], ["out"]))
    else:  # the expanded tensor is the output itself
        nodes.append(h.make_node("Identity", ["cast"], ["out"]))
    ints = {"zero": [0], "three": [3], "axis0": [0], "one": [1]}
    inits = [h.make_tensor(k, TensorProto.INT64, [] if k in ("zero", "three") else [1], v) for k, v in ints.items()]
    graph = h.make_graph(
        nodes,
        "mask",
        [
            h.make_tensor_value_info("mask", TensorProto.INT64, ["batch_size", 1, 1, "sequence_length"]),
            h.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch_size", 2, *["sequence_length"] * 2]),
        ],
        [h.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize(("reader", "dropped"), [("Add", True), ("MatMul", False), ("Identity", False)])
def test_an_expand_goes_only_where_its_readers_broadcast_it_anyway(reader: str, dropped: bool) -> None:
    import onnxruntime as ort

    model = _mask_graph(reader)
    folded, stats, _ = onnx_shapes.fold_shapes(model)
    ops = [n.op_type for n in folded.graph.node]
    assert stats["expands"] == int(dropped) and ("Expand" not in ops) == dropped, f"{reader}: {ops}, {stats}"
    rng = np.random.default_rng(0)
    feeds = {"mask": rng.integers(0, 2, (2, 1, 1, 5)), "scores": rng.normal(size=(2, 2, 5, 5)).astype(np.float32)}
    run = [ort.InferenceSession(m.SerializeToString()).run(None, feeds)[0] for m in (model, folded)]
    assert run[0].shape == run[1].shape and np.array_equal(run[0], run[1]), f"{reader}: outputs differ"
    _assert_fold_knows_its_shapes(model, reader)  # a dropped Expand makes the tensors after it smaller
