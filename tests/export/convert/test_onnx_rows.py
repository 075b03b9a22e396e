"""The last layer computed for the first token only (``onnx.first_token_only``): the same
logits, per architecture and exporter, with the last layer's matmuls on one row; a rewrite that
changes the logits fails the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import export.convert.onnx_rows as onnx_rows
from export.config import OnnxConfig, OnnxExporter, load_config
from export.convert.onnx import export_onnx
from export.errors import ConversionError
from export.preflight import resolve_onnx
from tests.builders import NUM_LABELS, TINY_MODELS, assert_same_onnx_logits, tiny_classifier

LABELS = tuple(str(i) for i in range(NUM_LABELS))
# The last layer's attention output projection, two feed-forward matrices, the query projection
# and the two attention products: six MatMuls per BERT-style layer now run on one row.
SIX = {"bert", "distilbert", "electra", "roberta"}


def _one_row_matmuls(path: Path) -> int:
    """MatMuls whose output has one row (axis -2 of size 1) at 9 tokens, by shape inference."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(str(path))
    for i in model.graph.input:
        i.type.tensor_type.shape.dim[0].dim_value = 2
        i.type.tensor_type.shape.dim[1].dim_value = 9
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*inferred.graph.value_info]}
    return sum(
        1
        for n in inferred.graph.node
        if n.op_type == "MatMul" and len(shapes.get(n.output[0], [])) >= 2 and shapes[n.output[0]][-2] == 1
    )


def _export_both(arch: str, exporter: OnnxExporter, tmp: Path) -> tuple[Path, Path]:
    clf = tiny_classifier(arch, tmp / arch, LABELS, save=True)
    whole = export_onnx(clf, tmp / "whole.onnx", exporter=exporter, first_token_only=False)
    pruned = export_onnx(clf, tmp / "pruned.onnx", exporter=exporter)
    return whole, pruned


@pytest.mark.slow
@pytest.mark.parametrize("exporter", [OnnxExporter.OPTIMUM, OnnxExporter.DYNAMO])
@pytest.mark.parametrize("arch", sorted(TINY_MODELS))
def test_the_last_layer_runs_on_the_first_token_with_the_same_logits(
    arch: str, exporter: OnnxExporter, tmp_path: Path
) -> None:
    whole, pruned = _export_both(arch, exporter, tmp_path)
    before, after = _one_row_matmuls(whole), _one_row_matmuls(pruned)
    least = 6 if arch in SIX else 4
    assert after - before >= least, f"{arch}/{exporter.value}: one-row MatMuls {before} → {after}, want +{least}"
    assert_same_onnx_logits(whole, pruned, f"{arch}/{exporter.value}")


def test_bert_runs_its_last_layer_on_the_first_token(tmp_path: Path) -> None:
    # The installed exporter: optimum on transformers 4, dynamo on transformers 5 (scripts/test.sh runs both).
    exporter = resolve_onnx(OnnxConfig()).exporter
    whole, pruned = _export_both("bert", OnnxExporter.AUTO, tmp_path)
    before, after = _one_row_matmuls(whole), _one_row_matmuls(pruned)
    assert after - before >= 6, f"bert/{exporter.value}: one-row MatMuls {before} → {after}, want +6"
    assert_same_onnx_logits(whole, pruned, f"bert/{exporter.value}")


def test_a_rewrite_that_changes_the_logits_fails_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnx_rows.first_token_only

    def last_token(model: onnx.ModelProto, shapes: object = None) -> tuple[onnx.ModelProto, dict[str, int]]:
        rewritten, stats = real(model, shapes)  # then every inserted Slice takes the last row instead
        for init in rewritten.graph.initializer:
            if "first_token" in init.name and init.name.endswith(("_starts", "_ends")):
                value = -1 if init.name.endswith("_starts") else np.iinfo(np.int64).max
                init.CopyFrom(numpy_helper.from_array(np.array([value], dtype=np.int64), init.name))
        return rewritten, stats

    monkeypatch.setattr(onnx_rows, "first_token_only", last_token)
    clf = tiny_classifier("bert", tmp_path / "bert", LABELS, save=True)
    # Same logits on the 1-token probe (its only row is the last), others on the longer ones.
    wrong = r"changed the logits \(max \|Δ\| .* on a 1x7 batch\)"
    with pytest.raises(ConversionError, match=rf"(?s){wrong}.*first_token_only = false") as failed:
        export_onnx(clf, tmp_path / "model.onnx")
    assert "fold_shapes" not in str(failed.value), f"the error blames the fold too: {failed.value}"
    assert not (tmp_path / "model.onnx").exists(), "a failed rewrite left a model behind"


