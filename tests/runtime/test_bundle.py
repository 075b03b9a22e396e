"""The bundle format: sealing, round trips, and every way a manifest is refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.bundle import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    load_manifest,
    seal,
    sha256_file,
    write_manifest,
)
from runtime.errors import BundleError

LABELS = ("negative", "positive")


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        name="fake-onnx",
        model_type="bert",
        backend="onnx",
        precision="fp32",
        model_file="model.onnx",
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        max_length=16,
        fixed_length=None,
        labels=list(LABELS),
        lowercase=True,
        tokenizer_file="tokenizer.json",
        golden=[{"text": "hi", "input_ids": [2, 9, 3], "logits": [0.5, -0.5], "label": "negative"}],
    )
    return {**base, **overrides}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A sealed bundle whose files are placeholders (hashes are all load_manifest checks)."""
    d = tmp_path / "bundle"
    d.mkdir()
    (d / "model.onnx").write_bytes(bytes(range(256)) * 8)
    (d / "tokenizer.json").write_text('{"fake": true}', encoding="utf-8")
    seal(d, **fields())
    return d


def edit_manifest(bundle: Path, **changes: Any) -> None:
    """Rewrites manifest.json as raw JSON, bypassing Manifest validation."""
    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None and key != "fixed_length":
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def test_seal_then_load_round_trips(bundle: Path) -> None:
    loaded = load_manifest(bundle)
    assert loaded.files == {
        "model.onnx": sha256_file(bundle / "model.onnx"),
        "tokenizer.json": sha256_file(bundle / "tokenizer.json"),
    }
    assert loaded.input_names == ("input_ids", "attention_mask", "token_type_ids")  # lists become tuples
    assert loaded.golden[0]["input_ids"] == (2, 9, 3)
    assert loaded == Manifest(**fields(), files=dict(loaded.files))
    raw = json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert (raw["format"], raw["format_version"]) == (BUNDLE_FORMAT, FORMAT_VERSION)
    assert list(raw)[:2] == ["format", "format_version"]
    assert (bundle / MANIFEST_NAME).read_text(encoding="utf-8").startswith('{\n  "format"')  # indent 2


def test_manifest_is_immutable(bundle: Path) -> None:
    manifest = load_manifest(bundle)
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.files["model.onnx"] = "0" * 64  # type: ignore[index]


def test_seal_skips_manifest_and_hidden_files_and_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"m")
    (tmp_path / "tokenizer.json").write_bytes(b"t")
    (tmp_path / "notes.txt").write_bytes(b"extra files are hashed too")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    manifest = seal(tmp_path, **fields())
    assert sorted(manifest.files) == ["model.onnx", "notes.txt", "tokenizer.json"]
    seal(tmp_path, **fields())  # resealing ignores the existing manifest.json
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".DS_Store", MANIFEST_NAME, *manifest.files, "sub"])


def test_numpy_values_from_the_exporter_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"m")
    (tmp_path / "tokenizer.json").write_bytes(b"t")
    golden = [
        {"text": "hi", "input_ids": np.array([2, 3]), "logits": np.array([0.1, 0.2], np.float32), "label": "positive"}
    ]
    seal(tmp_path, **fields(golden=golden, metrics={"accuracy": np.float32(0.5)}))
    loaded = load_manifest(tmp_path)
    assert loaded.golden[0]["input_ids"] == (2, 3)
    assert loaded.metrics["accuracy"] == pytest.approx(0.5)


def test_extra_unlisted_files_are_ok(bundle: Path) -> None:
    (bundle / "README.md").write_text("hello", encoding="utf-8")
    load_manifest(bundle)


def test_flipped_byte_in_model_is_refused_naming_the_file(bundle: Path) -> None:
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[100] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"'model\.onnx'.*sha256 expected [0-9a-f]{12}\.\.\., got [0-9a-f]{12}"):
        load_manifest(bundle)
    load_manifest(bundle, verify_files=False)  # opt-out skips hashing


def test_truncated_file_is_refused(bundle: Path) -> None:
    path = bundle / "tokenizer.json"
    path.write_bytes(path.read_bytes()[:5])
    with pytest.raises(BundleError, match=r"'tokenizer\.json'.*modified or truncated"):
        load_manifest(bundle)


def test_missing_file_is_refused(bundle: Path) -> None:
    (bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"'model\.onnx'.* is missing"):
        load_manifest(bundle)


def test_missing_manifest_and_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=f"no {MANIFEST_NAME} in {tmp_path}"):
        load_manifest(tmp_path)
    with pytest.raises(BundleError, match="does not exist"):
        load_manifest(tmp_path / "nope")


def test_manifest_that_is_not_json(bundle: Path) -> None:
    (bundle / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_manifest(bundle)


def test_unsupported_format_version_says_found_and_supported(bundle: Path) -> None:
    edit_manifest(bundle, format_version=2)
    with pytest.raises(BundleError, match=r"format_version 2 is not supported \(this runtime supports 1\)"):
        load_manifest(bundle)


def test_wrong_format_string(bundle: Path) -> None:
    edit_manifest(bundle, format="something/else")
    with pytest.raises(BundleError, match="'format' is 'something/else'"):
        load_manifest(bundle)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"labels": None}, "missing required field.*labels"),
        ({"max_length": "16"}, "'max_length' must be a positive int, got str"),
        ({"max_length": True}, "'max_length' must be a positive int"),
        ({"lowercase": 1}, "'lowercase' must be a bool"),
        ({"input_names": "input_ids"}, "'input_names' must be a list of non-empty strings"),
        ({"labels": ["a", "a"]}, "'labels' has duplicates"),
        ({"surprise": 1}, "unknown field.*surprise"),
        ({"backend": "coreml"}, "backend 'coreml' is unknown; known backends: onnx, tflite"),
        ({"model_file": "model.tflite"}, "does not end in '.onnx'"),
        ({"backend": "tflite", "model_file": "model.tflite"}, "needs fixed_length"),
        ({"fixed_length": 8}, "max_length 16 exceeds fixed_length 8"),
        ({"tokenizer_file": "vocab.txt"}, "tokenizer_file 'vocab.txt' is not listed in files"),
        ({"files": {"../model.onnx": "0" * 64}}, "not a plain file name"),
        ({"golden": [{"text": "hi"}]}, r"golden\[0\] lacks key\(s\) input_ids, logits, label"),
        (
            {"golden": [{"text": "hi", "input_ids": [1], "logits": [0.0], "label": "positive"}]},
            r"golden\[0\]\.logits has 1 values but there are 2 labels",
        ),
    ],
)
def test_invalid_fields_are_refused_with_the_path_and_reason(bundle: Path, changes: dict, message: str) -> None:
    if "model_file" in changes:  # keep files consistent so the intended check is the one hit
        data = json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
        changes = {**changes, "files": {**data["files"], changes["model_file"]: "0" * 64}}
    edit_manifest(bundle, **changes)
    with pytest.raises(BundleError, match=message) as info:
        load_manifest(bundle, verify_files=False)
    assert str(bundle / MANIFEST_NAME) in str(info.value)


def test_model_file_must_be_listed(bundle: Path) -> None:
    data = json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
    edit_manifest(bundle, files={"tokenizer.json": data["files"]["tokenizer.json"]})
    with pytest.raises(BundleError, match="model_file 'model.onnx' is not listed in files"):
        load_manifest(bundle)


def test_write_manifest_needs_an_existing_dir(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        write_manifest(tmp_path / "missing", load_manifest(bundle))
