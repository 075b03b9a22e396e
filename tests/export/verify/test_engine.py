"""The accuracy gate: a deliberately broken quantization fails the run, or — with
``--on-gate-fail skip`` — is left out of the output and the report says so. Never a silent pass,
and skip never hides an fp32 parity failure. Also: 1- and 2-thread latency per artifact."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.__main__ import main as export_main
from export.verify.cli import main as verify_main
from runtime import load_manifest
from tests.builders import seal_again

BROKEN = "student-onnx-int8-dynamic"
FP32 = "student-onnx-fp32"
NOTE = "test sabotage: classifier weights negated after quantization (labels flip)"
# A tiny run: ONNX student only, a few steps; max_drop 1 point, the default gate.
TINY_SETS = (
    "data.max_train_samples=400",
    "data.max_eval_samples=200",
    "data.max_length=32",
    "finetune.learning_rate=1e-3",
    "finetune.max_steps=10",
    "distill.learning_rate=1e-3",
    "distill.max_steps=5",
    "verify.latency_samples=5",
    "tflite.enabled=false",
    "onnx.teacher=false",
)
GATE_FAILURE = re.compile(
    rf"{BROKEN}: accuracy (?P<acc>[\d.]+)% is (?P<drop>[\d.]+) points below {FP32} \(max drop 1\)"
)


def scale_classifier(model_file: Path, scale: float) -> None:
    """Multiplies the classifier head's initializers (int8 or float) by ``scale`` in place."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_file))
    for init in model.graph.initializer:
        if init.name.startswith("classifier."):
            array = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array((array * scale).astype(array.dtype), init.name))
    onnx.save(model, str(model_file))


def sabotage(monkeypatch: pytest.MonkeyPatch, fp32_scale: float | None = None) -> None:
    """Makes the pipeline's ONNX quantization write a broken model (classifier negated: every
    label flips) with a quantizer note; ``fp32_scale`` also puts the fp32 export off by that factor."""
    import export.pipeline as pipeline

    real_convert, real_quantize = pipeline.to_onnx, pipeline.quantized_onnx

    def off(*args, **kwargs):  # whatever to_onnx takes
        artifacts = real_convert(*args, **kwargs)
        for a in artifacts:
            if fp32_scale is not None:
                scale_classifier(a.path, fp32_scale)
        return artifacts

    def broken(*args, **kwargs):  # whatever quantized_onnx takes
        artifacts = real_quantize(*args, **kwargs)
        for a in artifacts:
            scale_classifier(a.path, -1.0)
        return [dataclasses.replace(a, notes=(NOTE,)) for a in artifacts]

    monkeypatch.setattr(pipeline, "to_onnx", off)
    monkeypatch.setattr(pipeline, "quantized_onnx", broken)


def export_args(model: Path, train: Path, out: Path, *extra: str) -> list[str]:
    args = ["-q", "--model", str(model), "--train", str(train), "--out", str(out)]
    return args + [a for s in TINY_SETS for a in ("--set", s)] + list(extra)


