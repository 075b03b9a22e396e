"""The bundle format: one directory, one versioned ``manifest.json``, hashed files.

``export/`` writes bundles (usually through :func:`seal`); the runtime reads them through
:func:`load_manifest`, which refuses anything it cannot trust: a missing or malformed
manifest, an unsupported format version, or a file whose sha256 no longer matches.

A bundle directory looks like::

    student-onnx-int8/
        manifest.json      # {"format": "bert-mobile-kit/bundle", "format_version": 1, ...}
        model.onnx
        tokenizer.json
"""

# Over ~400 lines on purpose: the bundle format in one file, the manifest's fields and every
# check on them, which the Java core (android_demo/core/.../Manifest.java) mirrors field by field.

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from runtime.errors import BundleError

__all__ = [
    "BACKENDS",
    "BUNDLE_FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Manifest",
    "load_manifest",
    "seal",
    "sha256_file",
    "write_manifest",
]

BUNDLE_FORMAT = "bert-mobile-kit/bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

#: Backend name -> the model file suffix it loads.
BACKENDS: Mapping[str, str] = MappingProxyType({"onnx": ".onnx", "tflite": ".tflite"})

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_GOLDEN_KEYS = ("text", "input_ids", "logits", "label")


@dataclass(frozen=True)
class Manifest:
    """What a bundle contains and how to run it.

    Lists given for tuple fields are converted to tuples, and mappings are copied into
    read-only views, so a ``Manifest`` cannot change after it is built. Every field is
    validated on construction.

    Attributes:
        name: Bundle name, e.g. ``"student-onnx-int8"``.
        model_type: Hugging Face ``model_type``, e.g. ``"bert"`` or ``"distilbert"``.
        backend: ``"onnx"`` or ``"tflite"``; must agree with ``model_file``'s suffix.
        precision: ``"fp32"``, ``"int8-dynamic"``, ``"fp16"``, ...
        model_file: Model file name inside the bundle, e.g. ``"model.onnx"``.
        input_names: Model inputs by name, e.g. ``("input_ids", "attention_mask")``.
        max_length: Tokenizer truncation length (special tokens included).
        fixed_length: The longest sequence length the model accepts (TFLite), or ``None``
            when the sequence axis is dynamic (ONNX). Required for TFLite.
        labels: Label names, indexed like the model's logits.
        lowercase: Whether the tokenizer lowercases (informational; the behaviour itself is
            defined by ``tokenizer.json``).
        tokenizer_file: Hugging Face ``tokenizers`` JSON file name, e.g. ``"tokenizer.json"``.
        files: File name -> sha256 hex digest of every file except ``manifest.json``.
        source_model: Where the weights came from (checkpoint name or path).
        opset: ONNX opset, if any.
        buckets: TFLite only: every sequence length the model takes, ascending, each a
            signature ``len_{n}``; the last is ``fixed_length``. The runtime pads each text to
            the smallest bucket that holds it. Empty: the model takes ``fixed_length`` only.
        metrics: Free-form evaluation results (JSON-serialisable).
        golden: Reference examples, each ``{"text", "input_ids", "logits", "label"}``:
            ``input_ids`` without padding, ``logits`` as this exact artifact produced them.
        created_by: Tool and version that wrote the bundle.

    Raises:
        BundleError: A field has the wrong type or an inconsistent value.
    """

    name: str
    model_type: str
    backend: str
    precision: str
    model_file: str
    input_names: tuple[str, ...]
    max_length: int
    fixed_length: int | None
    labels: tuple[str, ...]
    lowercase: bool
    tokenizer_file: str
    files: Mapping[str, str]
    source_model: str = ""
    opset: int | None = None
    buckets: tuple[int, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    golden: tuple[Mapping[str, Any], ...] = ()
    created_by: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "model_type", "backend", "precision", "model_file", "tokenizer_file"):
            _require_str(name, getattr(self, name), nonempty=True)
        for name in ("source_model", "created_by"):
            _require_str(name, getattr(self, name), nonempty=False)
        self._set("input_names", _str_tuple("input_names", self.input_names))
        self._set("labels", _str_tuple("labels", self.labels))
        _require_int("max_length", self.max_length, optional=False)
        _require_int("fixed_length", self.fixed_length, optional=True)
        _require_int("opset", self.opset, optional=True)
        if not isinstance(self.lowercase, bool):
            _invalid(f"field 'lowercase' must be a bool, got {_describe(self.lowercase)}")

        if self.backend not in BACKENDS:
            _invalid(f"backend {self.backend!r} is unknown; known backends: {', '.join(BACKENDS)}")
        suffix = BACKENDS[self.backend]
        if not self.model_file.endswith(suffix):
            _invalid(f"model_file {self.model_file!r} does not end in {suffix!r}, but backend is {self.backend!r}")
        if self.backend == "tflite" and self.fixed_length is None:
            _invalid("backend 'tflite' needs fixed_length (the sequence length the model takes)")
        if self.fixed_length is not None and self.max_length > self.fixed_length:
            _invalid(
                f"max_length {self.max_length} exceeds fixed_length {self.fixed_length}; "
                "truncated inputs would not fit the model"
            )
        self._set("buckets", _buckets(self.buckets, self.backend, self.fixed_length))

        self._set("files", _files(self.files))
        for role in ("model_file", "tokenizer_file"):
            if getattr(self, role) not in self.files:
                _invalid(
                    f"{role} {getattr(self, role)!r} is not listed in files "
                    f"(listed: {', '.join(sorted(self.files)) or 'none'})"
                )
        if not isinstance(self.metrics, Mapping) or not all(isinstance(k, str) for k in self.metrics):
            _invalid(f"field 'metrics' must be a mapping with str keys, got {_describe(self.metrics)}")
        self._set("metrics", MappingProxyType(dict(self.metrics)))
        self._set("golden", _golden(self.golden, self.labels))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON-ready form written to ``manifest.json`` (format keys first)."""
        data: dict[str, Any] = {"format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION}
        for f in fields(self):
            data[f.name] = _plain(getattr(self, f.name))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Builds a manifest from the parsed JSON of ``manifest.json``.

        Args:
            data: The decoded JSON object, including ``format`` and ``format_version``.

        Returns:
            The validated manifest.

        Raises:
            BundleError: Wrong format, unsupported version, unknown or missing keys, or an
                invalid field.
        """
        if not isinstance(data, Mapping):
            _invalid(f"top level must be a JSON object, got {_describe(data)}")
        found_format = data.get("format")
        if found_format != BUNDLE_FORMAT:
            _invalid(f"'format' is {found_format!r}, expected {BUNDLE_FORMAT!r}; not a bundle manifest")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"manifest format_version {version!r} is not supported (this runtime supports "
                f"{FORMAT_VERSION}); re-export the bundle with a matching bert-mobile-kit, "
                "or upgrade the runtime"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"format", "format_version"})
        if unknown:
            _invalid(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        required = [f.name for f in fields(cls) if _is_required(f)]
        missing = [name for name in required if name not in data]
        if missing:
            _invalid(f"missing required field(s): {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})


def sha256_file(path: Path) -> str:
    """Returns the sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    """Writes ``manifest.json`` atomically (temporary file, then ``os.replace``).

    Args:
        bundle_dir: Existing bundle directory.
        manifest: The manifest to write.

    Returns:
        Path of the written ``manifest.json``.

    Raises:
        BundleError: ``bundle_dir`` is not a directory.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"cannot write manifest: {bundle_dir} is not a directory; create it first")
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False, default=_json_default)
    fd, tmp = tempfile.mkstemp(dir=bundle_dir, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        target = bundle_dir / MANIFEST_NAME
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; bundles are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def seal(bundle_dir: Path, **manifest_fields: Any) -> Manifest:
    """Hashes every file of a bundle directory and writes its manifest.

    ``files`` is computed from the regular files directly inside ``bundle_dir`` (sorted,
    not recursive), skipping ``manifest.json`` and hidden files (names starting with
    ``.``, e.g. editor or temp files); do not pass ``files`` yourself.

    Args:
        bundle_dir: Directory holding the model and tokenizer files.
        **manifest_fields: Every other :class:`Manifest` field.

    Returns:
        The manifest that was written.

    Raises:
        BundleError: The fields are invalid (e.g. ``model_file`` is not in the directory).
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"cannot seal: {bundle_dir} is not a directory")
    files = {
        p.name: sha256_file(p)
        for p in sorted(bundle_dir.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")
    }
    manifest = Manifest(**manifest_fields, files=files)
    write_manifest(bundle_dir, manifest)
    return manifest


def load_manifest(bundle_dir: Path, *, verify_files: bool = True) -> Manifest:
    """Reads and checks a bundle's manifest.

    Args:
        bundle_dir: The bundle directory (the one holding ``manifest.json``).
        verify_files: Also check that every listed file exists and matches its sha256.

    Returns:
        The validated manifest.

    Raises:
        BundleError: The directory or manifest is missing, the manifest is not valid JSON,
            has the wrong format or an unsupported version, a field is missing or invalid,
            or (with ``verify_files``) a listed file is missing or its hash differs.
    """
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(
            f"bundle directory {bundle_dir} does not exist or is not a directory; "
            f"pass the directory that contains {MANIFEST_NAME}"
        )
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(
            f"no {MANIFEST_NAME} in {bundle_dir}: not a bundle, or it was never sealed; "
            "re-export it (or write one with runtime.bundle.seal)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the file is corrupt, re-export the bundle") from exc
    try:
        manifest = Manifest.from_dict(data)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None
    if verify_files:
        _verify_files(bundle_dir, manifest)
    return manifest


def _verify_files(bundle_dir: Path, manifest: Manifest) -> None:
    for name, expected in manifest.files.items():
        file = bundle_dir / name
        if not file.is_file():
            raise BundleError(
                f"bundle {bundle_dir} is incomplete: file {name!r} listed in {MANIFEST_NAME} "
                "is missing; copy the whole bundle directory again or re-export it"
            )
        actual = sha256_file(file)
        if actual != expected:
            raise BundleError(
                f"bundle file {name!r} in {bundle_dir} does not match {MANIFEST_NAME}: sha256 "
                f"expected {expected[:12]}..., got {actual[:12]}... ({file.stat().st_size} bytes); "
                "it was modified or truncated after export, re-copy or re-export the bundle"
            )


# --- validation helpers -------------------------------------------------------------------


def _invalid(message: str) -> NoReturn:
    raise BundleError(f"invalid manifest: {message}")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _is_required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _require_str(name: str, value: Any, *, nonempty: bool) -> None:
    if not isinstance(value, str):
        _invalid(f"field {name!r} must be a string, got {_describe(value)}")
    if nonempty and not value.strip():
        _invalid(f"field {name!r} must not be empty")


def _require_int(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        kind = "a positive int or null" if optional else "a positive int"
        _invalid(f"field {name!r} must be {kind}, got {_describe(value)}")


def _str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        _invalid(f"field {name!r} must be a list of non-empty strings, got {_describe(value)}")
    if not value:
        _invalid(f"field {name!r} must not be empty")
    if len(set(value)) != len(value):
        _invalid(f"field {name!r} has duplicates: {list(value)}")
    return tuple(value)


def _buckets(value: Any, backend: str, fixed_length: int | None) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in value
    ):
        _invalid(f"field 'buckets' must be a list of positive ints, got {_describe(value)}")
    if list(value) != sorted(set(value)):
        _invalid(f"field 'buckets' must be strictly increasing, got {list(value)}")
    if value and backend != "tflite":
        _invalid(f"buckets {list(value)} are TFLite signatures, but backend is {backend!r}")
    if value and value[-1] != fixed_length:
        _invalid(f"the last bucket {value[-1]} must equal fixed_length {fixed_length}")
    return tuple(value)


def _files(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        _invalid(f"field 'files' must be a mapping of file name -> sha256, got {_describe(value)}")
    for name, digest in value.items():
        if not isinstance(name, str) or name in ("", ".", "..", MANIFEST_NAME) or Path(name).name != name:
            _invalid(f"files: {name!r} is not a plain file name inside the bundle")
        if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
            _invalid(f"files[{name!r}] must be a lowercase sha256 hex digest, got {_describe(digest)}")
    return MappingProxyType(dict(value))


def _golden(value: Any, labels: tuple[str, ...]) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, (list, tuple)):
        _invalid(f"field 'golden' must be a list of examples, got {_describe(value)}")
    out = []
    for i, example in enumerate(value):
        where = f"golden[{i}]"
        if not isinstance(example, Mapping):
            _invalid(f"{where} must be an object, got {_describe(example)}")
        missing = [k for k in _GOLDEN_KEYS if k not in example]
        if missing:
            _invalid(f"{where} lacks key(s) {', '.join(missing)}")
        ids = _as_list(example["input_ids"])
        logits = _as_list(example["logits"])
        if not isinstance(example["text"], str):
            _invalid(f"{where}.text must be a string, got {_describe(example['text'])}")
        if ids is None or not ids or not all(isinstance(x, Integral) and not isinstance(x, bool) for x in ids):
            _invalid(f"{where}.input_ids must be a non-empty list of ints")
        if logits is None or not all(isinstance(x, Real) and not isinstance(x, bool) for x in logits):
            _invalid(f"{where}.logits must be a list of numbers")
        if len(logits) != len(labels):
            _invalid(f"{where}.logits has {len(logits)} values but there are {len(labels)} labels")
        if example["label"] not in labels:
            _invalid(f"{where}.label {example['label']!r} is not one of labels {list(labels)}")
        entry = dict(example, input_ids=tuple(int(x) for x in ids), logits=tuple(float(x) for x in logits))
        out.append(MappingProxyType(entry))
    return tuple(out)


def _as_list(value: Any) -> list[Any] | None:
    if hasattr(value, "tolist"):  # numpy arrays from the exporter
        value = value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays in free-form metrics
        return value.tolist()
    raise TypeError(f"manifest value {value!r} of type {type(value).__name__} is not JSON-serialisable")
