"""``python -m export android``: put a bundle into the Android demo app.

``main`` validates a bundle (manifest, sha256 of every file, a backend the app implements, a
size limit) and copies it to ``<app>/app/src/main/assets/bundle/`` through a staging directory,
so the app never sees half a copy. The golden files that prove the app's Java core equals Python
are written by :mod:`export.android_goldens`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ExportError
from runtime.bundle import MANIFEST_NAME, Manifest, load_manifest, seal
from runtime.errors import BundleError

ASSETS_BUNDLE = Path("app/src/main/assets/bundle")
#: Backend -> the Kotlin source that implements it in the app; a bundle needs its backend's file.
APP_BACKEND_SOURCES = {"tflite": "LiteRtBackend.kt", "onnx": "OnnxBackend.kt"}
DEFAULT_MAX_MB = 100.0  # Google Play's limit for a plain APK; the model dominates the app's size
PLACEHOLDER_LABELS = ("negative", "neutral", "positive")


def main(argv: Sequence[str]) -> int:
    """``python -m export android --bundle DIR --app DIR [--max-mb N]``; returns the exit code."""
    p = argparse.ArgumentParser(
        prog="python -m export android",
        description="Copy a bundle into the Android demo app's assets after checking it.",
    )
    p.add_argument("--bundle", type=Path, required=True, help="bundle directory (holds manifest.json)")
    p.add_argument("--app", type=Path, required=True, help="the Android project (android_demo)")
    p.add_argument(
        "--max-mb", type=float, default=DEFAULT_MAX_MB, help=f"size limit in MiB (default {DEFAULT_MAX_MB:g})"
    )
    args = p.parse_args(list(argv))
    try:
        manifest, size, target = install_bundle(args.bundle, args.app, args.max_mb)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(
        f"copied bundle {manifest.name!r} ({manifest.backend}, {manifest.precision}, {size / 2**20:.1f} MiB, "
        f"{len(manifest.files) + 1} files, sha256 verified) to {target}\n"
        f"  labels {list(manifest.labels)}, inputs {list(manifest.input_names)}, max_length {manifest.max_length}, "
        f"fixed_length {manifest.fixed_length}, lowercase {manifest.lowercase}, {len(manifest.golden)} golden examples"
    )
    if not manifest.golden:
        print("  note: the bundle has no golden examples, so the app's self-test has nothing to check")
    print(f"  next: cd {args.app} && ./gradlew installDebug (see {args.app / 'README.md'})")
    return 0


def install_bundle(bundle: Path, app: Path, max_mb: float) -> tuple[Manifest, int, Path]:
    """Checks ``bundle`` and copies it into ``app``'s assets, replacing any previous one.

    Only ``manifest.json`` and the files it lists are copied. The copy is staged in a hidden
    directory beside the target, re-verified, and renamed into place; the old bundle is removed
    only after that, so a failure leaves the previous bundle (or none), never a partial one.

    Returns:
        The manifest, the bundle size in bytes, and the target directory.

    Raises:
        ExportError: The bundle is invalid or tampered with, needs a backend the app lacks, is
            over ``max_mb``, or ``app`` is not the Android project.
    """
    if not (app / "app" / "src" / "main").is_dir():
        raise ExportError(f"{app} is not the Android demo project (no app/src/main); pass --app android_demo")
    try:
        manifest = load_manifest(bundle)
    except BundleError as e:
        raise ExportError(f"refusing bundle {bundle}: {e}") from None
    sources = sorted(p.name for p in (app / "app" / "src" / "main").rglob("*.kt"))
    available = [backend for backend, source in APP_BACKEND_SOURCES.items() if source in sources]
    if manifest.backend not in available:
        raise ExportError(
            f"bundle {manifest.name!r} needs the {manifest.backend} backend, but the app has none "
            f"({APP_BACKEND_SOURCES[manifest.backend]} not found); it runs {', '.join(available) or 'nothing'}: "
            "copy the app's engine sources back (android_demo/app/src/main/java/dev/bertmobilekit/demo), or pass "
            f"a bundle for {', '.join(available) or 'an engine it has'}"
        )
    _check_tokenizer(bundle / manifest.tokenizer_file, manifest.name, manifest.model_type)
    if manifest.backend == "tflite":
        _check_flatbuffer_layout(bundle / manifest.model_file, manifest.name)
        _check_tflite_io(bundle / manifest.model_file, manifest.name)
        _check_buckets(bundle / manifest.model_file, manifest)
    else:
        _check_onnx_io(bundle / manifest.model_file, manifest.name)
    names = [MANIFEST_NAME, *manifest.files]
    size = sum((bundle / name).stat().st_size for name in names)
    if size > max_mb * 2**20:
        raise ExportError(
            f"bundle {manifest.name!r} is {size / 2**20:.1f} MiB, over the --max-mb limit of {max_mb:g} MiB; "
            "use a quantized bundle (int8) or raise --max-mb"
        )
    target = app / ASSETS_BUNDLE
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-staging-", dir=target.parent))  # hidden: aapt skips dot-names
    staging.chmod(0o755)  # mkdtemp makes it 0700
    old = target.parent / f".bundle-old-{staging.name}"
    try:
        for name in names:
            shutil.copyfile(bundle / name, staging / name)
        load_manifest(staging)  # the copy itself is checked before it replaces anything
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except (OSError, BundleError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            old.rename(target)
        raise ExportError(f"copying {bundle} to {target} failed: {e}") from None
    shutil.rmtree(old, ignore_errors=True)
    return manifest, size, target


# --- golden files for the JVM tests of android_demo/core -----------------------------------


#: What the app's Java tokenizer (android_demo/core BertTokenizer.java) implements.
APP_TOKENIZER = {"model": "WordPiece", "pre_tokenizer": "BertPreTokenizer", "normalizer": "BertNormalizer"}


def _check_tokenizer(tokenizer_file: Path, name: str, model_type: str) -> None:
    """The app tokenizes on the phone with a Java BERT WordPiece tokenizer; a byte-level BPE
    (RoBERTa) or SentencePiece (ALBERT) bundle would install and then fail on the phone."""
    try:
        spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"bundle {name!r}: cannot read {tokenizer_file.name}: {e}") from None
    for section, want in APP_TOKENIZER.items():
        got = (spec.get(section) or {}).get("type")
        if got != want:
            raise ExportError(
                f"bundle {name!r} ({model_type}) has a {got or 'missing'} {section} in {tokenizer_file.name}; the "
                f"demo app's Java tokenizer implements BERT WordPiece only ({section} {want}: bert, distilbert, "
                "mobilebert, electra). Distill into a WordPiece student (distill.student_model) for the phone, "
                "or run this bundle with the Python runtime"
            )


def _check_flatbuffer_layout(model_file: Path, name: str) -> None:
    """Weights after the flatbuffer (``offset`` buffers) are what Android LiteRT 1.4.x has public
    "Input tensor N lacks data" reports about; the kit writes every buffer inside since
    quantize.flatbuffer, so such a file comes from elsewhere or an older kit."""
    from quantize.flatbuffer import offset_buffers  # noqa: PLC0415 - needs the optional tflite extra

    try:
        outside = offset_buffers(model_file.read_bytes())
    except Exception:  # noqa: BLE001 - not a flatbuffer (a placeholder): the app reports load errors
        return
    if outside:
        raise ExportError(
            f"bundle {name!r}: {model_file.name} keeps {outside} weight buffer(s) after the flatbuffer (offset "
            "buffers), which Android LiteRT 1.4.x may not load; re-export it with this kit (it writes every "
            "weight inside the flatbuffer)"
        )


def _check_tflite_io(model_file: Path, name: str) -> None:
    """The app's LiteRtBackend feeds int32 token inputs and reads float32 logits, or int8 logits
    with a scale and zero point (``int8-full-int8-io``), which its QuantizedLogits dequantizes as
    the runtime does; other input or logit types it cannot."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - the optional tflite extra

    try:
        interpreter = Interpreter(model_path=str(model_file))
    except (ValueError, RuntimeError):
        return  # not loadable here (e.g. a placeholder); its checksum passed, and the app reports load errors
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        for input_name, detail in runner.get_input_details().items():
            if detail["dtype"] != np.int32:
                raise ExportError(
                    f"bundle {name!r} takes {np.dtype(detail['dtype']).name} {input_name!r} (signature {key!r}); the "
                    "demo app feeds int32 token ids: re-export the bundle with this kit (its TFLite inputs are int32)"
                )
        for out in runner.get_output_details().values():
            dtype = np.dtype(out["dtype"])
            scale, zero_point = out.get("quantization", (0.0, 0))
            if dtype == np.int8 and not (scale > 0 and np.isfinite(scale) and -128 <= zero_point <= 127):
                raise ExportError(
                    f"bundle {name!r} returns int8 logits without a usable scale / zero point ({scale}, {zero_point}; "
                    f"signature {key!r}); the demo app cannot dequantize them: re-export the bundle with this kit"
                )
            if dtype not in (np.float32, np.int8):
                raise ExportError(
                    f"bundle {name!r} returns {dtype.name} logits (signature {key!r}); the demo app reads float32 "
                    "logits or int8 ones with a scale: ship the int8-full bundle (int8 compute, float logits) instead"
                )


