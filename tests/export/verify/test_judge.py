"""The one place a result is decided: parity against the architecture's tolerance, the accuracy
gate (drop and agreement) and what ``on_gate_fail`` does with it — on hand-made logits, no model."""

from __future__ import annotations

import numpy as np
import pytest

from export.architectures import arch_for
from export.config import VerifyConfig
from export.verify.judge import Checks, Subject, apply_gate, judge, parity_tolerance
from export.verify.outputs import LabelledTexts, Outputs
from quantize.modes import GateAction

LABELS = ("0", "1")
# 10 texts, labels 0/1 alternating; the source gets all of them right.
DATA = LabelledTexts(tuple(f"text {i}" for i in range(10)), tuple(str(i % 2) for i in range(10)), "test.tsv")
SOURCE = np.array([[1.0, -1.0] if i % 2 == 0 else [-1.0, 1.0] for i in range(10)], dtype=np.float32)
LATENCY = {"1t": {"p50_ms": 2.0, "p90_ms": 3.0}, "2t": {"p50_ms": 1.5, "p90_ms": 2.5}}
CFG = VerifyConfig(max_drop=1.0, min_agreement=0.99)


def subject(logits: np.ndarray, checks: Checks, **fields: object) -> Subject:
    base = {
        "name": "a",
        "format": "onnx",
        "precision": "int8-dynamic",
        "model": "student",
        "size_bytes": 1000,
        "latency": LATENCY,
        "outputs": Outputs(LABELS, logits),
        "source": "src",
        "source_outputs": Outputs(LABELS, SOURCE),
        "checks": checks,
    }
    return Subject(**(base | fields))


def flipped(n: int) -> np.ndarray:
    """The source's logits with the first ``n`` texts' labels flipped."""
    out = SOURCE.copy()
    out[:n] *= -1
    return out


def test_a_quantized_artifact_beyond_the_gate_fails_or_is_left_out() -> None:
    gate = Checks(max_drop=CFG.max_drop, min_agreement=CFG.min_agreement, gated=True)
    r = judge(subject(flipped(2), gate), DATA, CFG)
    assert r.status == "fail", r
    assert r.failures == (
        "a: agreement with src is 80.00% < minimum 99.00%",
        "a: accuracy 80.00% is 20.00 points below src (max drop 1)",
    ), r.failures
    assert (r.accuracy, r.accuracy_drop, r.source_agreement) == pytest.approx((0.8, 20.0, 0.8)), r

    skip = VerifyConfig(max_drop=1.0, min_agreement=0.99, on_gate_fail=GateAction.SKIP)
    r = judge(subject(flipped(2), gate), DATA, skip)
    assert r.status == "skipped" and r.passed and r.failures == (), r
    assert r.skipped == (
        "accuracy gate: agreement with src is 80.00% < minimum 99.00%; "
        "accuracy 80.00% is 20.00 points below src (max drop 1)"
    ), r.skipped


def test_skip_never_hides_a_parity_failure() -> None:
    tol = parity_tolerance(arch_for("bert"), "onnx")
    off = SOURCE * 1.01  # same labels, logits 1% off
    skip = VerifyConfig(max_drop=0.0, on_gate_fail=GateAction.SKIP)
    r = judge(subject(off, Checks(tolerance=tol, max_drop=0.0), precision="fp32"), DATA, skip)
    assert r.status == "fail" and r.tolerance == tol and r.max_abs_delta == pytest.approx(0.01), r
    assert r.failures == (f"a: max |logit Δ| vs src = 0.01 > tolerance {tol:g}",), r.failures


def test_an_ungated_drop_is_a_failure_named_after_its_limit() -> None:
    checks = Checks(max_drop=5.0, drop_limit="max student drop")
    r = judge(subject(flipped(1), checks, precision="fp32"), DATA, CFG)
    assert r.failures == ("a: accuracy 90.00% is 10.00 points below src (max student drop 5)",), r.failures


