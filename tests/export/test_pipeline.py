"""The whole chain on a tiny random BERT and a real slice of SST-2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.config import load_config
from export.pipeline import run
from quantize.integer_only import float_ops
from runtime import TextClassifier, load_manifest
from runtime.classifier import golden_atol
from tests.builders import seal_again

# Every test runs the whole chain (or reads the module's run of it) on a tiny BERT and SST-2.
# "core": scripts/test.sh runs this module on transformers 5 too (.venv-transformers5).
pytestmark = [pytest.mark.slow, pytest.mark.core]

EXPECTED_BUNDLES = {
    "student-onnx-fp32",
    "student-onnx-int8-dynamic",
    "teacher-onnx-fp32",
    "teacher-onnx-int8-dynamic",
    "student-tflite-fp32",
    "student-tflite-int8-dynamic",
}

# Measured on the module's run (200 eval texts): the int8-dynamic student labels all 200 as the
# fp32 export does, ONNX and TFLite alike; its logits are within 0.028 (ONNX) / 0.010 (TFLite)
# of fp32's while the smallest fp32 margin between the two labels is 0.86, so no label is near
# a flip. 0.99 allows 2 of 200 to differ under another library version; inverted labels agree
# on 0%, random ones on ~50%, and a class-1 bias that flips 7 texts (3.5 points, within the
# gate's max_drop 5, and within the old |Δ agreement with the teacher| ≤ 0.05) on 96.5%.
INT8_MIN_AGREEMENT = 0.99
# Measured on test_pipeline_calibrated_modes' run (200 eval texts): int8-static, int8-full and
# 16x8 each label all 200 as their fp32 source does, at max |logit Δ| 0.014, 0.30 and 0.33 (the
# smallest fp32 margin is 0.86). 0.98 allows 4 of 200 to differ: the larger errors of the
# full-integer modes leave less room than int8-dynamic's.
CALIBRATED_MIN_AGREEMENT = 0.98


def tiny_run_config(model_dir: Path, train: Path, out: Path, *extra: str):
    return load_config(
        None,
        [
            f"model.name_or_path={model_dir}",
            f"data.train={train}",
            f"out={out}",
            "data.max_train_samples=400",
            "data.max_eval_samples=200",
            "data.max_length=32",
            # Enough training for both models to give both labels (109 of the 200 eval texts
            # get "1"): at 2 / 1 epochs and 1e-3 both labelled every text "1", so every label
            # agreement in this file was 100% whatever the exports did.
            "finetune.epochs=4",
            "finetune.learning_rate=3e-3",
            "distill.epochs=2",
            "distill.learning_rate=3e-3",
            "verify.latency_samples=5",
            # A loose gate: the tests below bound each quantized artifact's label agreement
            # with its source themselves; the gate is tested in tests/export/verify/test_judge.py.
            "verify.max_drop=5",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def pipeline_out(tiny_bert_dir: Path, sst2_path: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("run") / "out"
    report = run(tiny_run_config(tiny_bert_dir, sst2_path, out))
    return out, report


def test_pipeline_writes_every_bundle_and_report(pipeline_out) -> None:
    out, report = pipeline_out
    assert report.passed, report.failures
    assert set(report.bundles) == EXPECTED_BUNDLES
    assert {p.name for p in (out / "bundles").iterdir()} == EXPECTED_BUNDLES
    data = json.loads((out / "report.json").read_text())
    assert data["passed"] is True
    names = [r["name"] for r in data["results"]]
    assert names[:2] == ["teacher", "student"] and set(names[2:]) == EXPECTED_BUNDLES
    assert data["data"]["labels"] == ["0", "1"] and data["data"]["eval"] == 200
    assert data["left_out"] == [] and all(r["status"] == "pass" for r in data["results"]), data["left_out"]
    for r in data["results"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["p50_ms"] > 0 and r["size_bytes"] > 0, r
        assert set(r["latency"]) == {"1t", "2t"} and r["threads"] == 1, r["latency"]
        assert (r["speed_vs_fp32"] is None) == (r["precision"] == "fp32"), (r["name"], r["speed_vs_fp32"])
        if r["precision"] == "fp32" and r["format"] != "pytorch":
            assert r["max_abs_delta"] <= r["tolerance"], r
    md = (out / "report.md").read_text()
    assert "PASSED" in md and "student-tflite-int8-dynamic" in md
    assert not list(out.parent.glob(".out.partial-*")), "staging directory left behind"
    assert (out / "models" / "teacher" / "config.json").is_file()
    assert not (out / "models" / "checkpoints").exists()


def assert_batch_invariant(data: dict) -> None:
    """Every bundle in a report gave each eval text the same label, and logits within its
    precision's golden tolerance, one text per call and in batches of 32 (verify measured both)."""
    bundles = [r for r in data["results"] if r["format"] != "pytorch"]
    assert bundles, "no bundle in the report"
    for r in bundles:
        changes, delta, tol = r["batch_label_changes"], r["batch_max_delta"], golden_atol(r["precision"])
        assert changes == 0 and delta <= tol, (
            f"{r['name']}: batching relabels {changes} eval texts, max |logit Δ| {delta:.3g} (tolerance {tol:g})"
        )


