"""Command line: ``python -m runtime predict|selftest BUNDLE``.

Exit codes: 0 success, 1 golden examples do not reproduce (selftest), 2 any other runtime
error (bad bundle, missing engine, bad input); errors go to stderr without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from runtime.classifier import TextClassifier
from runtime.errors import GoldenMismatchError, RuntimeKitError


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit code.
    """
    args = _parser().parse_args(argv)
    try:
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
