"""Runs the offline default pipeline and writes its verify table into BENCHMARKS.md.

    .venv/bin/python benchmarks/default_run.py [--out DIR] [--set section.key=value ...]

Every figure in the table comes from this one run on this one machine (ratios are
only meaningful side by side). The section between the markers is replaced.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from bench_md import write_section

os.environ.setdefault("USE_TF", "0")

from export.config import load_config
from export.pipeline import run
from export.report.document import Report, saved_results, selection_section, table
from export.report.machine import machine

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- default-run:begin -->", "<!-- default-run:end -->"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/tmp/bmk-default-run")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument(
        "--from-report",
        type=Path,
        help="render the table of an earlier run's report.json (same machine) instead of running again",
    )
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.from_report:
        saved = json.loads(args.from_report.read_text(encoding="utf-8"))
        results = saved_results(saved)
        report = Report(
            tuple(results),
            saved["data"],
            saved["config"],
            saved["timings_s"],
            tuple(saved["bundles"]),
            selection=saved.get("selection", {}),
        )
        wall, m = float(report.timings_s["total"]), saved["machine"]
    else:
        cfg = load_config(None, [f"out={args.out}", "overwrite=true", *args.overrides])
        start = time.perf_counter()
        report = run(cfg)
        wall, m = time.perf_counter() - start, machine()
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in report.timings_s.items() if k != "total")
    section = "\n".join(
        [
            BEGIN,
            "## Offline default run (`python -m export`)",
            "",
            f"Command: `python benchmarks/default_run.py` {' '.join(args.overrides)}".rstrip(),
            f"Machine: {m['cpu']}, {m['cores']} cores, no GPU. Wall time {wall / 60:.1f} min ({stages}).",
            f"Data: {report.data['source'].split('/')[-1]}; train {report.data['train']}, "
            f"validation {report.data['validation']}, eval {report.data['eval']} texts"
            + (
                " (the shipped models were refit on eval too: below)."
                if report.selection.get("eval_trained_on")
                else " (eval never trained on)."
            ),
            "",
            table(report.results),
            *selection_section(report.selection, report.data),
            END,
        ]
    )
    write_section(section, BEGIN, END)
    print(table(report.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
