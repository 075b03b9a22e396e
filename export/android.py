"""``python -m export android``: put a bundle into the Android demo app, and write the golden
files that prove the app's Java core equals Python.

``main`` validates a bundle (manifest, sha256 of every file, a backend the app implements, a
size limit) and copies it to ``<app>/app/src/main/assets/bundle/`` through a staging directory,
so the app never sees half a copy. ``write_java_goldens`` writes what the JVM tests of
``android_demo/core`` compare against: Hugging Face fast-tokenizer encodings of real and
hand-picked sentences, per-code-point normalizer output, runtime softmax results, and a tiny
sealed bundle with tampered copies.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import normalizers

from export.errors import ExportError
from runtime.bundle import MANIFEST_NAME, Manifest, load_manifest, seal
from runtime.classifier import TextClassifier, _softmax  # _softmax: the post-processing Java must equal
from runtime.errors import BundleError
from runtime.tokenizer import BundleTokenizer

ASSETS_BUNDLE = Path("app/src/main/assets/bundle")
#: Backend -> the Kotlin source that implements it in the app; a bundle needs its backend's file.
APP_BACKEND_SOURCES = {"tflite": "LiteRtBackend.kt", "onnx": "OnnxBackend.kt"}
DEFAULT_MAX_MB = 100.0  # Google Play's limit for a plain APK; the model dominates the app's size

#: Tokenizer configurations checked by the JVM tests: name -> (lowercase, strip_accents,
#: max_length, pad_to). ``uncased`` is the bundled MiniLM tokenizer as exported; ``None`` for
#: pad_to means dynamic padding (ONNX bundles).
TOKENIZER_CONFIGS = {
    "uncased": (True, None, 64, 64),
    "cased": (False, None, 32, 32),
    "uncased-keep-accents": (True, False, 128, None),
}
_UNICODE_CHUNK = 8192
PLACEHOLDER_LABELS = ("negative", "neutral", "positive")

# fmt: off
HARD_CASES = (
    # accents and case
    "Café déjà vu, naïve façade", "ÀÉÎÕÜ àéîõü Ñandú", "Ångström İstanbul ıi Straße ẞ", "Tiếng Việt có dấu",
    "ΣΊΣΥΦΟΣ σίσυφος ς", "e\u0301\u0323 combining marks", "ﬁnancial ligature ǅ titlecase", "Ꭰ Cherokee Ა Mtavruli",
    "ＡＢＣ fullwidth １２３", "Ⅻ roman ⅻ", "Ⱕ glagolitic Ꟁ latin",
    # scripts and CJK
    "我爱自然语言处理", "日本語のテキストとカタカナ", "BERT模型很好用!", "안녕하세요 세계", "नमस्ते दुनिया",
    "مرحبا بالعالم", "שָׁלוֹם עוֹלָם", "\uf900 compatibility ideograph", "\U00020000\U0002a700 extension B/C",
    "ก ข ค ภาษาไทย",
    # emoji
    "I love it 😍😍😍", "👍🏽 thumbs up", "family 👨\u200d👩\u200d👧 zwj", "flags 🇺🇸🇫🇷", "new emoji 🥲 🫠 🫶",
    "keycap 1️⃣ #️⃣",
    # control, format and odd whitespace characters
    "tab\there\nnew line\r\n", "\x00null\x00 byte", "bell\x07 escape\x1b", "zero\u200bwidth\u200cjoiner",
    "bom\ufeffstart", "soft\u00adhyphen", "next\u0085line vt\x0bff\x0c", "replacement \ufffd char",
    "rtl \u202emark\u202c", "a\u00a0b\u3000c\u2009d\u202fe", "private \ue000 use", "tag \U000e0041 char",
    # punctuation
    "Hello,world!!! don't", "U.S.A. $100.00 3.14159 1,000,000", "«quoted» „low” —dash— ¿Qué? ¡Sí!",
    "foo@bar.com #hashtag @user http://t.co/x", "(parens) [brackets] {braces} <angle>", "~`^|\\ ascii",
    "a\u2e43b\u2e4fc newer punctuation", "…ellipsis… ·middle· §section ¶",
    # special tokens in the text: matched on the raw text, before normalization
    "hello [SEP] world", "[CLS][MASK]x[PAD]", "[unk] is lowercase, [UNK] is not", "[SEP",
    # very long words and texts
    "a" * 99, "b" * 100, "c" * 101, "x" * 500, "supercalifragilisticexpialidocious" * 3, "é" * 101,
    "🙂" * 101, "un" + "believ" * 30 + "able", " ".join(["long sentence to force truncation"] * 40),
    # empty after cleaning
    "", " ", "\x00\x01\x02", "\u200b\u200b", "\t\n \r", "\ufffd", "\u0301",
)
# fmt: on


@dataclass(frozen=True)
class GoldenSummary:
    """Counts written by :func:`write_java_goldens` (also saved as ``summary.json``)."""

    sentences: int
    tokenizer_configs: int
    unicode_code_points: int
    postproc_rows: int
    refused_bundles: int


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
            "export and pass a TFLite bundle (e.g. out/bundles/student-tflite-int8-dynamic)"
        )
    if manifest.backend == "tflite":
        _check_float_logits(bundle / manifest.model_file, manifest.name)
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


def _check_float_logits(model_file: Path, name: str) -> None:
    """The app's LiteRtBackend reads float32 logits; int8 logits (``int8-full-int8-io``) it cannot."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - the optional tflite extra

    try:
        interpreter = Interpreter(model_path=str(model_file))
    except (ValueError, RuntimeError):
        return  # not loadable here (e.g. a placeholder); its checksum passed, and the app reports load errors
    for key in interpreter.get_signature_list():
        for out in interpreter.get_signature_runner(key).get_output_details().values():
            if out["dtype"] != np.float32:
                raise ExportError(
                    f"bundle {name!r} returns {np.dtype(out['dtype']).name} logits (signature {key!r}); the demo app "
                    "reads float32 logits: ship the int8-full bundle (int8 compute, float logits) instead"
                )


