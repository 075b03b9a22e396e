"""``python -m export verify``: check bundles against a reference model and/or a baseline report.

    python -m export verify --bundle out --reference out/models --data test.tsv
    python -m export verify --bundle out --data test.tsv --baseline ci/report.json --junit junit.xml
    python -m export verify --bundle out --reference out/models --data test.tsv --budget-ms 5 --budget-mb 30
    python -m export verify --bundle out --reference out/models --data test.tsv --on-gate-fail skip

Every bundle runs through :mod:`runtime` (the shipping code) on the first ``--max-samples``
rows of ``--data``. It prints the verify table (and the drift table) and writes report.json,
report.md, pareto.png and confusion.png to ``--out``. Exit codes: 0 every threshold holds
(with ``--on-gate-fail skip``, quantized bundles that fail only the accuracy gate are listed as
left out instead); 1 a threshold, drift check or budget failed (each failure names the artifact
and the number); 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from export.classifier import Classifier, load_classifier
from export.config import DataConfig, VerifyConfig
from export.data.dataset import read_rows
from export.errors import ConfigError, ExportError, ModelLoadError
from export.report.document import Report, load_report, table, write_report
from export.report.junit import junit_xml
from export.verify.budget import choose
from export.verify.drift import DriftTolerance, drift_checks, drift_table, logit_sample
from export.verify.engine import verify_bundles
from export.verify.outputs import LabelledTexts, confusion
from quantize.modes import GateAction
from runtime import RuntimeKitError
from runtime.bundle import MANIFEST_NAME

SAMPLE_SEED = 42
GATE_FIELDS = ("max_drop", "min_agreement", "latency_threads", "latency_samples", "on_gate_fail")
"""The :class:`VerifyConfig` fields this command sets; report.json lists them under ``config.gates``."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other input error
        self.exit(2, f"error: {message} (see python -m export verify --help)\n")


# Over 60 lines: one add() per flag, in --help order. A flat table of options reads better than
# helpers that would each hold a slice of it.
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = _Parser(
        prog="python -m export verify",
        description=__doc__.split("\n\n")[0],
        epilog="Exit codes: 0 every check holds; 1 a check failed; 2 bad input.",
    )
    add = p.add_argument
    add(
        "--bundle",
        type=Path,
        metavar="DIR",
        action="append",
        required=True,
        help="bundle dir, a dir of bundles, or an output dir",
    )
    add(
        "--reference",
        type=Path,
        metavar="DIR",
        action="append",
        default=[],
        help="save_pretrained model dir, or a dir of them",
    )
    add("--data", type=Path, metavar="FILE", required=True, help="labelled texts: .csv, .tsv or .jsonl")
    add("--text-column", help="text column (default: detected)")
    add("--label-column", help="label column (default: detected); labels are matched to bundles by name")
    add("--encoding", default="utf-8", help="encoding of --data (decoding is strict) (default %(default)s)")
    add("--max-samples", type=int, default=1000, help="use a seeded sample of N rows of --data (default %(default)s)")
    add(
        "--max-drop",
        type=float,
        default=1.0,
        help="max accuracy drop in points against the reference (default %(default)s)",
    )
    add(
        "--min-agreement",
        type=float,
        default=0.99,
        help="min fraction of texts labelled as the reference does (default %(default)s)",
    )
    add(
        "--baseline",
        type=Path,
        metavar="REPORT_JSON",
        help="an earlier report.json (pipeline's or verify's) to check drift against",
    )
    add(
        "--max-drift-points",
        type=float,
        default=1.0,
        help="accuracy / agreement change allowed, points (default %(default)s)",
    )
    add(
        "--max-drift-logits",
        type=float,
        default=DriftTolerance.logits_float,
        help="|logit Δ| allowed, float (default %(default)s)",
    )
    add(
        "--max-drift-logits-int8",
        type=float,
        default=DriftTolerance.logits_quantized,
        help="same, quantized (default %(default)s)",
    )
    add("--max-slowdown", type=float, default=50.0, help="p50 latency increase allowed, percent (default %(default)s)")
    add("--budget-ms", type=float, help="choose the most accurate verified bundle with p50 <= this (1 thread)")
    add("--budget-mb", type=float, help="... and a model file of at most this many MB")
    add(
        "--latency-threads",
        type=thread_counts,
        default=(1, 2),
        metavar="N[,N...]",
        help="thread counts for the latency figures, the first for budgets and drift (default 1,2)",
    )
    add(
        "--on-gate-fail",
        type=gate_action,
        default=GateAction.FAIL,
        metavar="|".join(GateAction),
        help="a quantized bundle beyond --max-drop / --min-agreement: fail the run, "
        "or skip it (listed as left out, exit 0) (default %(default)s)",
    )
    add("--latency-samples", type=int, default=50, help="texts timed per artifact (default %(default)s)")
    add(
        "--logit-samples",
        type=int,
        default=8,
        help="texts whose logits report.json keeps for later drift checks (default %(default)s)",
    )
    add(
        "--out",
        type=Path,
        metavar="DIR",
        help="where report.json/.md and charts go (default: verify/ in the output dir)",
    )
    add("--junit", type=Path, metavar="FILE", help="also write JUnit XML here, for CI test reports")
    return p.parse_args(argv)