def test_a_source_has_no_comparison_and_latency_comes_from_the_first_thread_count() -> None:
    s = subject(SOURCE, Checks(max_drop=0.0), source="", source_outputs=None, reference=Outputs(LABELS, flipped(5)))
    r = judge(s, DATA, VerifyConfig(latency_threads=(2, 1)))
    assert r.passed and r.accuracy == 1.0 and r.agreement == 0.5, r
    assert (r.max_abs_delta, r.accuracy_drop, r.source_agreement, r.tolerance) == (None, None, None, None), r
    assert (r.p50_ms, r.p90_ms, r.threads, r.latency) == (1.5, 2.5, 2, LATENCY), r


def test_agreement_with_the_source_is_not_reported_twice() -> None:
    """``python -m export verify``: the reference is the source, so ``agreement`` already says it."""
    reference = Outputs(LABELS, SOURCE)
    s = subject(flipped(1), Checks(), reference=reference, report_source_agreement=False)
    r = judge(s, DATA, CFG)
    assert r.agreement == pytest.approx(0.9) and r.source_agreement is None, r


def test_parity_tolerance_is_the_architectures_bound_for_the_format() -> None:
    arch = arch_for("bert")
    assert parity_tolerance(arch, "onnx") == arch.onnx_atol
    assert parity_tolerance(arch, "tflite") == arch.tflite_atol


@pytest.mark.parametrize(
    ("failures", "gate", "action", "expected"),
    [
        ([], ["accuracy low"], GateAction.FAIL, (("a: accuracy low",), "")),
        ([], ["accuracy low", "agreement low"], GateAction.SKIP, ((), "accuracy gate: accuracy low; agreement low")),
        (["a: parity"], ["accuracy low"], GateAction.SKIP, (("a: parity", "a: accuracy low"), "")),
        (["a: parity"], [], GateAction.SKIP, (("a: parity",), "")),
        ([], [], GateAction.SKIP, ((), "")),
    ],
)
def test_apply_gate_skips_only_a_gate_only_failure(failures, gate, action, expected) -> None:
    got = apply_gate("a", failures, gate, action)
    assert got == expected, (failures, gate, action, got)


def test_a_result_that_depends_on_batch_mates_fails_even_under_skip() -> None:
    """Batched logits within the precision's golden tolerance pass; one relabelled text (or a
    logit moved past the tolerance) fails, and ``on_gate_fail = skip`` does not waive it."""
    gate = Checks(max_drop=CFG.max_drop, min_agreement=CFG.min_agreement, gated=True)
    nudged = SOURCE + np.float32(0.04)  # within int8's 5e-2
    r = judge(subject(SOURCE, gate, batch_outputs=Outputs(LABELS, nudged)), DATA, CFG)
    assert r.passed and r.batch_label_changes == 0, r.failures
    assert r.batch_max_delta == pytest.approx(0.04, abs=1e-6), r.batch_max_delta

    skip = VerifyConfig(max_drop=1.0, min_agreement=0.99, on_gate_fail=GateAction.SKIP)
    r = judge(subject(SOURCE, gate, batch_outputs=Outputs(LABELS, flipped(1))), DATA, skip)
    assert r.status == "fail" and not r.skipped, r
    assert r.batch_label_changes == 1 and r.batch_max_delta == pytest.approx(2.0), r
    assert r.failures[0].startswith(
        "a: its result depends on what a text is batched with — 1 of 10 texts change label and max |logit Δ| "
        "is 2 (tolerance 0.05)"
    ), r.failures

    # No label changes, but fp32 logits that move by 1e-2 are beyond the float tolerance 1e-3.
    fp32 = subject(SOURCE, Checks(), precision="fp32", batch_outputs=Outputs(LABELS, SOURCE + np.float32(1e-2)))
    r = judge(fp32, DATA, CFG)
    assert not r.passed and "0 of 10 texts change label and max |logit Δ| is 0.01 (tolerance 0.001)" in r.failures[0]
