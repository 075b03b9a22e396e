"""Deployable bundles: model file + tokenizer + labels + a versioned, checksummed manifest."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.artifacts import Artifact, Format
from export.classifier import Classifier
from export.errors import ConversionError
from runtime.backends import open_backend
from runtime.bundle import Manifest, load_manifest, seal, write_manifest

CREATED_BY = "bert-mobile-kit 0.1.0"


HF_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json")
"""Files of the model folder an ONNX bundle carries for Hugging Face tooling (Optimum, transformers.js)."""


def wordpiece_vocab_txt(tokenizer_json: Path) -> str | None:
    """A WordPiece tokenizer's ``vocab.txt`` (one piece per line, in id order) rebuilt from its
    ``tokenizer.json``; None for other tokenizer models."""
    model = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("model", {})
    if model.get("type") != "WordPiece":
        return None
    by_id = sorted(model["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ConversionError(f"{tokenizer_json}: the WordPiece ids are not 0..{len(by_id) - 1} without gaps")
    return "".join(f"{piece}\n" for piece, _ in by_id)


def make_bundle(artifact: Artifact, clf: Classifier, bundle_dir: Path, max_length: int) -> Manifest:
    """Moves an exported model file into ``bundle_dir`` with everything the runtime needs.

    An ONNX bundle also carries the model's ``config.json`` and tokenizer configuration
    (:data:`HF_FILES`), so ``ORTModelForSequenceClassification.from_pretrained(bundle)`` and
    ``AutoTokenizer.from_pretrained(bundle)`` open it as they open an Optimum export.

    The manifest is sealed (sha256 of every file) now; metrics and golden examples are
    added by :func:`finish_bundle` once the bundle has been verified. A TFLite bundle's
    ``buckets`` are read from the model file's signatures, as the runtime will see them.
    """
    bundle_dir.mkdir(parents=True, exist_ok=False)
    model_file = "model.onnx" if artifact.format is Format.ONNX else "model.tflite"
    shutil.move(str(artifact.path), bundle_dir / model_file)
    shutil.copyfile(clf.path / "tokenizer.json", bundle_dir / "tokenizer.json")
    if (clf.path / "vocab.txt").is_file():
        shutil.copyfile(clf.path / "vocab.txt", bundle_dir / "vocab.txt")
    elif (vocab := wordpiece_vocab_txt(clf.path / "tokenizer.json")) is not None:
        (bundle_dir / "vocab.txt").write_text(vocab, encoding="utf-8")  # transformers 5 saves no vocab.txt
    if artifact.format is Format.ONNX:  # what HF tooling needs beside model.onnx; the manifest stays the truth
        for name in HF_FILES:
            if (clf.path / name).is_file():
                shutil.copyfile(clf.path / name, bundle_dir / name)
        _name_labels(bundle_dir / "config.json", clf.label_names)
    (bundle_dir / "labels.txt").write_text("".join(f"{name}\n" for name in clf.label_names), encoding="utf-8")
    buckets = open_backend(bundle_dir / model_file).buckets if artifact.format is Format.TFLITE else ()
    return seal(
        bundle_dir,
        name=artifact.name,
        model_type=clf.model_type,
        backend=artifact.format.value,
        precision=artifact.precision,
        model_file=model_file,
        input_names=clf.input_names,
        max_length=artifact.fixed_length or max_length,
        fixed_length=artifact.fixed_length,
        labels=clf.label_names,
        lowercase=bool(getattr(clf.tokenizer, "do_lower_case", False)),
        tokenizer_file="tokenizer.json",
        source_model=str(clf.path.name),
        opset=artifact.opset,
        buckets=buckets,
        created_by=CREATED_BY,
    )


def _name_labels(config: Path, labels: Sequence[str]) -> None:
    """Writes the bundle's label names into its ``config.json`` (``id2label`` / ``label2id``), so HF
    tooling names them as ``labels.txt`` does."""
    if not config.is_file():
        return
    data = json.loads(config.read_text(encoding="utf-8"))
    data["id2label"] = {str(i): name for i, name in enumerate(labels)}
    data["label2id"] = {name: i for i, name in enumerate(labels)}
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def golden_examples(
    texts: Sequence[str], logits: np.ndarray, tokenizer: Any, labels: Sequence[str], max_length: int
) -> list[dict[str, Any]]:
    """Reference examples for ``runtime selftest``: text, ids, this artifact's logits, label."""
    out = []
    for text, row in zip(texts, logits, strict=True):
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        out.append(
            {
                "text": text,
                "input_ids": [int(i) for i in ids],
                "logits": [float(x) for x in row],
                "label": labels[int(np.argmax(row))],
            }
        )
    return out


def finish_bundle(bundle_dir: Path, metrics: Mapping[str, Any], golden: Sequence[Mapping[str, Any]]) -> Manifest:
    """Adds verify's metrics and golden examples to a sealed bundle's manifest."""
    manifest = dataclasses.replace(load_manifest(bundle_dir), metrics=dict(metrics), golden=tuple(golden))
    write_manifest(bundle_dir, manifest)
    return manifest