def test_every_bundle_says_whether_its_graph_is_integer_only(pipeline_out) -> None:
    """report.json and report.md carry each bundle's float-op count, computed from the shipped file."""
    out, _ = pipeline_out
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    for r in data["results"]:
        if r["format"] == "pytorch":
            assert r["integer"] is None and r["float_ops"] is None, r
            continue
        bundle = out / "bundles" / r["name"]
        found = float_ops(bundle / json.loads((bundle / "manifest.json").read_text())["model_file"])
        assert (r["float_ops"], r["integer"]) == (found.count, found.describe(limit=3)), (r["name"], found)
        # fp32 and dynamic-range int8 compute in float: most of their ops are float ops
        assert found.count >= found.ops // 2, (r["name"], found.describe())
        row = next(line for line in md.splitlines() if line.startswith(f"| {r['name']} |"))
        assert f"| {r['integer']} |" in row, row


def test_every_bundle_is_batch_invariant(pipeline_out) -> None:
    out, _ = pipeline_out
    data = json.loads((out / "report.json").read_text())
    assert {r["precision"] for r in data["results"]} >= {"fp32", "int8-dynamic"}
    assert_batch_invariant(data)
    assert "Batch invariance: every bundle's eval texts run one per call" in (out / "report.md").read_text()


def test_shipped_models_are_refit_and_the_report_says_so(pipeline_out) -> None:
    """Default ``finetune.refit = all``: the selection run's eval accuracy is reported as the
    unseen-data figure; the shipped models trained on every row, eval included, and the report
    marks the verify table's accuracy as measured on rows they trained on."""
    out, _ = pipeline_out
    data = json.loads((out / "report.json").read_text())
    sel = data["selection"]
    assert sel["refit"] == "all" and sel["eval_trained_on"] is True, sel
    rows = data["data"]["train"] + data["data"]["validation"] + data["data"]["eval"]
    assert sel["shipped_train_rows"] == data["data"]["refit_rows"] == rows == 700, (sel, data["data"])
    for name in ("teacher", "student"):
        m = sel["models"][name]
        assert 0.0 <= m["eval_accuracy"] <= 1.0 and m["train_rows"] == 400, m
        shipped = json.loads((out / "models" / name / "training.json").read_text())
        assert shipped["evaluations"] == [], f"shipped {name} is the selection run (it was validated): {shipped}"
        # the refit took the epochs its selection run chose, over the 700 rows, batch 32
        steps = round(m["chosen_epoch"] * np.ceil(700 / 32))
        assert shipped["steps"] == data["training"][name]["steps"] == steps, (m, shipped)
    md = (out / "report.md").read_text()
    assert "## Which model each number measures" in md and "not unseen-data accuracy" in md, md


def test_student_is_a_smaller_distilbert(pipeline_out) -> None:
    out, report = pipeline_out
    cfg = json.loads((out / "models" / "student" / "config.json").read_text())
    assert cfg["model_type"] == "distilbert" and cfg["n_layers"] == 1, cfg
    sizes = {r.name: r.size_bytes for r in report.results}
    assert sizes["student"] < sizes["teacher"], sizes
    assert sizes["student-onnx-int8-dynamic"] < sizes["student-onnx-fp32"], sizes
    assert sizes["student-tflite-int8-dynamic"] < sizes["student-tflite-fp32"], sizes


