"""TFLite length buckets vs always padding to 128, on the real SST-2 length mix, into BENCHMARKS.md.

    .venv/bin/python benchmarks/buckets.py [--n 1000] [--repeats 40]

1. Token counts of every SST-2 training sentence with the MiniLM tokenizer (special tokens
   included): how many fit each bucket.
2. A real-size model: the DistilBERT student (3 layers, hidden 384) built from the bundled
   MiniLM-L6 teacher with ``export.train.distill.build_student`` (untrained: weights do not change
   the timing), exported twice through ``export.convert.tflite.to_tflite``: buckets 16/32/64/128 in
   one file, and 128 only; fp32 and int8-dynamic each.
3. Model latency per signature (median of ``--repeats`` invokes, 1 thread, all signatures
   taking turns), weighted by the bucket shares of step 1, against the 128-only model.
4. End to end: ``runtime.TextClassifier.predict([text])`` on a seeded sample of ``--n``
   sentences, the two bundles alternating text by text so that load on the machine hits both.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bench_md import write_section

os.environ.setdefault("USE_TF", "0")

import numpy as np
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from export.classifier import resolve_model_path, save_classifier
from export.config import BUNDLED_MINILM, StudentKind, TfliteConfig
from export.convert.bundle import make_bundle
from export.convert.quantized import quantized_tflite
from export.convert.tflite import to_tflite
from export.report.machine import machine
from export.train.distill import build_student
from quantize.modes import TfliteQuant
from runtime import TextClassifier
from runtime.bench import read_texts

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
BEGIN, END = "<!-- buckets:begin -->", "<!-- buckets:end -->"
BUCKETS = (16, 32, 64, 128)
MAX_LENGTH = 128
PRECISIONS = (TfliteQuant.FP32, TfliteQuant.DYNAMIC_INT8)


def token_counts(tokenizer: object, texts: list[str]) -> np.ndarray:
    """Tokens per text, special tokens included, before truncation."""
    ids = tokenizer(texts, add_special_tokens=True)["input_ids"]  # type: ignore[operator]
    return np.asarray([len(x) for x in ids])


def build_bundles(work: Path) -> tuple[dict[tuple[str, str], Path], dict[str, int]]:
    """(layout, precision) -> bundle dir, for layouts "buckets" and "pad128"; and file sizes."""
    source = resolve_model_path(BUNDLED_MINILM)
    tok = AutoTokenizer.from_pretrained(source)
    teacher = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2).eval()
    student = build_student(teacher, StudentKind.DISTILBERT, None).eval()
    clf = save_classifier("student", student, tok, work / "student", ("negative", "positive"))
    bundles, sizes = {}, {}
    for layout, buckets in (("buckets", BUCKETS), ("pad128", ())):
        cfg = TfliteConfig(quantize=PRECISIONS[1:], buckets=buckets)
        fp32 = to_tflite(clf, cfg, work / layout, max_length=MAX_LENGTH)
        for art in (fp32, *quantized_tflite(clf, fp32, cfg, work / layout, max_length=MAX_LENGTH)):
            bundle = work / "bundles" / f"{layout}-{art.precision}"
            sizes[f"{layout}-{art.precision}"] = art.path.stat().st_size
            make_bundle(art, clf, bundle, MAX_LENGTH)
            bundles[(layout, art.precision)] = bundle
    return bundles, sizes


def model_latency_ms(runs: dict[str, tuple[Path, int]], repeats: int) -> dict[str, float]:
    """Median time of one invoke (batch 1, 1 thread) of each ``name: (bundle, length)``.

    The runs take turns invoke by invoke, so load on the machine hits them alike.
    """
    feeds = {}
    for name, (bundle, length) in runs.items():
        backend = TextClassifier.load(bundle, threads=1)._backend  # noqa: SLF001 - timing the model alone
        feeds[name] = (backend, {n: np.ones((1, length), dtype=np.int64) for n in backend.input_names})
        for _ in range(3):
            backend.run(feeds[name][1])
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (backend, inputs) in feeds.items():
            start = time.perf_counter()
            backend.run(inputs)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1000) for name, t in times.items()}


def end_to_end_ms(bundles: list[Path], texts: list[str]) -> list[np.ndarray]:
    """Per-text ``predict`` latency of each bundle, the bundles alternating text by text."""
    classifiers = [TextClassifier.load(b, threads=1) for b in bundles]
    for clf in classifiers:
        for text in texts[:5]:
            clf.predict([text])
    times: list[list[float]] = [[] for _ in classifiers]
    for text in texts:
        for clf, out in zip(classifiers, times, strict=True):
            start = time.perf_counter()
            clf.predict([text])
            out.append(time.perf_counter() - start)
    return [np.asarray(t) * 1000 for t in times]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=SST2)
    p.add_argument("--n", type=int, default=1000, help="sentences timed end to end")
    p.add_argument("--repeats", type=int, default=40, help="invokes per signature for the model latency")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    texts = read_texts(args.data)
    counts = token_counts(AutoTokenizer.from_pretrained(resolve_model_path(BUNDLED_MINILM)), texts)
    fitted = np.minimum(counts, MAX_LENGTH)
    bucket_of = np.asarray(BUCKETS)[np.searchsorted(BUCKETS, fitted)]
    shares = {b: float((bucket_of == b).mean()) for b in BUCKETS}

    with tempfile.TemporaryDirectory() as tmp:
        bundles, sizes = build_bundles(Path(tmp))
        model_rows = []
        for precision in (q.value for q in PRECISIONS):
            runs = {str(b): (bundles[("buckets", precision)], b) for b in BUCKETS}
            times = model_latency_ms({**runs, "pad128": (bundles[("pad128", precision)], MAX_LENGTH)}, args.repeats)
            lat = {b: times[str(b)] for b in BUCKETS}
            expected = sum(shares[b] * lat[b] for b in BUCKETS)
            model_rows.append((precision, lat, times["pad128"], expected))
        sample = random.Random(args.seed).sample(texts, args.n)
        e2e_rows = []
        for precision in (q.value for q in PRECISIONS):
            bucketed, padded = end_to_end_ms([bundles[("buckets", precision)], bundles[("pad128", precision)]], sample)
            e2e_rows.append((precision, bucketed, padded))

    m = machine()
    pct = np.percentile(counts, [50, 90, 99]).tolist()
    lines = [
        BEGIN,
        "## TFLite length buckets (issue 4): SST-2 length mix vs always padding to 128",
        "",
        f"Command: `python benchmarks/buckets.py --n {args.n} --repeats {args.repeats}` on {m['cpu']} "
        f"({m['cores']} cores, shared with other work; batch 1, 1 thread). Model: the DistilBERT student "
        "(3 layers, hidden 384) that `export.train.distill.build_student` makes from the bundled MiniLM-L6 "
        "teacher, exported by `export.convert.tflite.to_tflite` once with buckets 16/32/64/128 in one file (one "
        "signature `len_N` each) and once with 128 only.",
        "",
        f"Token counts of all {len(texts):,} SST-2 training sentences (MiniLM WordPiece, [CLS]/[SEP] "
        f"included): mean {counts.mean():.1f}, p50 {pct[0]:.0f}, p90 {pct[1]:.0f}, p99 {pct[2]:.0f}, "
        f"max {counts.max()}; {int((counts > MAX_LENGTH).sum())} exceed 128.",
        "",
        "| bucket | sentences | share |",
        "|---|---|---|",
        *(f"| ≤ {b} | {int((bucket_of == b).sum()):,} | {100 * shares[b]:.1f}% |" for b in BUCKETS),
        "",
        "Model latency (median invoke per signature, the five taking turns; expected = per-bucket latency "
        "weighted by the shares above):",
        "",
        "| precision | len_16 ms | len_32 ms | len_64 ms | len_128 ms | 128-only file ms | expected with buckets ms "
        "| saving |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision, lat, base, expected in model_rows:
        cells = " | ".join(f"{lat[b]:.2f}" for b in BUCKETS)
        lines.append(f"| {precision} | {cells} | {base:.2f} | {expected:.2f} | {100 * (1 - expected / base):.0f}% |")
    lines += [
        "",
        f"End to end (`TextClassifier.predict([text])`: tokenize + model + softmax) on {args.n} sampled sentences:",
        "",
        "| precision | buckets mean ms | buckets p50 ms | pad-128 mean ms | pad-128 p50 ms | saving (mean) "
        "| speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for precision, bucketed, padded in e2e_rows:
        lines.append(
            f"| {precision} | {bucketed.mean():.2f} | {np.median(bucketed):.2f} | {padded.mean():.2f} "
            f"| {np.median(padded):.2f} | {100 * (1 - bucketed.mean() / padded.mean()):.0f}% "
            f"| {padded.mean() / bucketed.mean():.1f}× |"
        )
    lines += [
        "",
        "File sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()) + " — the signatures share "
        "one copy of the weights, so four buckets cost only their extra graphs.",
        END,
    ]
    section = "\n".join(lines)
    write_section(section, BEGIN, END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