def write_java_goldens(
    out_dir: Path, tokenizer_dir: Path, sst2_path: Path, n: int = 1000, seed: int = 0
) -> GoldenSummary:
    """Writes the golden files the Java core's JUnit tests compare against.

    Args:
        out_dir: Directory to fill (created if needed).
        tokenizer_dir: A Hugging Face model folder (loaded with ``AutoTokenizer``) or a bundle,
            holding an uncased BERT ``tokenizer.json``.
        sst2_path: SST-2 ``train.tsv`` (``sentence<TAB>label`` with a header line).
        n: How many SST-2 sentences to sample (the hand-picked hard cases come on top).
        seed: Seed of the sample and of the synthetic logits.

    Returns:
        The counts written, also saved as ``summary.json``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = [*HARD_CASES, *_sample_sentences(sst2_path, n, seed)]
    toks = _tokenizers(tokenizer_dir, out_dir / "tokenizers")
    with (out_dir / "tokenizer_golden.jsonl").open("w", encoding="utf-8") as fh:
        for name, (_, _, max_length, pad_to) in TOKENIZER_CONFIGS.items():
            padding = "max_length" if pad_to else False
            enc = toks[name](texts, truncation=True, max_length=max_length, padding=padding)
            for text, ids, mask in zip(texts, enc["input_ids"], enc["attention_mask"], strict=True):
                row = {"config": name, "max_length": max_length, "pad_to": pad_to, "text": text}
                fh.write(json.dumps({**row, "input_ids": ids, "attention_mask": mask}, ensure_ascii=False) + "\n")
    code_points = _write_unicode_golden(out_dir / "unicode_golden.jsonl", toks)
    rows = _write_postproc_golden(out_dir / "postproc_golden.jsonl", seed)
    refused = _write_bundles(out_dir, toks["uncased"], texts, seed)
    summary = GoldenSummary(len(texts), len(TOKENIZER_CONFIGS), code_points, rows, refused)
    (out_dir / "summary.json").write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
    return summary


def _sample_sentences(sst2_path: Path, n: int, seed: int) -> list[str]:
    lines = Path(sst2_path).read_text(encoding="utf-8").splitlines()
    sentences = [line.split("\t")[0] for line in lines[1:] if line.strip()]
    if len(sentences) < n:
        raise ExportError(f"{sst2_path} has {len(sentences)} sentences, fewer than the {n} requested")
    return random.Random(seed).sample(sentences, n)


def _tokenizers(tokenizer_dir: Path, out: Path) -> dict[str, Any]:
    """Hugging Face fast tokenizers per configuration; saves each one's tokenizer.json for Java."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast  # noqa: PLC0415 - seconds to import; golden files only

    source = Path(tokenizer_dir)
    if (source / "tokenizer_config.json").is_file():
        uncased = AutoTokenizer.from_pretrained(source)
    else:  # a bundle: tokenizer.json only
        uncased = PreTrainedTokenizerFast(tokenizer_file=str(source / "tokenizer.json"), pad_token="[PAD]")
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, (lowercase, strip_accents, _, _) in TOKENIZER_CONFIGS.items():
        (out / name).mkdir(exist_ok=True)
        if name == "uncased":  # the file bundles carry, byte for byte
            shutil.copyfile(source / "tokenizer.json", out / name / "tokenizer.json")
            result[name] = uncased
            continue
        if (source / "tokenizer_config.json").is_file():
            # BertTokenizerFast rebuilds its BertNormalizer when these differ from tokenizer.json.
            tok = AutoTokenizer.from_pretrained(source, do_lower_case=lowercase, strip_accents=strip_accents)
        else:
            tok = PreTrainedTokenizerFast(tokenizer_file=str(source / "tokenizer.json"), pad_token="[PAD]")
            tok.backend_tokenizer.normalizer = normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
            )
        tok.backend_tokenizer.save(str(out / name / "tokenizer.json"))
        result[name] = tok
    return result


