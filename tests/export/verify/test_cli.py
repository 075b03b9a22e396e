"""``python -m export verify``: thresholds, drift against a baseline, the budget choice, the report,
and the CI drift check (``scripts/drift_check.sh``) against the committed baseline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from export.verify.cli import main
from tests.builders import REPO, seal_again

BASELINE = REPO / "tests" / "baselines" / "drift-report.json"


@pytest.fixture(scope="module")
def drift_run(sst2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The CI drift check as CI runs it: tiny seeded BERT → pipeline → verify against the baseline.

    ``DRIFT_WORK_DIR`` (set by the GitHub workflow) keeps its report for upload; else a tmp dir.
    """
    work = Path(os.environ.get("DRIFT_WORK_DIR") or tmp_path_factory.mktemp("drift"))
    env = {**os.environ, "PYTHON": sys.executable, "SST2": str(sst2_path)}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "drift_check.sh"), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if not (work / "out" / "bundles").is_dir():
        pytest.fail(f"drift_check.sh built no bundles:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return work, proc


def run_verify(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def verify_args(
    out: Path, data: Path, dest: Path, *bundles: str, reference: str = "student", **flags: str
) -> list[str]:
    """Arguments for some bundles of ``out`` against ``out/models/<reference>``, on 200 SST-2 rows."""
    args = [a for b in bundles for a in ("--bundle", str(out / "bundles" / b))]
    args += ["--reference", str(out / "models" / reference), "--data", str(data), "--out", str(dest)]
    args += ["--max-samples", "200", "--latency-samples", "3"]
    return args + [a for k, v in flags.items() for a in (f"--{k.replace('_', '-')}", v)]


def resealed_copy(out: Path, name: str, dest: Path, model_from: str | None = None, **changes: object) -> Path:
    """A copy of a bundle changed after export (another model file, manifest fields) and sealed
    again, so its hashes match and only verify can tell."""
    bundle = dest / name
    shutil.copytree(out / "bundles" / name, bundle)
    if model_from:
        shutil.copyfile(out / "bundles" / model_from / "model.onnx", bundle / "model.onnx")
    seal_again(bundle, **changes)
    return bundle


@pytest.mark.slow
def test_ci_drift_check_passes_against_the_committed_baseline(drift_run) -> None:
    work, proc = drift_run
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    report = json.loads((work / "verify" / "report.json").read_text())
    baseline = json.loads(BASELINE.read_text())
    assert report["passed"] and all(d["passed"] for d in report["drift"]), report["failures"]
    checked = {(d["artifact"], d["metric"]) for d in report["drift"]}
    for r in baseline["results"]:
        for metric in ("accuracy", "logits", "p50_ms"):
            assert (r["name"], metric) in checked, (r["name"], metric)
        if r["source"]:
            assert {(r["name"], "agreement"), (r["name"], "max_abs_delta")} <= checked, r["name"]
    junit = ET.parse(work / "verify" / "junit.xml").getroot()
    assert junit.get("failures") == "0" and int(junit.get("tests")) == len(baseline["results"]), junit.attrib
    size = BASELINE.stat().st_size
    assert size < 16_000, f"baseline is {size} bytes: results and 8 texts' logits only, never data or models"


@pytest.mark.slow
def test_faithful_bundles_pass_with_charts_and_the_pipelines_result_format(
    drift_run, sst2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = drift_run[0] / "out"
    args = verify_args(out, sst2_path, tmp_path / "v", "student-onnx-fp32", "student-tflite-fp32")
    code, stdout, stderr = run_verify(capsys, *args)
    assert code == 0, stderr
    assert "PASSED: 2 bundle(s) verified" in stdout, stdout
    assert len(re.findall(r"^\| (\*\*)?student-(onnx|tflite)-fp32\b", stdout, re.M)) == 2, stdout  # the table
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    pipeline = json.loads((out / "report.json").read_text())
    assert set(report["results"][0]) == set(pipeline["results"][0])  # either can be the other's baseline
    by = {r["name"]: r for r in report["results"]}
    assert list(by) == ["student", "student-onnx-fp32", "student-tflite-fp32"]
    for name in ("student-onnx-fp32", "student-tflite-fp32"):
        assert by[name]["max_abs_delta"] <= by[name]["tolerance"] and by[name]["agreement"] == 1.0, by[name]
    md = (tmp_path / "v" / "report.md").read_text()
    assert "](pareto.png)" in md and "](confusion.png)" in md and "(chosen)" in md, md
    for png in ("pareto.png", "confusion.png"):
        assert (tmp_path / "v" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


@pytest.mark.slow
def test_a_swapped_model_fails_naming_the_artifact_and_the_number(
    drift_run, sst2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = drift_run[0] / "out"
    bundle = resealed_copy(out, "teacher-onnx-fp32", tmp_path, model_from="teacher-onnx-int8-dynamic")
    args = verify_args(out, sst2_path, tmp_path / "v", reference="teacher")
    code, _, stderr = run_verify(capsys, "--bundle", str(bundle), *args)
    assert code == 1, stderr
    found = re.search(r"teacher-onnx-fp32: max \|logit Δ\| vs teacher = ([-+.\de]+) > tolerance 0.0001", stderr)
    assert found and float(found.group(1)) > 1e-3, stderr


@pytest.mark.slow
def test_a_label_order_mix_up_fails_and_collapses_accuracy(
    drift_run, sst2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = drift_run[0] / "out"
    bundle = resealed_copy(out, "student-onnx-fp32", tmp_path, labels=("1", "0"))
    code, _, stderr = run_verify(capsys, "--bundle", str(bundle), *verify_args(out, sst2_path, tmp_path / "v"))
    assert code == 1, stderr
    assert (
        "student-onnx-fp32: manifest labels ['1', '0'] differ from student's id2label ['0', '1'] "
        "(same labels in another order: a label-order mix-up)" in stderr
    ), stderr
    assert "student-onnx-fp32: agreement with student is 0.00% < minimum 99.00%" in stderr, stderr
    ref, mixed = json.loads((tmp_path / "v" / "report.json").read_text())["results"]
    assert mixed["accuracy"] == pytest.approx(1 - ref["accuracy"]), (ref, mixed)  # every label flipped


@pytest.mark.slow
def test_drift_beyond_the_tolerances_fails_with_baseline_and_current(
    drift_run, sst2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = drift_run[0] / "out"
    args = verify_args(out, sst2_path, tmp_path / "v", "student-onnx-fp32", "student-onnx-int8-dynamic")
    assert run_verify(capsys, *args)[0] == 0
    baseline = json.loads((tmp_path / "v" / "report.json").read_text())
    by = {r["name"]: r for r in baseline["results"]}
    by["student-onnx-int8-dynamic"]["accuracy"] += 0.05  # the baseline was 5 points better
    by["student-onnx-int8-dynamic"]["p50_ms"] /= 10  # ... and 10x faster
    baseline["logit_sample"]["logits"]["student-onnx-fp32"][0][0] += 0.01  # ... and one fp32 logit was off
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))

    code, stdout, stderr = run_verify(capsys, *args, "--baseline", str(tmp_path / "baseline.json"))
    assert code == 1, stderr
    acc = 100 * by["student-onnx-int8-dynamic"]["accuracy"]
    expected = [
        rf"student-onnx-int8-dynamic: accuracy [\d.]+% vs baseline {acc:.2f}% \(allowed ±1 pts\)",
        r"student-onnx-int8-dynamic: p50 latency [\d.]+ ms vs baseline [\d.]+ ms \(allowed slowdown ≤ 50%\)",
        r"student-onnx-fp32: max abs logit Δ vs baseline logits 0\.01\d* \(allowed ≤ 0\.001\)",
    ]
    for pattern in expected:
        assert re.search(pattern, stderr), (pattern, stderr)
    assert "| student-onnx-int8-dynamic | accuracy |" in stdout  # the drift table: baseline vs current


@pytest.mark.slow
def test_the_budget_picks_the_most_accurate_verified_bundle_that_fits(
    drift_run, sst2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = drift_run[0] / "out"
    args = ["--bundle", str(out), "--reference", str(out / "models"), "--data", str(sst2_path)]
    args += ["--max-samples", "200", "--latency-samples", "3", "--min-agreement", "0.95"]
    args += ["--out", str(tmp_path / "v"), "--junit", str(tmp_path / "junit.xml")]
    code, stdout, stderr = run_verify(capsys, *args, "--budget-mb", "2")
    assert code == 0, stderr
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    fits = [r for r in report["results"] if r["format"] != "pytorch" and r["passed"] and r["size_bytes"] <= 2e6]
    assert len(fits) >= 2 and all(r["precision"] != "fp32" for r in fits)  # only int8 bundles are that small
    best = max(fits, key=lambda r: (r["accuracy"], -r["p50_ms"], -r["size_bytes"]))
    assert report["choice"]["name"] == best["name"] and report["confusion"]["artifact"] == best["name"]
    assert f"| **{best['name']}** (chosen) |" in stdout and f"Chosen: {best['name']}: the most accurate" in stdout
    assert (
        "within ≤ 2 MB" in report["choice"]["reason"] and "student-onnx-fp32 (4.0 MB > 2)" in report["choice"]["reason"]
    )

    one = verify_args(out, sst2_path, tmp_path / "v", "student-onnx-int8-dynamic", junit=str(tmp_path / "junit.xml"))
    code, _, stderr = run_verify(capsys, *one, "--budget-mb", "0.01")
    assert code == 1 and "budget: no verified bundle within ≤ 0.01 MB" in stderr, stderr
    budget_case = ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase[@name='budget']")
    assert budget_case is not None and budget_case.find("failure") is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"data": "nope.tsv"}, "data file nope.tsv does not exist"),
        ({"label_column": "stars"}, "no label column 'stars'"),
        ({"baseline": "{out}/models/student/config.json"}, "report_version None is not supported"),
        ({"bundle": "{out}/models"}, "no bundle there"),
        ({"max_drop": "-1"}, "max_drop=-1.0 is invalid; allowed: >= 0 (points)"),
        ({"bundle": "{tampered}"}, "does not match manifest.json"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(
    drift_run, sst2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture, flags: dict, needle: str
) -> None:
    out = drift_run[0] / "out"
    tampered = shutil.copytree(out / "bundles" / "student-onnx-fp32", tmp_path / "student-onnx-fp32")
    with (tampered / "model.onnx").open("ab") as f:
        f.write(b"\0")
    args = verify_args(out, sst2_path, tmp_path / "v", "student-onnx-fp32")
    for key, value in flags.items():
        flag, value = f"--{key.replace('_', '-')}", value.format(out=out, tampered=tampered)
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    code, _, stderr = run_verify(capsys, *args)
    assert code == 2, stderr
    assert needle in stderr and stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "v").exists()


def test_nothing_to_verify_against_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{}")
    code, _, stderr = run_verify(capsys, "--bundle", str(tmp_path / "b"), "--data", str(tmp_path / "d.tsv"))
    assert code == 2 and "nothing to verify against: pass --reference" in stderr, stderr


def test_bad_gate_action_is_one_line_and_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--bundle", "b", "--data", "d.tsv", "--on-gate-fail", "maybe"])
    err = capsys.readouterr().err
    assert e.value.code == 2, e.value.code
    assert "--on-gate-fail: 'maybe' is invalid; allowed: fail, skip" in err and err.count("\n") == 1, err