def thread_counts(text: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``; argparse turns the error into one line and exit 2."""
    try:
        counts = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: thread counts >= 1, e.g. 1,2")
    return counts


def gate_action(text: str) -> GateAction:
    """``fail`` or ``skip``; argparse turns the error into one line and exit 2."""
    try:
        return GateAction(text.strip().lower())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: {', '.join(GateAction)}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("USE_TF", "0")  # this process never needs TensorFlow
    try:
        report, out = run(args)
    except (ExportError, RuntimeKitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    choice = report.choice
    print(table(report.results, choice.name if choice else None, "reference"))
    if report.drift:
        print(f"Drift against {args.baseline}:\n\n{drift_table(report.drift)}")
        print("".join(f"- {n}\n" for n in report.notes))
    if choice is not None:
        print(f"Chosen: {choice.reason}\n")
    for r in report.left_out:
        print(f"Left out: {r.name} — skipped: {r.skipped}")
    if not report.passed:
        lines = "\n".join(f"  - {f}" for f in report.failures)
        print(f"FAILED: {len(report.failures)} check(s):\n{lines}\nReport: {out / 'report.md'}", file=sys.stderr)
        return 1
    left = f", {len(report.left_out)} left out by the accuracy gate" if report.left_out else ""
    print(f"PASSED: {len(report.bundles)} bundle(s) verified{left}; report: {out / 'report.md'}")
    return 0


def run(args: argparse.Namespace) -> tuple[Report, Path]:
    """Verifies, checks drift, chooses and writes the report; returns it and the output directory.

    Raises:
        ExportError: bad arguments, data, reference or baseline.
        RuntimeKitError: a bundle cannot be loaded.
    """
    bundles = find_dirs(args.bundle, MANIFEST_NAME, "bundles", "bundle")
    check_args(args)
    cfg = VerifyConfig(**{name: getattr(args, name) for name in GATE_FIELDS})
    tol = DriftTolerance(
        args.max_drift_points, args.max_drift_logits, args.max_drift_logits_int8, args.max_slowdown / 100
    )
    baseline = load_report(args.baseline) if args.baseline else None
    out = args.out or default_out(bundles[0])
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory")
    data, notes = read_data(args)
    references = [load_reference(p) for p in find_dirs(args.reference, "config.json", "models", "reference model")]

    start = time.perf_counter()
    results, outputs = verify_bundles(bundles, references, data, cfg)
    report = Report(
        results=tuple(results),
        data=data_summary(data, notes),
        config={
            "bundles": [str(b) for b in bundles],
            "references": [str(r.path) for r in references],
            "baseline": str(args.baseline) if args.baseline else None,
            "gates": {name: getattr(cfg, name) for name in GATE_FIELDS},
            "drift_tolerance": dataclasses.asdict(tol),
            "budget_ms": args.budget_ms,
            "budget_mb": args.budget_mb,
        },
        timings_s={},
        bundles=tuple(r.name for r in results if r.name in {b.name for b in bundles} and not r.skipped),
        kind="verify",
        logit_sample=logit_sample(data.texts, outputs, args.logit_samples),
    )
    if baseline is not None:
        checks, drift_notes = drift_checks(report, baseline, tol)
        report = dataclasses.replace(report, drift=tuple(checks), notes=tuple(drift_notes))
    failed = {r.name for r in results if not r.passed} | {d.artifact for d in report.drift if not d.passed}
    choice = choose(results, report.bundles, failed, args.budget_ms, args.budget_mb)
    matrix = confusion(choice.name, outputs[choice.name], data.labels) if choice.name else None
    report = dataclasses.replace(
        report, choice=choice, confusion=matrix, timings_s={"verify": round(time.perf_counter() - start, 1)}
    )
    out.mkdir(parents=True, exist_ok=True)
    write_report(report, out)
    if args.junit:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        args.junit.write_text(junit_xml(report), encoding="utf-8")
    return report, out


def check_args(args: argparse.Namespace) -> None:
    """Raises ConfigError for arguments argparse cannot check alone (each in one line)."""
    if not args.reference and args.baseline is None:
        raise ConfigError("nothing to verify against: pass --reference MODEL_DIR and/or --baseline report.json")
    if args.max_samples < 1 or args.logit_samples < 0:
        raise ConfigError(
            f"--max-samples must be >= 1 and --logit-samples >= 0 (got {args.max_samples}, {args.logit_samples})"
        )
    for budget in (args.budget_ms, args.budget_mb):
        if budget is not None and not budget > 0:
            raise ConfigError(f"a budget must be > 0, got {budget:g}")


def data_summary(data: LabelledTexts, notes: list[str]) -> dict[str, Any]:
    """report.json's ``data``: the rows' source, count, labels and a hash a later drift check compares."""
    rows = "\n".join(f"{y}\t{x}" for x, y in zip(data.texts, data.labels, strict=True))
    return {
        "source": data.source,
        "rows": len(data.texts),
        "labels": sorted(set(data.labels)),
        "sha256": hashlib.sha256(rows.encode()).hexdigest(),
        "notes": notes,
    }


def load_reference(path: Path) -> Classifier:
    """Loads a ``save_pretrained`` classifier folder (:func:`~export.classifier.load_classifier`);
    its name is the folder name, its labels the config's ``id2label``.

    Raises:
        ModelLoadError: the folder holds no loadable model and fast tokenizer.
        UnsupportedArchitectureError: its ``model_type`` is not in the architecture table.
    """
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"reference {path} has no config.json; pass a save_pretrained folder like out/models/teacher"
        )
    try:
        return load_classifier(path.name, path)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load reference model {path}: {e}") from None


def find_dirs(paths: Sequence[Path], marker: str, group: str, what: str) -> list[Path]:
    """Each path that holds ``marker``, else its (or its ``group``/ folder's) subfolders that do.

    Raises:
        ConfigError: a path holds none.
    """
    found: list[Path] = []
    for p in paths:
        if (p / marker).is_file():
            found.append(p)
            continue
        parent = p / group if (p / group).is_dir() else p
        inside = sorted(d for d in parent.iterdir() if (d / marker).is_file()) if parent.is_dir() else []
        if not inside:
            raise ConfigError(f"{p}: no {what} there (looked for {marker} in it, in its subfolders and in {group}/)")
        found += inside
    return found


def default_out(first_bundle: Path) -> Path:
    """``verify/`` in the output directory that holds ``bundles/``, else beside the first bundle."""
    parent = first_bundle.resolve().parent
    return (parent.parent if parent.name == "bundles" else parent) / "verify"


def read_data(args: argparse.Namespace) -> tuple[LabelledTexts, list[str]]:
    """The rows of ``--data`` (a seeded sample of ``--max-samples``, in file order) and notes.

    A sample rather than the first rows, since data files are often sorted by label.

    Raises:
        ConfigError: unknown encoding.
        DataError: the file is missing, unreadable or lacks the columns.
    """
    cfg = DataConfig(text_column=args.text_column, label_column=args.label_column, encoding=args.encoding)
    rows = read_rows(args.data, cfg)
    notes = [f"skipped {rows.skipped_empty} rows with empty text"] if rows.skipped_empty else []
    keep = range(len(rows.texts))
    if len(rows.texts) > args.max_samples:
        keep = sorted(np.random.default_rng(SAMPLE_SEED).choice(len(rows.texts), args.max_samples, replace=False))
        notes.append(f"a seeded sample of {args.max_samples} of {len(rows.texts)} rows (--max-samples)")
    texts = tuple(rows.texts[i] for i in keep)
    return LabelledTexts(texts, tuple(rows.labels[i] for i in keep), str(args.data)), notes
