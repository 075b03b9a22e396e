"""``python -m runtime``: predict and selftest, run as a user would, in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime import load_manifest
from tests.builders import LABELS, TinyBundle, copy_bundle, reseal, run_python, shared_bundle


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> TinyBundle:
    return shared_bundle(tmp_path_factory, "bert")


def test_predict_prints_json_lines(bert: TinyBundle) -> None:
    result = run_python("", "-m", "runtime", "predict", str(bert.path), "good", "中文 😀", "--threads", "2")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["good", "中文 😀"]
    for row in rows:
        assert set(row) == {"text", "label", "score", "probabilities", "truncated"}
        assert row["label"] in LABELS and list(row["probabilities"]) == list(LABELS)
        assert row["score"] == max(row["probabilities"].values())


def test_predict_reads_stdin_when_no_texts(bert: TinyBundle) -> None:
    result = run_python("", "-m", "runtime", "predict", str(bert.path), stdin="good\n\nbad movie\n")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["good", "bad movie"]


def test_selftest_passes_on_a_sealed_bundle(bert: TinyBundle) -> None:
    result = run_python("", "-m", "runtime", "selftest", str(bert.path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 3 golden examples reproduce")


def test_selftest_fails_with_exit_1_when_a_golden_logit_is_altered(bert: TinyBundle, tmp_path: Path) -> None:
    path = copy_bundle(bert, tmp_path / "b")
    golden = [dict(g) for g in load_manifest(path).golden]
    golden[1]["logits"] = [golden[1]["logits"][0], golden[1]["logits"][1] - 0.5, golden[1]["logits"][2]]
    reseal(path, golden=golden)
    result = run_python("", "-m", "runtime", "selftest", str(path))
    assert result.returncode == 1
    assert "golden[1] 'the plot is bad': max |Δ| logits 0.5 > atol 0.001" in result.stderr


def test_runtime_errors_exit_2_without_traceback(bert: TinyBundle, tmp_path: Path) -> None:
    path = copy_bundle(bert, tmp_path / "b")
    with (path / "model.onnx").open("r+b") as fh:
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 0xFF]))
    for args in (
        ("predict", str(path), "good"),
        ("selftest", str(tmp_path / "missing")),
        ("predict", str(bert.path), " "),
    ):
        result = run_python("", "-m", "runtime", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "'model.onnx'" in run_python("", "-m", "runtime", "predict", str(path), "good").stderr


def test_bench_reports_latency_percentiles_and_overhead(bert: TinyBundle, tmp_path: Path) -> None:
    texts = tmp_path / "texts.tsv"
    texts.write_text("sentence\tlabel\n" + "".join(f"a fine film number {i}\t1\n" for i in range(30)))
    result = run_python(
        "",
        "-m",
        "runtime",
        "bench",
        str(bert.path),
        "--texts",
        str(texts),
        "--limit",
        "20",
        "--threads",
        "1,2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["threads"] for r in rows] == [1, 2] and all(r["texts"] == 20 for r in rows), rows
    for r in rows:
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"], r
        assert 0 < r["model_p50_ms"] <= r["p99_ms"] and 0 <= r["overhead"] < 1, r
        assert r["throughput"] > 0, r


def test_bench_refuses_a_file_without_text_column(bert: TinyBundle, tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("foo,bar\n1,2\n")
    result = run_python("", "-m", "runtime", "bench", str(bert.path), "--texts", str(bad))
    assert result.returncode == 2 and "no text column among ['foo', 'bar']" in result.stderr, result.stderr
