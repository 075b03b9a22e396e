"""report.md / report.json: the verify table (every thread count, int8 vs fp32) and which model each
number measures."""

from __future__ import annotations

import dataclasses

from export.report.document import selection_section


def test_the_table_shows_every_thread_count_and_flags_an_int8_slower_than_fp32() -> None:
    from export.report.document import Report, table
    from export.verify.judge import ArtifactResult

    def result(name: str, precision: str, source: str, one: float, two: float | None) -> ArtifactResult:
        lat = {"1t": {"p50_ms": one, "p90_ms": 2 * one}}
        if two is not None:
            lat["2t"] = {"p50_ms": two, "p90_ms": 2 * two}
        return ArtifactResult(
            name, "onnx", precision, "student", source, 10**6, 0.8, 1.0, None, None, 0.0, one, 2 * one, 1, latency=lat
        )

    results = (
        result("student-onnx-fp32", "fp32", "student", 2.0, 1.0),
        result("student-onnx-int8-static", "int8-static", "student-onnx-fp32", 3.0, 0.5),  # slower at 1 thread
        result("student-onnx-int8-dynamic", "int8-dynamic", "student-onnx-fp32", 1.0, 0.8),
    )
    md = table(results)
    assert "| p50 / p90 ms, 1 thr | p50 / p90 ms, 2 thr | p50 vs fp32 (1 thr) |" in md, md
    rows = {line.split(" | ")[0][2:]: line for line in md.splitlines()[2:]}
    assert "| 3.00 / 6.00 | 0.50 / 1.00 | **1.50×** src (slower) |" in rows["student-onnx-int8-static"], rows
    assert "| 1.00 / 2.00 | 0.80 / 1.60 | 0.50× src |" in rows["student-onnx-int8-dynamic"], rows
    assert "| 2.00 / 4.00 | 1.00 / 2.00 | — |" in rows["student-onnx-fp32"], rows
    speed = Report(results, {}, {}, {}, ()).to_dict()["results"][1]["speed_vs_fp32"]
    assert speed == {"against": "student-onnx-fp32", "p50_ratio": {"1t": 1.5, "2t": 0.5}}, speed

    # A result read from a report written before 2-thread figures (no "latency") keeps its 1-thread p50.
    old = dataclasses.replace(results[0], latency={})
    assert "| 2.00 / 4.00 | — | — |" in table([old, results[2]]), table([old, results[2]])


def _selection(refit: str, trained_on: bool) -> dict:
    model = {"eval_accuracy": 0.8812, "best_validation_accuracy": 0.89, "chosen_epoch": 2.5, "train_rows": 52852}
    return {
        "refit": refit,
        "models": {"teacher": model, "student": model | {"eval_accuracy": 0.87}},
        "eval_rows": 861,
        "shipped_train_rows": 67349,
        "eval_trained_on": trained_on,
    }


def test_report_says_which_model_each_number_measures() -> None:
    md = "\n".join(selection_section(_selection("all", True), {"eval_carved": True}))
    assert "teacher **88.12%**" in md and "student **87.00%**" in md and "epoch 2.5" in md, md
    assert "refit on all 67349 rows" in md and "not unseen-data accuracy" in md, md
    md = "\n".join(selection_section(_selection("except-eval", False), {"eval_carved": True}))
    assert "kept out of the refit" in md and "not unseen" not in md, md
    md = "\n".join(selection_section(_selection("all", False), {"eval_carved": False}))
    assert "the eval file, never trained on" in md, md
    md = "\n".join(selection_section(_selection("off", False), {"eval_carved": True}))
    assert "finetune.refit = off" in md, md


def test_the_table_says_whether_each_bundle_is_integer_only() -> None:
    from export.report.document import table
    from export.verify.judge import ArtifactResult

    def result(name: str, integer: str | None, count: int | None) -> ArtifactResult:
        return ArtifactResult(
            name, "tflite", "int8-full", "student", "", 10**6, 0.8, 1.0, None, None, None, 1.0, 2.0, 1,
            integer=integer, float_ops=count,
        )  # fmt: skip

    md = table(
        [
            result("student", None, None),
            result("student-tflite-int8-qat", "integer-only", 0),
            result("student-tflite-int8-full", "mixed: 3 of 131 ops float (CAST ×2, EMBEDDING_LOOKUP ×1)", 3),
        ]
    )
    assert "| integer ops | size MB | status |" in md, md
    rows = {line.split(" | ")[0][2:]: line for line in md.splitlines()[2:]}
    assert "| integer-only | 1.0 | pass |" in rows["student-tflite-int8-qat"], rows
    assert "| mixed: 3 of 131 ops float (CAST ×2, EMBEDDING_LOOKUP ×1) | 1.0 |" in rows["student-tflite-int8-full"]
    assert "| — | 1.0 | pass |" in rows["student"], rows