def _check_buckets(model_file: Path, manifest: Manifest) -> None:
    """The app pads each text to a manifest bucket and runs that length's signature (``len_<n>``):
    the model's signatures must be the manifest's buckets, as LiteRtBackend checks on the phone."""
    from runtime.backends import open_backend  # noqa: PLC0415 - needs the optional tflite extra

    try:
        model_buckets = tuple(open_backend(model_file).buckets)
    except Exception:  # noqa: BLE001 - not loadable here (a placeholder): the app reports load errors
        return
    # Manifest.sequenceLengths() in the Java core: the buckets, else fixed_length.
    lengths = tuple(manifest.buckets) or ((manifest.fixed_length,) if manifest.fixed_length else ())
    if model_buckets and model_buckets != lengths:
        raise ExportError(
            f"bundle {manifest.name!r}: {model_file.name} has length signatures {list(model_buckets)}, the manifest "
            f"pads to {list(lengths)} (buckets / fixed_length); the app would refuse it on the phone: re-export "
            "the bundle"
        )


def _check_onnx_io(model_file: Path, name: str) -> None:
    """The app's OnnxBackend feeds int64 / int32 token ids and reads float32 logits."""
    import onnx  # noqa: PLC0415 - the export extra; only for ONNX bundles

    try:
        graph = onnx.load(str(model_file), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - not an ONNX model (a placeholder): the app reports load errors
        return
    allowed = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    for tensor in graph.input:
        elem = tensor.type.tensor_type.elem_type
        if elem not in allowed:
            raise ExportError(
                f"bundle {name!r} takes {onnx.TensorProto.DataType.Name(elem).lower()} {tensor.name!r}; the demo "
                "app feeds int64 or int32 token ids: re-export the bundle with this kit"
            )
    for tensor in graph.output:
        elem = tensor.type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise ExportError(
                f"bundle {name!r} returns {onnx.TensorProto.DataType.Name(elem).lower()} logits; the demo app reads "
                "float32 logits: ship a bundle with float logits (every ONNX precision of the kit has them)"
            )


def seal_placeholder_bundle(
    bundle_dir: Path,
    tokenizer_json: Path,
    golden: Sequence[dict[str, Any]] = (),
    backend: str = "tflite",
    model: bytes | None = None,
    buckets: tuple[int, ...] = (8, 16),
) -> Manifest:
    """Seals a tiny bundle whose model file is placeholder bytes, not a runnable model: enough for
    everything that reads manifests and hashes (the Java core, ``python -m export android``).

    Args:
        bundle_dir: Directory to create (it may exist and be empty).
        tokenizer_json: The ``tokenizer.json`` to copy in (uncased BERT).
        golden: Golden examples for the manifest (labels negative/neutral/positive).
        backend: ``"tflite"`` (buckets 8 and 16) or ``"onnx"`` (dynamic length).
        model: The model file's bytes (default: 2 KiB of placeholder bytes).
        buckets: The TFLite length buckets the manifest lists.

    Returns:
        The sealed manifest.
    """
    bundle_dir.mkdir(parents=True, exist_ok=True)
    model_file = f"model.{backend}"
    (bundle_dir / model_file).write_bytes(
        model if model is not None else b"TFL3" + np.random.default_rng(0).bytes(2048)
    )
    shutil.copyfile(tokenizer_json, bundle_dir / "tokenizer.json")
    (bundle_dir / "labels.txt").write_text("".join(f"{label}\n" for label in PLACEHOLDER_LABELS), encoding="utf-8")
    return seal(
        bundle_dir,
        name=f"tiny-placeholder-{backend}",
        model_type="distilbert",
        backend=backend,
        precision="int8-dynamic",
        model_file=model_file,
        input_names=("input_ids", "attention_mask"),
        max_length=16,
        fixed_length=16 if backend == "tflite" else None,
        buckets=buckets if backend == "tflite" else (),
        labels=PLACEHOLDER_LABELS,
        lowercase=True,
        tokenizer_file="tokenizer.json",
        golden=tuple(golden),
        created_by="export.android.seal_placeholder_bundle",
    )