def test_first_token_only_is_a_config_switch(tmp_path: Path) -> None:
    assert OnnxConfig().first_token_only is True
    cfg = tmp_path / "c.toml"
    cfg.write_text('[onnx]\nfirst_token_only = false\n[data]\ntrain = "x.tsv"\n')
    assert load_config(cfg).onnx.first_token_only is False


def _rows_graph(case: str) -> onnx.ModelProto:
    """x [b, s, 4] → MatMul → Relu → (``case``) → MatMul → Gather(axis 1, 0): the head's first row."""
    h = helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 4)).astype(np.float32), n) for n in ("w1", "w2")]
    inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"))
    nodes = [h.make_node("MatMul", ["x", "w1"], ["a"]), h.make_node("Relu", ["a"], ["r"])]
    if case == "mean":  # a residual of the mean over the rows: reads every row of r
        nodes += [
            h.make_node("ReduceMean", ["r"], ["m"], axes=[1], keepdims=1),
            h.make_node("Add", ["r", "m"], ["c"]),
        ]
    elif case == "softmax-rows":  # normalises across the rows
        nodes.append(h.make_node("Softmax", ["r"], ["c"], axis=1))
    elif case == "heads":  # split into 2 heads of 2, moved and back, merged by a [0, 0, -1] target
        inits += [
            numpy_helper.from_array(np.array([0, 0, 2, 2], dtype=np.int64), "split"),
            numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "merge"),
        ]
        nodes += [
            h.make_node("Reshape", ["r", "split"], ["heads"]),
            h.make_node("Transpose", ["heads"], ["moved"], perm=[0, 2, 1, 3]),
            h.make_node("Transpose", ["moved"], ["back"], perm=[0, 2, 1, 3]),
            h.make_node("Reshape", ["back", "merge"], ["c"]),
        ]
    else:
        nodes.append(h.make_node("Identity", ["r"], ["c"]))
    nodes += [h.make_node("MatMul", ["c", "w2"], ["hidden"]), h.make_node("Gather", ["hidden", "zero"], ["y"], axis=1)]
    outputs = [h.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if case == "hidden-out":  # every row is an output
        outputs.append(h.make_tensor_value_info("hidden", TensorProto.FLOAT, None))
    graph = h.make_graph(
        nodes,
        "rows",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch_size", "sequence_length", 4])],
        outputs,
        inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("case", "matmuls"),
    [("plain", 2), ("heads", 2), ("mean", 1), ("softmax-rows", 1), ("hidden-out", 0)],
)
def test_the_walk_stops_at_an_op_that_reads_every_row(case: str, matmuls: int) -> None:
    model = _rows_graph(case)
    rewritten, stats = onnx_rows.first_token_only(model)
    assert stats["matmuls"] == matmuls, f"{case}: {stats}, nodes {[n.op_type for n in rewritten.graph.node]}"
    assert (stats["slices"] >= 1) == (matmuls > 0), f"{case}: {stats}"
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype(np.float32)
    out = [ort.InferenceSession(m.SerializeToString()).run(["y"], {"x": x})[0] for m in (model, rewritten)]
    assert np.allclose(out[0], out[1], atol=1e-6), f"{case}: max |Δ| {np.abs(out[0] - out[1]).max():.3g}"


def test_the_broadcast_row_rule_both_walks_share() -> None:
    from export.convert.rows import broadcast_rows

    s = "seq"  # the row axis (1) of a [batch, seq, hidden] output
    assert broadcast_rows([(0, (2, s, 8)), (1, (8,))], 3, 1, s) == {0: 1}, "a bias has no row axis"
    assert broadcast_rows([(0, (2, s, 8)), (1, (2, 1, 8))], 3, 1, s) == {0: 1}, "size 1: broadcast"
    assert broadcast_rows([(0, (2, 4, s, s)), (1, (2, 1, s, s))], 4, 2, s) == {0: 2, 1: 2}, "both carry it"
    assert broadcast_rows([(0, (2, s, 8)), (1, (2, 5, 8))], 3, 1, s) is None, "5 is neither 1 nor the row size"
    assert broadcast_rows([(0, (2, s, 8)), (1, None)], 3, 1, s) is None, "an unknown shape"