def test_bundles_carry_manifest_and_runtime_predicts(pipeline_out) -> None:
    out, report = pipeline_out
    for name in EXPECTED_BUNDLES:
        bundle = out / "bundles" / name
        m = load_manifest(bundle)
        assert m.labels == ("0", "1") and m.max_length == 32, m
        assert "token_type_ids" not in m.input_names if name.startswith("student") else True
        assert {"model." + m.backend, "tokenizer.json", "vocab.txt", "labels.txt"} <= set(m.files)
        assert m.metrics["accuracy"] == next(r.accuracy for r in report.results if r.name == name)
        assert len(m.golden) == 5
        clf = TextClassifier.load(bundle)
        results = clf.selftest()
        assert len(results) == 5
        preds = clf.predict(["a gorgeous , witty , seductive movie .", "the worst film of the year ."])
        assert all(p.label in ("0", "1") for p in preds)
        assert all(abs(sum(p.probabilities.values()) - 1) < 1e-6 for p in preds)


def _labels(bundle: Path, texts: list[str]) -> np.ndarray:
    """The label index a bundle gives each text, through the runtime that ships."""
    return TextClassifier.load(bundle).logits(texts).argmax(axis=1)


def test_int8_agrees_with_fp32_on_labels(pipeline_out, tiny_bert_dir: Path, sst2_path: Path) -> None:
    """The int8-dynamic student labels the eval texts as the fp32 student export does, both run
    through the runtime (not read from the report), and the report's agreement with the source
    is that figure."""
    from export.data.dataset import load_data

    out, report = pipeline_out
    cfg = tiny_run_config(tiny_bert_dir, sst2_path, out)
    texts = list(load_data(cfg.data, cfg.seed).eval.texts)
    by = {r.name: r for r in report.results}
    for fmt in ("onnx", "tflite"):
        q_name, f_name = f"student-{fmt}-int8-dynamic", f"student-{fmt}-fp32"
        q, f = _labels(out / "bundles" / q_name, texts), _labels(out / "bundles" / f_name, texts)
        # A model that gives every text one label agrees with any other such model: no test.
        assert 0 < f.sum() < len(texts), f"{f_name} gives {int(f.sum())} of {len(texts)} texts label 1"
        agree = float((q == f).mean())
        assert agree >= INT8_MIN_AGREEMENT, (
            f"{q_name} labels {agree:.1%} of {len(texts)} eval texts as {f_name} does "
            f"({int((q != f).sum())} differ; minimum {INT8_MIN_AGREEMENT:.0%})"
        )
        r = by[q_name]
        assert r.source == f_name and r.source_agreement == pytest.approx(agree), (
            f"{q_name}: the report's agreement with {r.source} is {r.source_agreement}; measured {agree} with {f_name}"
        )


def _broken_copy(out: Path, name: str, tmp: Path, scale: float) -> Path:
    """A re-sealed copy of a bundle whose classifier weights are scaled (a 'wrong export')."""
    import shutil

    import onnx
    from onnx import numpy_helper

    bundle = tmp / f"{name}-broken"
    shutil.copytree(out / "bundles" / name, bundle)
    model = onnx.load(str(bundle / "model.onnx"))
    for init in model.graph.initializer:
        if init.name.startswith("classifier."):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * scale, init.name))
    onnx.save(model, str(bundle / "model.onnx"))
    seal_again(bundle)
    return bundle


