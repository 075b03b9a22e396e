"""The golden files the JVM tests of ``android_demo/core`` compare against, proving the app's
Java core equals Python: Hugging Face fast-tokenizer encodings of real and hand-picked
sentences, per-code-point normalizer output, runtime softmax results, int8-logit dequantization,
and a tiny sealed bundle with tampered copies (:func:`write_java_goldens`).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import normalizers

from export.android import PLACEHOLDER_LABELS, seal_placeholder_bundle
from export.errors import ExportError
from runtime.backends import dequantize_logits
from runtime.bundle import MANIFEST_NAME, Manifest
from runtime.classifier import TextClassifier, _softmax_row  # _softmax_row: the post-processing Java must equal
from runtime.tokenizer import BundleTokenizer

#: Tokenizer configurations checked by the JVM tests: name -> (lowercase, strip_accents,
#: max_length, pad_to). ``uncased`` is the bundled MiniLM tokenizer as exported; ``None`` for
#: pad_to means dynamic padding (ONNX bundles).
TOKENIZER_CONFIGS = {
    "uncased": (True, None, 64, 64),
    "cased": (False, None, 32, 32),
    "uncased-keep-accents": (True, False, 128, None),
}
_UNICODE_CHUNK = 8192

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
    dequantized_values: int


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
    dequantized = _write_dequantize_golden(out_dir / "dequantize_golden.jsonl", seed)
    summary = GoldenSummary(len(texts), len(TOKENIZER_CONFIGS), code_points, rows, refused, dequantized)
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
            probs = _softmax_row([float(x) for x in logits])
            labels = [f"label_{i}" for i in range(len(logits))]
            row = {"labels": labels, "logits": [float(x) for x in logits], "probabilities": [float(p) for p in probs]}
            fh.write(json.dumps({**row, "label": labels[int(np.argmax(probs))]}) + "\n")
    return len(rows)


def _write_dequantize_golden(path: Path, seed: int) -> int:
    """Every int8 value under output quantization parameters of the kinds int8 logits get (the
    runtime's :func:`runtime.backends.dequantize_logits`): small and large scales, zero points at
    both ends, and random ones; the app's ``QuantizedLogits`` must give the same float32 bits."""
    rng = np.random.default_rng(seed)
    every = np.arange(-128, 128, dtype=np.int8)
    params = [(0.0390625, 0), (0.1, -128), (0.1, 127), (1e-8, 5), (1234.5, -1), (float(np.float32(1 / 3)), 17)]
    params += [(float(np.float32(rng.uniform(1e-3, 1.0))), int(rng.integers(-128, 128))) for _ in range(10)]
    with path.open("w", encoding="utf-8") as fh:
        for scale, zero_point in params:
            scale = float(np.float32(scale))  # the model stores a float32 scale
            logits = dequantize_logits(every, scale, zero_point)
            row = {"scale": scale, "zero_point": zero_point, "values": every.tolist()}
            fh.write(json.dumps({**row, "logits": [float(x) for x in logits]}) + "\n")
    return len(params) * len(every)


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
    # The same for the ONNX backend (dynamic length): the JVM tests choose the engine by manifest.
    seal_placeholder_bundle(
        out_dir / "onnx-bundle", out_dir / "tokenizers" / "uncased" / "tokenizer.json", golden, "onnx"
    )
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
        self.input_dtypes = dict.fromkeys(manifest.input_names, np.int64)
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