def _write_unicode_golden(path: Path, tokenizers: dict[str, Any]) -> int:
    """Every code point, in chunks: per configuration the normalized text of "a{c}a " for each c
    (separated, so that NFD cannot reorder neighbours), and the pre-tokenizer's words of the raw
    concatenation (the same in every configuration; splits only happen at whitespace and
    punctuation, so each code point's class shows)."""
    code_points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    pre_tokenizer = tokenizers["uncased"].backend_tokenizer.pre_tokenizer
    with path.open("w", encoding="utf-8") as fh:
        for i in range(0, len(code_points), _UNICODE_CHUNK):
            chunk = code_points[i : i + _UNICODE_CHUNK]
            span = {"first": chunk[0], "last": chunk[-1]}
            separated = "".join(f"a{chr(cp)}a " for cp in chunk)
            for name in TOKENIZER_CONFIGS:
                normalized = tokenizers[name].backend_tokenizer.normalizer.normalize_str(separated)
                row = {"kind": "normalized", "config": name, **span, "text": normalized}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            words = [w for w, _ in pre_tokenizer.pre_tokenize_str("".join(map(chr, chunk)))]
            fh.write(json.dumps({"kind": "words", **span, "words": words}, ensure_ascii=False) + "\n")
    return len(code_points)


def _write_postproc_golden(path: Path, seed: int) -> int:
    """Synthetic float32 logits (2-5 labels, small to huge, ties) and the runtime's softmax."""
    rng = np.random.default_rng(seed)
    rows = []
    for scale in (0.01, 1.0, 10.0, 100.0, 1000.0):
        for labels in range(2, 6):
            rows.extend((rng.standard_normal((25, labels)) * scale).astype(np.float32))
    rows += [np.zeros(3, np.float32), np.array([2, 2, 1], np.float32), np.array([-1e4, 0, 1e4], np.float32)]
    with path.open("w", encoding="utf-8") as fh:
        for logits in rows:
            probs = _softmax(logits[None, :])[0]
            labels = [f"label_{i}" for i in range(len(logits))]
            row = {"labels": labels, "logits": [float(x) for x in logits], "probabilities": [float(p) for p in probs]}
            fh.write(json.dumps({**row, "label": labels[int(np.argmax(probs))]}) + "\n")
    return len(rows)


