"""Command line: ``python -m runtime predict|selftest|bench BUNDLE``.

Exit codes: 0 success, 1 golden examples do not reproduce (selftest), 2 any other runtime
error (bad bundle, missing engine, bad input); errors go to stderr without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.bench import bench, read_texts
from runtime.classifier import TextClassifier
from runtime.errors import GoldenMismatchError, InputError, RuntimeKitError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runtime", description="Classify text with a bundle.")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="classify texts; prints one JSON object per line")
    predict.add_argument("bundle", help="bundle directory")
    predict.add_argument("texts", nargs="*", help="texts to classify (default: one per line on stdin)")
    predict.add_argument("--batch-size", type=int, default=32)
    selftest = sub.add_parser("selftest", help="re-run the bundle's golden examples")
    selftest.add_argument("bundle", help="bundle directory")
    for p in (predict, selftest):
        p.add_argument("--backend", choices=("auto", "onnx", "tflite"), default="auto")
        p.add_argument("--threads", type=int, default=1)
    timing = sub.add_parser("bench", help="per-text latency (p50/p90/p99) and throughput, 1 and N threads")
    timing.add_argument("bundle", help="bundle directory")
    timing.add_argument("--texts", type=Path, help=".txt (one per line) or CSV/TSV with a text column")
    timing.add_argument("--limit", type=int, default=200, help="texts to time (default 200)")
    timing.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    timing.add_argument("--backend", choices=("auto", "onnx", "tflite"), default="auto")
    timing.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def _bench(args: argparse.Namespace) -> None:
    try:
        counts = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        raise InputError(f"--threads must be comma-separated integers, got {args.threads!r}") from None
    if args.texts is not None:
        texts = read_texts(args.texts, args.limit)
    else:  # the bundle's golden texts, repeated: enough for a quick look, not a benchmark
        golden = TextClassifier.load(args.bundle, backend=args.backend).manifest.golden
        if not golden:
            raise InputError("the bundle has no golden examples; pass --texts FILE")
        texts = [g["text"] for g in golden] * max(1, args.limit // len(golden))
    if not args.json:
        sys.stdout.write("threads  texts  p50 ms  p90 ms  p99 ms  texts/s  model p50 ms  overhead\n")
    for n in counts:
        r = bench(TextClassifier.load(args.bundle, backend=args.backend, threads=n), texts)
        if args.json:
            sys.stdout.write(json.dumps(dataclasses.asdict(r)) + "\n")
        else:
            sys.stdout.write(
                f"{r.threads:>7}  {r.texts:>5}  {r.p50_ms:6.2f}  {r.p90_ms:6.2f}  {r.p99_ms:6.2f}  "
                f"{r.throughput:7.1f}  {r.model_p50_ms:12.2f}  {100 * r.overhead:7.1f}%\n"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit code.
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "bench":
            _bench(args)
            return 0
        clf = TextClassifier.load(args.bundle, backend=args.backend, threads=args.threads)
        if args.command == "predict":
            texts = args.texts or [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
            for text, pred in zip(texts, clf.predict(texts, batch_size=args.batch_size), strict=True):
                sys.stdout.write(json.dumps({"text": text, **pred.as_dict()}, ensure_ascii=False) + "\n")
        else:
            results = clf.selftest()
            worst = max(delta for _, delta in results)
            sys.stdout.write(f"ok: {len(results)} golden examples reproduce (max |Δ| logits {worst:.3g})\n")
    except GoldenMismatchError as exc:
        sys.stderr.write(f"selftest failed: {exc}\n")
        return 1
    except RuntimeKitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
