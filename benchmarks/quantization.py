"""Every quantization mode of the distilled SST-2 student: accuracy, agreement, size, latency.

    .venv/bin/python benchmarks/quantization.py [--config examples/sst2-quantize.toml] [--out DIR]
    .venv/bin/python benchmarks/quantization.py --from-report DIR/report.json

Runs ``python -m export`` with the config (fine-tune, distill, every ONNX and TFLite mode,
verify with the accuracy gate on ``skip`` so failing modes are listed instead of stopping the
run) and writes the verify table plus the sensitivity-search notes into BENCHMARKS.md. All
figures come from this one run on this one machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from bench_md import config_label, write_section

os.environ.setdefault("USE_TF", "0")

from export.config import load_config
from export.errors import VerificationError
from export.pipeline import run
from export.report.document import saved_results, table
from export.report.machine import machine

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quantization:begin -->", "<!-- quantization:end -->"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "sst2-quantize.toml")
    p.add_argument("--out", default="/tmp/bmk-quantization")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--from-report", type=Path, help="render an earlier run's report.json instead of running")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    report_json = args.from_report
    if report_json is None:
        os.chdir(ROOT)  # the config's data path is relative to the repo root
        cfg = load_config(args.config, [f"out={args.out}", "overwrite=true", *args.overrides])
        try:
            run(cfg)
        except VerificationError as e:  # still render the table: failures are part of the result
            logging.error("verification failed: %s", e)
        report_json = Path(args.out) / "report.json"
    saved = json.loads(report_json.read_text(encoding="utf-8"))
    config = config_label(args.config, args.overrides)
    results = saved_results(saved)
    m = saved.get("machine") or machine()
    times = saved["timings_s"]
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in times.items() if k != "total")
    notes = [f"- **{r.name}**: " + "; ".join(r.notes) for r in results if r.notes]
    left_out = [f"- {r.name}: {r.skipped}" for r in results if r.skipped]
    section = "\n".join(
        [
            BEGIN,
            "## Quantization: every mode of the SST-2 student, behind the accuracy gate",
            "",
            f"Command: `python benchmarks/quantization.py --config {config}`",
            f"Machine: {m['cpu']}, {m['cores']} cores, no GPU. Wall time {times['total'] / 60:.1f} min ({stages}).",
            f"Data: {saved['data']['source'].split('/')[-1]}; train {saved['data']['train']}, validation "
            f"{saved['data']['validation']}, eval {saved['data']['eval']} sentences (eval never trained on, "
            "never used for calibration). Latency: ms per sentence, batch 1, tokenization included, SST-2 lengths.",
            "",
            table(results),
            "",
            "Sensitivity search (calibrated modes):",
            "",
            *(notes or ["- none"]),
            "",
            "Left out by the accuracy gate:",
            "",
            *(left_out or ["- none"]),
            END,
        ]
    )
    write_section(section, BEGIN, END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