def _reload(out: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from export.architectures import arch_for
    from export.classifier import Classifier

    models = []
    for name in ("teacher", "student"):
        path = out / "models" / name
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        models.append(
            Classifier(
                name, model, AutoTokenizer.from_pretrained(path), path, arch_for(model.config.model_type), ("0", "1")
            )
        )
    return models


def test_verify_fails_a_wrong_export_and_a_broken_quantization(pipeline_out, tmp_path: Path, sst2_path: Path) -> None:
    from export.artifacts import Artifact, Format
    from export.config import DataConfig, VerifyConfig
    from export.data.dataset import load_data
    from export.verify.engine import verify

    out, _ = pipeline_out
    models = _reload(out)
    data = load_data(DataConfig(train=sst2_path, max_train_samples=400, max_eval_samples=200, max_length=32))
    wrong_fp32 = _broken_copy(out, "student-onnx-fp32", tmp_path, scale=1.01)  # 1% off: parity must catch it
    flipped = _broken_copy(out, "student-onnx-int8-dynamic", tmp_path, scale=-1.0)  # labels inverted
    arts = [
        Artifact("student-onnx-fp32", wrong_fp32 / "model.onnx", Format.ONNX, "fp32", "student", "student"),
        Artifact(
            "student-onnx-int8-dynamic",
            flipped / "model.onnx",
            Format.ONNX,
            "int8-dynamic",
            "student",
            "student-onnx-fp32",
        ),
    ]
    bundles = {"student-onnx-fp32": wrong_fp32, "student-onnx-int8-dynamic": flipped}
    results, _ = verify(models, arts, bundles, data.eval, VerifyConfig(latency_samples=2, max_drop=1.0), 32)
    by = {r.name: r for r in results}
    assert by["teacher"].passed and by["student"].passed
    fp32, q = by["student-onnx-fp32"], by["student-onnx-int8-dynamic"]
    assert not fp32.passed and fp32.max_abs_delta > fp32.tolerance, fp32
    assert "student-onnx-fp32: max |logit Δ| vs student" in fp32.failures[0], fp32.failures
    assert not q.passed and q.accuracy_drop > 1.0, q
    assert "points below student-onnx-fp32 (max drop 1)" in q.failures[0], q.failures


def test_stage_failure_leaves_no_output(
    tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.pipeline as pipeline
    from export.errors import ConversionError

    def boom(*args, **kwargs):
        raise ConversionError("simulated exporter crash")

    monkeypatch.setattr(pipeline, "to_onnx", boom)
    out = tmp_path / "out"
    cfg = tiny_run_config(tiny_bert_dir, sst2_path, out, "finetune.max_steps=2", "distill.max_steps=2")
    with pytest.raises(ConversionError, match="simulated"):
        run(cfg)
    assert not out.exists(), "a failed run must not leave an output directory"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["out.checkpoints"], f"only the trained stages may stay (for a rerun to reuse), found {left}"
    kept = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "out.checkpoints").iterdir())
    assert kept == ["student", "student-refit", "teacher", "teacher-refit"], kept


def test_refuses_non_empty_output_dir(tmp_path: Path, tiny_bert_dir: Path, sst2_path: Path) -> None:
    from export.errors import ConfigError

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty; choose another --out or pass --overwrite"):
        run(tiny_run_config(tiny_bert_dir, sst2_path, out))
    assert (out / "keep.txt").read_text() == "mine"


