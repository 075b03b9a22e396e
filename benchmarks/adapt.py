"""Does domain adaptation (masked-LM training on unlabelled in-domain text) help the teacher?

    .venv/bin/python benchmarks/adapt.py [--config examples/default.toml] [--epochs 1]

On the offline default data — CrowdFlower tweets, far from the teacher's pre-training text —
the teacher is fine-tuned twice with the same config, data and seed: once from
all-MiniLM-L6-v2 as shipped, once after ``[adapt]``: MLM training on the unlabelled texts of
every non-held-out tweet (the labels are not used; validation and eval tweets are never seen).
Both are scored on the eval tweets. Writes the result into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from bench_md import write_section

os.environ.setdefault("USE_TF", "0")

from export.classifier import torch_logits
from export.config import load_config
from export.data.dataset import load_data
from export.report.machine import machine
from export.train.cache import teacher_stage

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- adapt:begin -->", "<!-- adapt:end -->"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", type=Path, default=ROOT / "examples" / "default.toml")
    p.add_argument("--out", default="/tmp/bmk-adapt")
    p.add_argument("--epochs", type=float, default=1.0, help="MLM epochs over the unlabelled tweets")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.chdir(ROOT)
    cfg = load_config(args.config, [f"out={args.out}"])
    data = load_data(cfg.data, cfg.seed)
    # Unlabelled pool: the training split without the sample cap (validation and eval excluded).
    pool = load_data(dataclasses.replace(cfg.data, max_train_samples=None), cfg.seed).train.texts
    texts = Path(f"{args.out}.unlabelled.txt")
    texts.parent.mkdir(parents=True, exist_ok=True)
    texts.write_text("\n".join(" ".join(t.split()) for t in pool) + "\n", encoding=cfg.data.encoding)
    adapted_cfg = load_config(
        args.config, [f"out={args.out}", "adapt.enabled=true", f"adapt.texts={texts}", f"adapt.epochs={args.epochs}"]
    )
    rows = []
    for name, c in (("as shipped", cfg), (f"after MLM on {len(pool):,} unlabelled tweets", adapted_cfg)):
        teacher = teacher_stage(c, data)
        wall = (
            teacher.train_seconds
            + sum(  # fine-tuning, plus the MLM stage it started from
                json.loads(d.read_text())["train_seconds"] for d in c.checkpoint_dir.glob("adapted-*/done.json")
            )
            * c.adapt.enabled
        )
        pred = torch_logits(teacher.model, data.eval.texts, cfg.data.max_length).argmax(-1)
        acc = float((pred == data.eval.labels).mean())
        logging.info("%s: eval accuracy %.4f", name, acc)
        rows.append((name, acc, teacher.summary().get("best_validation_accuracy"), wall))
    m = machine()
    base = rows[0][1]
    section = "\n".join(
        [
            BEGIN,
            "## Domain adaptation (issue 5): MLM on unlabelled tweets before fine-tuning",
            "",
            f"Command: `python benchmarks/adapt.py --epochs {args.epochs:g}`",
            f"Machine: {m['cpu']}, {m['cores']} cores, no GPU. Data: the offline default (CrowdFlower tweets, "
            f"3 classes), {len(data.train)} training, {len(data.eval)} eval tweets; all-MiniLM-L6-v2 teacher, "
            "the default fine-tune recipe, same seed.",
            "",
            "| teacher | eval accuracy | vs as shipped | best validation | wall time (adapt + fine-tune) |",
            "|---|---|---|---|---|",
            *(
                f"| {n} | {a:.2%} | {'—' if i == 0 else f'{(a - base) * 100:+.2f} pts'} | {v:.2%} | {w / 60:.1f} min |"
                for i, (n, a, v, w) in enumerate(rows)
            ),
            "",
            f"With {len(data.eval)} eval tweets one standard error is about "
            f"{(base * (1 - base) / len(data.eval)) ** 0.5 * 100:.1f} points.",
            END,
        ]
    )
    write_section(section, BEGIN, END)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