def seal_placeholder_bundle(
    bundle_dir: Path, tokenizer_json: Path, golden: Sequence[dict[str, Any]] = (), backend: str = "tflite"
) -> Manifest:
    """Seals a tiny bundle whose model file is placeholder bytes, not a runnable model: enough for
    everything that reads manifests and hashes (the Java core, ``python -m export android``).

    Args:
        bundle_dir: Directory to create (it may exist and be empty).
        tokenizer_json: The ``tokenizer.json`` to copy in (uncased BERT).
        golden: Golden examples for the manifest (labels negative/neutral/positive).
        backend: ``"tflite"`` (buckets 8 and 16) or ``"onnx"`` (dynamic length).

    Returns:
        The sealed manifest.
    """
    bundle_dir.mkdir(parents=True, exist_ok=True)
    model_file = f"model.{backend}"
    (bundle_dir / model_file).write_bytes(b"TFL3" + np.random.default_rng(0).bytes(2048))
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
        buckets=(8, 16) if backend == "tflite" else (),
        labels=PLACEHOLDER_LABELS,
        lowercase=True,
        tokenizer_file="tokenizer.json",
        golden=tuple(golden),
        created_by="export.android.seal_placeholder_bundle",
    )


def _write_bundles(out_dir: Path, tokenizer: Any, texts: list[str], seed: int) -> int:
    """The placeholder bundle with golden examples, plus copies that ``load_manifest`` must refuse;
    ``refused.json`` maps each copy to a fragment of the expected error."""
    rng = np.random.default_rng(seed)
    golden = []
    for text in [*texts[:6], *texts[-4:]]:
        logits = rng.standard_normal(3).astype(np.float32)
        ids = tokenizer(text, truncation=True, max_length=16)["input_ids"]
        label = PLACEHOLDER_LABELS[int(np.argmax(logits))]
        golden.append({"text": text, "input_ids": ids, "logits": [float(x) for x in logits], "label": label})
    bundle = out_dir / "bundle"
    sealed = seal_placeholder_bundle(bundle, out_dir / "tokenizers" / "uncased" / "tokenizer.json", golden)
    _write_bucket_golden(out_dir / "bucket_golden.jsonl", bundle, sealed, texts)
    manifest = json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
    variants = {
        "tampered-model": ("model.tflite", "does not match"),
        "tampered-tokenizer": ("tokenizer.json", "does not match"),
        "missing-file": ("labels.txt", "is missing"),
        "bad-version": ({**manifest, "format_version": 2}, "format_version"),
        "unknown-field": ({**manifest, "bucket_sizes": [16]}, "unknown field"),
    }
    refused = {}
    for name, (change, fragment) in variants.items():
        copy = out_dir / f"bundle-{name}"
        shutil.copytree(bundle, copy, dirs_exist_ok=True)
        if isinstance(change, dict):
            (copy / MANIFEST_NAME).write_text(json.dumps(change, indent=2), encoding="utf-8")
        elif name == "missing-file":
            (copy / change).unlink()
        else:
            data = bytearray((copy / change).read_bytes())
            data[len(data) // 2] ^= 0x01  # one flipped bit
            (copy / change).write_bytes(bytes(data))
        refused[copy.name] = fragment
    (out_dir / "refused.json").write_text(json.dumps(refused, indent=2) + "\n", encoding="utf-8")
    return len(refused)


class _RecordingBackend:
    """Stands in for the model in the runtime's ``TextClassifier``: records the padded length
    the runtime chooses for each text, returns zero logits."""

    def __init__(self, manifest: Manifest) -> None:
        self.input_names = manifest.input_names
        self.fixed_length = manifest.fixed_length
        self.buckets = manifest.buckets
        self.widths: list[int] = []

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        rows, width = feeds["input_ids"].shape
        self.widths.append(width)
        return np.zeros((rows, len(PLACEHOLDER_LABELS)), dtype=np.float32)


def _write_bucket_golden(path: Path, bundle: Path, manifest: Manifest, texts: list[str]) -> None:
    """The padded length the Python runtime picks for each text of the bucketed placeholder bundle."""
    backend = _RecordingBackend(manifest)
    clf = TextClassifier(manifest, BundleTokenizer(bundle / manifest.tokenizer_file, manifest.max_length), backend)
    with path.open("w", encoding="utf-8") as fh:
        for text in (t for t in texts if t.strip()):  # the runtime refuses blank texts
            backend.widths.clear()
            clf.predict([text])
            fh.write(json.dumps({"text": text, "padded_length": backend.widths[0]}, ensure_ascii=False) + "\n")