def test_pipeline_calibrated_modes(tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path) -> None:
    """int8-static (ONNX) and int8-full / 16x8 (TFLite) through the whole chain: calibration drawn
    from the training split, the sensitivity search's notes in report.json / report.md, and every
    calibrated artifact shipped (not left out by the gate), labelling like its fp32 source."""
    out = tmp_path / "out"
    cfg = tiny_run_config(
        tiny_bert_dir,
        sst2_path,
        out,
        "onnx.teacher=false",
        "onnx.quantize=int8-static",
        "tflite.quantize=int8-full,16x8",
        "tflite.buckets=16",
        "quantize.calibration_samples=32",
        "quantize.sensitivity_samples=32",
        "quantize.max_float_groups=2",
        "verify.on_gate_fail=skip",
    )
    report = run(cfg)
    assert report.passed, report.failures
    data = json.loads((out / "report.json").read_text())
    by_name = {r["name"]: r for r in data["results"]}
    expected = {"student-onnx-int8-static", "student-tflite-int8-full", "student-tflite-16x8"}
    assert expected <= set(by_name), sorted(by_name)
    for name in ("student-tflite-int8-full", "student-tflite-16x8"):
        notes = by_name[name]["notes"]
        assert notes and notes[0].startswith("sensitivity search on 32 held-out training texts"), notes
    assert by_name["student-onnx-int8-static"]["notes"], "int8-static should say what it kept in float"
    assert_batch_invariant(data)
    md = (out / "report.md").read_text()
    assert "sensitivity search on 32 held-out training texts" in md
    # on_gate_fail=skip must not hide a broken mode: each one is shipped, not left out.
    for name in sorted(expected):
        r = by_name[name]
        assert r["status"] == "pass" and name in data["bundles"], f"{name} not shipped: {r['status']} {r['skipped']}"
    for name in sorted(expected):
        r, source = by_name[name], by_name[name]["source"]
        assert r["source_agreement"] >= CALIBRATED_MIN_AGREEMENT, (
            f"{name} labels {r['source_agreement']:.1%} of the eval texts as {source} does "
            f"(minimum {CALIBRATED_MIN_AGREEMENT:.0%}); max |logit Δ| {r['max_abs_delta']:.3g}"
        )
        # The fp32 source's golden examples (the first eval texts) are the labels to give.
        golden = load_manifest(out / "bundles" / source).golden
        got = [p.label for p in TextClassifier.load(out / "bundles" / name).predict([g["text"] for g in golden])]
        want = [g["label"] for g in golden]
        assert got == want, f"{name} labels the golden texts {got}; {source} labels them {want}"


def test_pipeline_with_a_trimmed_vocabulary(tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path) -> None:
    """``vocab.trim``: the shipped student keeps the pieces of the training texts (MiniLM's real
    30,522-piece tokenizer here), is gated against ``student-untrimmed``, and its bundles carry
    the trimmed tokenizer, which the runtime reads with exactly the ids of the trimmed model."""
    from transformers import AutoTokenizer

    from export.data.dataset import load_data
    from runtime.tokenizer import BundleTokenizer

    out = tmp_path / "out"
    extra = (
        "vocab.trim=true",
        "onnx.teacher=false",
        "tflite.buckets=16",
        "finetune.max_steps=20",
        "distill.max_steps=20",
    )
    cfg = tiny_run_config(tiny_bert_dir, sst2_path, out, *extra)
    report = run(cfg)
    assert report.passed, report.failures
    by = {r.name: r for r in report.results}
    assert list(by)[:3] == ["teacher", "student-untrimmed", "student"], list(by)
    assert by["student-untrimmed"].source == "teacher" and by["student"].source == "student-untrimmed"
    assert by["student"].accuracy_drop is not None and by["student"].source_agreement is not None
    assert by["student-onnx-fp32"].source == "student" and by["student-tflite-fp32"].source == "student"
    data = json.loads((out / "report.json").read_text())
    v = data["vocab"]
    full = json.loads((out / "models" / "student-untrimmed" / "config.json").read_text())["vocab_size"]
    trimmed = json.loads((out / "models" / "student" / "config.json").read_text())["vocab_size"]
    assert v["pieces_original"] == full == 30522 and v["pieces_kept"] == trimmed < 10000, v
    assert v["embedding_mb_fp32_after"] < v["embedding_mb_fp32_before"], v
    assert v["texts"] == "the refit rows outside eval", v  # the default refit = all: what the student learned
    assert 0 <= v["eval_unknown_words_before"] <= v["eval_unknown_words_after"] < 0.05, v
    # 400 training rows: many eval words are new to them (measured 29%), cut into characters
    assert v["eval_unknown_words_after"] - v["eval_unknown_words_before"] <= v["eval_changed_words"] < 0.5, v
    assert v["eval_changed_words"] > 0 and v["source_changed_words"] == 0, v  # min_count 1: the source is exact
    assert "## Vocabulary trimming" in (out / "report.md").read_text()
    splits = load_data(cfg.data, cfg.seed)
    original = AutoTokenizer.from_pretrained(out / "models" / "student-untrimmed")
    hf = AutoTokenizer.from_pretrained(out / "models" / "student")
    old_to_new = {original.convert_tokens_to_ids(p): i for p, i in hf.get_vocab().items()}
    for text in splits.train.texts[:200]:  # the texts that chose the pieces tokenize as before
        ids = original(text, truncation=True, max_length=32)["input_ids"]
        assert hf(text, truncation=True, max_length=32)["input_ids"] == [old_to_new[i] for i in ids], text
    for name in report.bundles:
        bundle = out / "bundles" / name
        assert load_manifest(bundle).source_model == "student", name
        assert len((bundle / "vocab.txt").read_text(encoding="utf-8").splitlines()) == trimmed, name
        tok = BundleTokenizer(bundle / "tokenizer.json", max_length=32)
        enc = tok.encode(list(splits.eval.texts), pad_to=None)
        for row, text in enumerate(splits.eval.texts):
            got = enc.input_ids[row][enc.attention_mask[row] == 1].tolist()
            assert got == hf(text, truncation=True, max_length=32)["input_ids"], (name, text)
        assert len(TextClassifier.load(bundle).selftest()) == 5, name