@pytest.fixture(scope="module")
def skip_run(tiny_bert_dir: Path, sst2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """``python -m export --on-gate-fail skip`` with a broken int8 quantization: (out, exit code, stdout)."""
    out = tmp_path_factory.mktemp("skip") / "out"
    stdout = io.StringIO()  # capsys is per test; this fixture is per module
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        sabotage(mp)
        code = export_main(export_args(tiny_bert_dir, sst2_path, out, "--on-gate-fail", "skip"))
    yield out, code, stdout.getvalue()


@pytest.mark.slow
def test_the_gate_fails_a_broken_quantization_naming_the_artifact_and_the_numbers(
    tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    sabotage(monkeypatch)
    out = tmp_path / "out"
    code = export_main(export_args(tiny_bert_dir, sst2_path, out))  # on_gate_fail defaults to fail
    stderr = capsys.readouterr().err
    assert code == 1, stderr
    found = GATE_FAILURE.search(stderr)
    assert found and float(found["drop"]) > 1.0, stderr
    report = json.loads((out / "report.json").read_text())
    by = {r["name"]: r for r in report["results"]}
    assert report["passed"] is False and report["left_out"] == [], report["failures"]
    assert by[BROKEN]["status"] == "fail" and by[BROKEN]["skipped"] == "", by[BROKEN]
    assert f"{by[BROKEN]['accuracy_drop']:.2f}" == found["drop"], (by[BROKEN]["accuracy_drop"], found["drop"])
    assert not (out / "bundles" / BROKEN).exists(), "a bundle that failed the gate was shipped"
    assert (out / "bundles" / FP32 / "manifest.json").is_file()
    md = (out / "report.md").read_text()
    assert "**Result: FAILED**" in md and found.group(0) in md and "## Left out" not in md, md


@pytest.mark.slow
def test_skip_leaves_the_broken_quantization_out_and_the_report_says_so(skip_run) -> None:
    out, code, stdout = skip_run
    assert code == 0, stdout
    assert f"Left out: {BROKEN} — skipped: accuracy gate: accuracy" in stdout, stdout
    assert "PASSED: 1 bundle(s)" in stdout and "1 left out by the accuracy gate" in stdout, stdout
    assert {p.name for p in (out / "bundles").iterdir()} == {FP32}, "the skipped bundle must not be shipped"

    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True and report["failures"] == [], report["failures"]
    assert report["bundles"] == [FP32] and report["config"]["verify"]["on_gate_fail"] == "skip", report["bundles"]
    (left,) = report["left_out"]
    r = next(r for r in report["results"] if r["name"] == BROKEN)
    assert left["artifact"] == BROKEN and left["reason"] == r["skipped"], (left, r["skipped"])
    found = re.fullmatch(
        rf"accuracy gate: accuracy ([\d.]+)% is ([\d.]+) points below {FP32} \(max drop 1\)", r["skipped"]
    )
    assert found and float(found.group(2)) > 1.0, r["skipped"]
    assert f"{100 * r['accuracy']:.2f}" == found.group(1) and f"{r['accuracy_drop']:.2f}" == found.group(2), r
    assert r["status"] == "skipped" and r["failures"] == [] and r["notes"] == [NOTE], r

    md = (out / "report.md").read_text()
    assert "**Result: PASSED — 1 artifact(s) left out by the accuracy gate" in md, md
    assert f"- **{BROKEN}** — skipped: {r['skipped']}" in md, md
    row = next(line for line in md.splitlines() if line.startswith(f"| {BROKEN} |"))
    assert row.endswith("| skipped (left out) |"), row
    notes = md.split("## Quantization notes", 1)[-1]
    assert "## Quantization notes" in md and f"- **{BROKEN}**\n  - {NOTE}" in notes, md


@pytest.mark.slow
def test_every_artifact_has_1_and_2_thread_latency_and_int8_is_compared_with_fp32(skip_run) -> None:
    out = skip_run[0]
    report = json.loads((out / "report.json").read_text())
    for r in report["results"]:
        assert set(r["latency"]) == {"1t", "2t"}, r["latency"]
        for key, lat in r["latency"].items():
            assert 0 < lat["p50_ms"] <= lat["p90_ms"], (r["name"], key, lat)
        one = r["latency"]["1t"]
        assert (r["p50_ms"], r["p90_ms"], r["threads"]) == (one["p50_ms"], one["p90_ms"], 1), r
    by = {r["name"]: r for r in report["results"]}
    speed = by[BROKEN]["speed_vs_fp32"]
    assert speed["against"] == FP32, speed
    for key in ("1t", "2t"):
        expected = by[BROKEN]["latency"][key]["p50_ms"] / by[FP32]["latency"][key]["p50_ms"]
        assert speed["p50_ratio"][key] == pytest.approx(expected), (key, speed, expected)
    assert by[FP32]["speed_vs_fp32"] is None, by[FP32]

    md = (out / "report.md").read_text()
    assert "| p50 / p90 ms, 1 thr | p50 / p90 ms, 2 thr | p50 vs fp32 (1 thr) |" in md, md
    for name, r in by.items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {name} |"))
        for key in ("1t", "2t"):
            cell = f"{r['latency'][key]['p50_ms']:.2f} / {r['latency'][key]['p90_ms']:.2f}"
            assert cell in row, (name, key, cell, row)
    row = next(line for line in md.splitlines() if line.startswith(f"| {BROKEN} |"))
    assert f"{speed['p50_ratio']['1t']:.2f}×" in row and " src" in row, row


@pytest.mark.slow
def test_skip_never_hides_an_fp32_parity_failure(
    tiny_bert_dir: Path, sst2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    sabotage(monkeypatch, fp32_scale=1.01)  # the fp32 export 1% off: parity must catch it
    out = tmp_path / "out"
    code = export_main(export_args(tiny_bert_dir, sst2_path, out, "--on-gate-fail", "skip"))
    stderr = capsys.readouterr().err
    assert code == 1, stderr
    found = re.search(rf"{FP32}: max \|logit Δ\| vs student = ([-+.\de]+) > tolerance 0.0001", stderr)
    assert found and float(found.group(1)) > 1e-4, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is False and report["bundles"] == [], report["bundles"]
    assert [x["artifact"] for x in report["left_out"]] == [BROKEN], report["left_out"]
    assert not (out / "bundles" / FP32).exists() and not (out / "bundles" / BROKEN).exists()
    md = (out / "report.md").read_text()
    assert "**Result: FAILED — 1 artifact(s) left out" in md and "## Failures" in md, md


def broken_bundle(out: Path, dest: Path, name: str = BROKEN, scale: float = -1.0, **changes: object) -> Path:
    """A copy of the shipped fp32 bundle with its classifier scaled, re-sealed as ``name`` (a quantized
    precision unless ``changes`` say otherwise), so only verify can tell."""
    bundle = dest / name
    shutil.copytree(out / "bundles" / FP32, bundle)
    scale_classifier(bundle / "model.onnx", scale)
    m = load_manifest(bundle, verify_files=False)
    fields = {"name": name, "precision": "int8-dynamic", "metrics": {**m.metrics, "notes": [NOTE]}}
    seal_again(bundle, **(fields | changes))
    return bundle


def verify_args(out: Path, data: Path, dest: Path, *bundles: Path) -> list[str]:
    args = [a for b in bundles for a in ("--bundle", str(b))]
    args += ["--reference", str(out / "models" / "student"), "--data", str(data), "--out", str(dest)]
    return args + ["--max-samples", "200", "--latency-samples", "3", "--junit", str(dest / "junit.xml")]


@pytest.mark.slow
def test_verify_skip_reports_a_broken_bundle_as_left_out_and_exits_0(
    skip_run, sst2_path: Path, tmp_path: Path, capsys
) -> None:
    out = skip_run[0]
    bundle = broken_bundle(out, tmp_path)
    args = verify_args(out, sst2_path, tmp_path / "v", out / "bundles" / FP32, bundle)

    assert verify_main(args) == 1, "without --on-gate-fail skip a broken quantization fails"
    stderr = capsys.readouterr().err
    assert re.search(rf"{BROKEN}: agreement with student is [\d.]+% < minimum 99.00%", stderr), stderr
    assert re.search(rf"{BROKEN}: accuracy [\d.]+% is [\d.]+ points below student \(max drop 1\)", stderr), stderr

    code = verify_main([*args, "--on-gate-fail", "skip"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert f"Left out: {BROKEN} — skipped: accuracy gate: agreement with student is" in stdout, stdout
    assert "PASSED: 1 bundle(s) verified, 1 left out by the accuracy gate" in stdout, stdout
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    r = next(r for r in report["results"] if r["name"] == BROKEN)
    assert r["status"] == "skipped" and r["accuracy_drop"] > 1 and r["notes"] == [NOTE], r
    assert report["left_out"] == [{"artifact": BROKEN, "reason": r["skipped"]}], report["left_out"]
    assert report["bundles"] == [FP32] and report["choice"]["name"] == FP32, (report["bundles"], report["choice"])
    assert set(r["latency"]) == {"1t", "2t"}, r["latency"]
    md = (tmp_path / "v" / "report.md").read_text()
    assert "## Left out" in md and f"- **{BROKEN}** — skipped: accuracy gate:" in md, md
    suite = ET.parse(tmp_path / "v" / "junit.xml").getroot()
    assert (suite.get("failures"), suite.get("skipped")) == ("0", "1"), suite.attrib
    assert suite.find(f".//testcase[@name='{BROKEN}']/skipped") is not None


@pytest.mark.slow
def test_verify_skip_never_hides_a_parity_or_label_failure(skip_run, sst2_path: Path, tmp_path: Path, capsys) -> None:
    out = skip_run[0]
    wrong_fp32 = broken_bundle(out, tmp_path, FP32, scale=1.01, precision="fp32")
    # labels swapped in the manifest: a packaging bug that also fails the gate (every label flips)
    mixed_up = broken_bundle(out, tmp_path, "student-onnx-int8-mixed", scale=1.0, labels=("1", "0"))
    args = verify_args(out, sst2_path, tmp_path / "v", wrong_fp32, mixed_up)
    code = verify_main([*args, "--on-gate-fail", "skip"])
    stdout, stderr = capsys.readouterr()
    assert code == 1, stdout
    assert re.search(rf"{FP32}: max \|logit Δ\| vs student = [-+.\de]+ > tolerance 0.0001", stderr), stderr
    assert "student-onnx-int8-mixed: manifest labels ['1', '0'] differ" in stderr, stderr
    assert "student-onnx-int8-mixed: agreement with student is 0.00% < minimum 99.00%" in stderr, stderr
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert report["left_out"] == [] and "Left out" not in stdout, (report["left_out"], stdout)


def test_a_derived_model_is_gated_against_the_model_it_was_made_from(tmp_path: Path) -> None:
    """``derived`` (the student with a trimmed vocabulary → the untrimmed one): judged against that
    model with max_drop and min_agreement, not against the teacher, and a failure fails even
    under ``on_gate_fail = skip`` (every export is built on it)."""
    import numpy as np
    import torch

    from export.classifier import torch_logits
    from export.config import VerifyConfig
    from export.data.dataset import Split
    from export.verify.engine import verify
    from tests.builders import LABELS, TEXTS, tokenized_classifier

    teacher = tokenized_classifier("bert", tmp_path / "teacher", LABELS, name="teacher")
    untrimmed = dataclasses.replace(teacher, name="student-untrimmed")
    flipped = tokenized_classifier("bert", tmp_path / "student", LABELS)
    with torch.no_grad():  # a "trimming" that relabels: the head negated
        for p in flipped.model.classifier.parameters():
            p.neg_()
    texts = tuple(TEXTS[:40])
    split = Split(texts, torch_logits(untrimmed, texts, 32).argmax(-1).astype(np.int64))
    cfg = VerifyConfig(latency_samples=2, latency_threads=(1,), min_agreement=0.99, on_gate_fail="skip")
    results, _ = verify([teacher, untrimmed, flipped], [], {}, split, cfg, 32, derived={"student": untrimmed.name})
    by = {r.name: r for r in results}
    assert by["student-untrimmed"].source == "teacher" and by["student-untrimmed"].passed
    s = by["student"]
    assert s.source == "student-untrimmed" and s.accuracy_drop > 1.0 and not s.skipped, s
    assert any("points below student-untrimmed (max drop 1)" in f for f in s.failures), s.failures
    assert any("agreement with student-untrimmed is" in f for f in s.failures), s.failures
    same, _ = verify([teacher, untrimmed, untrimmed], [], {}, split, dataclasses.replace(cfg, min_agreement=1.0), 32)
    assert all(r.passed for r in same), [r.failures for r in same]