def test_trimming_a_bpe_model_is_refused_before_training(tmp_path: Path, sst2_path: Path) -> None:
    from export.errors import ConfigError
    from tests.builders import LABELS, tokenized_classifier

    tokenized_classifier("roberta", tmp_path / "roberta", LABELS)
    cfg = tiny_run_config(tmp_path / "roberta", sst2_path, tmp_path / "out", "vocab.trim=true")
    with pytest.raises(ConfigError, match="roberta with a bpe tokenizer; trimming supports WordPiece tokenizers only"):
        run(cfg)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.checkpoints").exists(), "it trained first"


def test_pipeline_int8_qat_ships_an_integer_only_student(tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path) -> None:
    """``int8-qat``: the qat stage fine-tunes the student under int8 simulation, the export has no
    float op between the token ids and the logits (counted from the shipped file), the accuracy
    gate judges it against the fp32 student's TFLite; the same QAT student ships as an ONNX QDQ
    graph, every op quantized, judged against the fp32 student's ONNX."""
    extra = (
        "onnx.teacher=false",
        "onnx.quantize=int8-qat",
        "tflite.quantize=int8-qat",
        "tflite.buckets=16",
        "quantize.calibration_samples=32",
        "qat.epochs=1",
        "qat.learning_rate=1e-3",
        "qat.recalibrate_every=5",
    )
    out = tmp_path / "out"
    report = run(tiny_run_config(tiny_bert_dir, sst2_path, out, *extra))
    assert report.passed, report.failures
    data = json.loads((out / "report.json").read_text())
    r = {x["name"]: x for x in data["results"]}["student-tflite-int8-qat"]
    assert r["status"] == "pass" and r["source"] == "student-tflite-fp32", r
    assert r["integer"] == "integer-only" and r["float_ops"] == 0, (r["integer"], r["float_ops"])
    shipped = out / "bundles" / "student-tflite-int8-qat" / "model.tflite"
    assert float_ops(shipped).integer_only, float_ops(shipped).describe()
    assert r["notes"][0].startswith("quantization-aware training: "), r["notes"]
    assert any(n.startswith("integer-only: ") for n in r["notes"]), r["notes"]
    qat = data["training"]["student-qat"]
    assert qat["steps"] >= 1 and not qat["reused"], qat
    assert r["source_agreement"] >= CALIBRATED_MIN_AGREEMENT - 0.08, (
        f"int8-qat labels {r['source_agreement']:.1%} of the eval texts as the fp32 student does"
    )
    o = {x["name"]: x for x in data["results"]}["student-onnx-int8-qat"]
    assert o["status"] == "pass" and o["source"] == "student-onnx-fp32", o
    assert o["integer"] == "integer-only" and o["float_ops"] == 0, (o["integer"], o["float_ops"])
    assert o["notes"][0] == r["notes"][0] and any(n.startswith("QDQ int8 of the") for n in o["notes"]), o["notes"]
    assert o["source_agreement"] >= CALIBRATED_MIN_AGREEMENT - 0.08, (
        f"ONNX int8-qat labels {o['source_agreement']:.1%} of the eval texts as the fp32 student does"
    )
